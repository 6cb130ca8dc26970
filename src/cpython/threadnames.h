/* Thread names of a target: the `threading` module's names (Thread.name) where the thread is a
 * Python thread known to `threading`, else the kernel's /proc comm (none when pid is 0: a core
 * file has no thread names). Resolved lazily and cached; the Python-level table is reread at
 * most every THREADNAMES_REFRESH_NS, and only when a thread without a cached name shows up. */
#ifndef APROF_THREADNAMES_H
#define APROF_THREADNAMES_H

#include "layouts.h"
#include "memory.h"
#include "strtab.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define THREADNAMES_REFRESH_NS 1000000000ull

typedef struct threadnames threadnames;

threadnames *threadnames_new(pid_t pid, mem *m, const py_layout *L, strtab *st,
                             uint64_t interp_addr);
void threadnames_free(threadnames *tn);

/* Interned name of a thread; never NULL. Signature fits pystack's thread_name_fn. */
const char *threadnames_lookup(void *tn, uint64_t py_thread_id, pid_t tid, bool is_main);

#endif
