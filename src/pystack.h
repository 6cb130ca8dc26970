/* Reading every thread's Python stack from a live CPython process, without stopping it.
 *
 * One call of pystack_sample() walks the interpreter's thread states and each thread's frame
 * chain and fills an aprof_sample. Non-invasive reads can see a stack while it changes: such a
 * thread is flagged TSF_TORN (detected by rereading the thread's frame pointer after the walk
 * and by validating every frame), and the caller drops it.
 */
#ifndef APROF_PYSTACK_H
#define APROF_PYSTACK_H

#include "codecache.h"
#include "memory.h"
#include "pyruntime.h"
#include "sample.h"
#include "strtab.h"

#include <stdint.h>

#define PYSTACK_MAX_THREADS 4096

typedef struct pystack_stats {
    uint64_t threads_read;
    uint64_t torn;        /* thread stacks that changed while read */
    uint64_t bad;         /* thread stacks with an unreadable frame or code object */
} pystack_stats;

typedef struct thread_name_fn {
    /* Optional: resolve a Python thread ident to an interned name (NULL when unknown). */
    const char *(*lookup)(void *ud, uint64_t py_thread_id, pid_t tid);
    void *ud;
} thread_name_fn;

typedef struct pystack {
    const pyruntime *rt;
    const py_layout *L;
    mem *m;
    strtab *st;
    codecache *cc;
    uint64_t interp;          /* cached first interpreter */
    uint64_t main_thread_id;  /* pthread ident of the main thread */
    int pthread_tid_offset;   /* 3.10: offset of the kernel tid in glibc's struct pthread */
    uint8_t *window;          /* copy of the current data-stack chunk (3.11+) */
    size_t window_cap;
    thread_name_fn names;
    pystack_stats stats;
} pystack;

int pystack_init(pystack *ps, const pyruntime *rt, mem *m, strtab *st);
void pystack_free(pystack *ps);

/* Append one aprof_thread_sample per Python thread to `out` (frames outermost first).
 * Returns the number of threads, or -1 when the interpreter cannot be read at all (errno from
 * the failed read: ESRCH when the process is gone). */
int pystack_sample(pystack *ps, aprof_sample *out);

#endif
