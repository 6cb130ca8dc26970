/* A core file (ELF ET_CORE from the kernel or gdb's gcore) read as a target that never moves:
 * its memory, mappings, threads with their registers, and the process's pid and command.
 *
 * Memory comes from the PT_LOAD segments; what a segment leaves out (the kernel and gcore skip
 * read-only file mappings such as code and .rodata, keeping only an ELF file's first page) is
 * read from the file named for that range in the NT_FILE note, at its file offset. Those files
 * are found as named, or under --lib-search directories (a core moved off its machine), and
 * used only when their GNU build id matches the one the core's own copy of the ELF header
 * points to (when the core has it).
 *
 * The core is untrusted input: every header, note and offset is checked against the file's
 * size; a read outside what the core and its files hold fails like a read of unmapped memory.
 */
#ifndef APROF_CORE_FILE_H
#define APROF_CORE_FILE_H

#include "proc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct core_file core_file;

typedef enum core_status {
    CORE_OK = 0,
    CORE_CANNOT_OPEN, /* open/stat/mmap failed (errno in the message) */
    CORE_NOT_CORE,    /* not an ELF file, or an ELF file that is not a core */
    CORE_UNSUPPORTED, /* a core, but not of an x86-64 Linux process */
    CORE_TRUNCATED,   /* headers or segments reach past the end of the file */
    CORE_CORRUPT,     /* inconsistent headers or notes */
    CORE_NO_MEMORY,
} core_status;

/* x86-64 user_regs_struct, in NT_PRSTATUS order */
enum core_reg {
    CORE_R15, CORE_R14, CORE_R13, CORE_R12, CORE_RBP, CORE_RBX, CORE_R11, CORE_R10, CORE_R9,
    CORE_R8, CORE_RAX, CORE_RCX, CORE_RDX, CORE_RSI, CORE_RDI, CORE_ORIG_RAX, CORE_RIP, CORE_CS,
    CORE_EFLAGS, CORE_RSP, CORE_SS, CORE_FS_BASE, CORE_GS_BASE, CORE_DS, CORE_ES, CORE_FS,
    CORE_GS, CORE_NREGS
};

typedef struct core_thread {
    pid_t tid;
    uint64_t regs[CORE_NREGS];
} core_thread;

/* Open and check path. On failure *out is NULL and msg holds one sentence naming the file. */
core_status core_open(const char *path, core_file **out, char *msg, size_t msglen);
void core_close(core_file *c);

/* Directories searched for the mapped files before their recorded paths: DIR + path (a copy of
 * the machine's root), then DIR/basename. The strings are copied. 0, or -1 (ENOMEM). */
int core_add_lib_search(core_file *c, const char *dir);
/* The program file to use for the core's executable instead of the path it recorded. */
int core_set_executable(core_file *c, const char *path);

pid_t core_pid(const core_file *c);
/* The command line as recorded (at most 80 characters, the kernel's limit); "" when absent. */
const char *core_command(const core_file *c);
const char *core_path(const core_file *c);

/* Threads in the order of the core's notes (the kernel writes the faulting thread first). */
size_t core_threads(const core_file *c, const core_thread **out);
const core_thread *core_thread_of(const core_file *c, pid_t tid);

/* The process's mappings as /proc/PID/maps would have listed them (perms from the segments,
 * paths and offsets from NT_FILE). 0, or -1 (ENOMEM). Free with proc_maps_free. */
int core_maps(core_file *c, proc_maps *out);

/* The mappings as the text of /proc/PID/maps, each file named by the path it resolves to on
 * this machine (core_mapped_file_path; as recorded when it does not resolve): what readers of
 * maps text (libdw's module reporting) can open. malloc'd, NUL-terminated; NULL (ENOMEM). */
char *core_maps_text(core_file *c, size_t *len);

/* process_vm_readv's contract over the core: ranges copied in order up to the first that is
 * not wholly readable; returns the bytes copied, or -1 (errno EFAULT) when the first range is
 * not readable at all. */
ssize_t core_readv(core_file *c, const struct iovec *local, size_t n, const struct iovec *remote);

/* Called with every range core_readv copies from the core's own data (not from mapped files),
 * in every core_file of the process; NULL: none. For tools/core_shrink.c, which keeps only what
 * a dump reads of a core (small cores: fuzzing seeds, test data). */
typedef void (*core_read_observer)(void *ud, uint64_t addr, size_t len);
void core_observe_reads(core_read_observer fn, void *ud);

typedef enum core_file_status {
    CORE_FILE_FOUND = 0,
    CORE_FILE_MISSING,  /* no candidate path can be opened */
    CORE_FILE_MISMATCH, /* candidates exist, none has the core's build id */
} core_file_status;

/* Where the file the core maps at [start, end) under `path` can be opened (see the top of this
 * file). On failure, why holds one sentence naming the file. */
core_file_status core_mapped_file_path(core_file *c, uint64_t start, const char *path, char *out,
                                       size_t len, char *why, size_t whylen);

#endif
