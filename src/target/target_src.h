/* Where a target is read from: a live process (process_vm_readv and /proc) or a core file
 * (core_file.h). Readers above the target layer hold one of these instead of a bare pid, so that
 * the same stack and asyncio readers serve `aprof dump --pid` and `aprof dump --core`. */
#ifndef APROF_TARGET_SRC_H
#define APROF_TARGET_SRC_H

#include "proc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct core_file;

typedef struct target_src {
    pid_t pid;               /* the process (a core's: as recorded in it) */
    struct core_file *core;  /* NULL: the live process pid */
} target_src;

static inline target_src target_src_live(pid_t pid)
{
    return (target_src){pid, NULL};
}

/* process_vm_readv's contract whatever the source: ranges copied in order up to the first that
 * cannot be read wholly; the bytes copied, or -1 with errno. */
ssize_t target_src_readv(const target_src *t, const struct iovec *local, size_t n,
                         const struct iovec *remote);

/* The memory mappings (proc_maps_read's contract). */
int target_src_maps(const target_src *t, proc_maps *out);

/* A path through which the file mapped at [start, end) under `path` can be opened
 * (proc_mapped_file_path for a process; for a core, a file with the core's build id). */
bool target_src_file_path(const target_src *t, uint64_t start, uint64_t end, const char *path,
                          char *out, size_t len);

/* Can the target still be read (a core always can)? */
bool target_src_alive(const target_src *t);

#endif
