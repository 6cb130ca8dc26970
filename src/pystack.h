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

#include <stdbool.h>
#include <stdint.h>

#define PYSTACK_MAX_THREADS 4096

typedef struct pystack_stats {
    uint64_t threads_read;
    uint64_t torn;        /* thread stacks that changed while read (each try counts) */
    uint64_t retried;     /* thread stacks read a second time because the first was torn */
    uint64_t bad;         /* thread stacks with an unreadable frame or code object */
} pystack_stats;

typedef struct thread_name_fn {
    /* Optional: resolve a Python thread ident to an interned name (NULL when unknown). */
    const char *(*lookup)(void *ud, uint64_t py_thread_id, pid_t tid, bool is_main);
    void *ud;
} thread_name_fn;

/* Frames of a thread that were found outside its data-stack chunk in the previous sample (3.10
 * frame objects, coroutine frames, 3.12+ C-stack entry frames): they are fetched together with
 * the chunk in the next sample, in the same process_vm_readv, since stacks change slowly. */
#define PREFETCH_MAX 62
#define PREFETCH_SLOTS 64

#define PREFETCH_CODES 24

typedef struct prefetch_set {
    uint64_t tstate;
    uint32_t n;
    uint64_t addr[PREFETCH_MAX];
    uint32_t ncode;                /* code objects of the last walk: their fingerprints are */
    uint64_t code[PREFETCH_CODES]; /* checked in the same syscall (address reuse detection) */
    uint64_t outer_cframe;         /* 3.11/3.12: the _PyCFrame last read through, when it was the
                                    * thread's outermost evaluation (see cframe_still_live) */
} prefetch_set;

/* The task step a loop thread was last seen running (from its last consistent sample): when its
 * next stack is torn, whether that step still runs is read on its own, from the state byte of
 * the step's coroutine, so a stall's end is not lost among torn samples. */
typedef struct step_probe {
    uint64_t tstate;
    uint64_t state_addr;      /* gi_frame_state (3.11+) or the frame's f_state (3.10), 0: none */
    uint64_t callback_id;
    uint8_t loop;             /* loop_kind */
} step_probe;

typedef struct pystack {
    const pyruntime *rt;
    const py_layout *L;
    mem *m;
    strtab *st;
    codecache *cc;
    uint64_t interp;          /* cached first interpreter */
    uint64_t head;            /* cached interp->threads.head */
    uint64_t head_read_ns;
    size_t tstate_size;       /* bytes of a thread state that are read */
    size_t frame_read;        /* bytes of a frame that are read */
    bool want_gil;            /* find which thread holds the GIL in each sample */
    uint64_t gil;             /* 3.12+: cached address of the interpreter's GIL state */
    uint64_t main_thread_id;  /* pthread ident of the main thread */
    int pthread_tid_offset;   /* 3.10: offset of the kernel tid in glibc's struct pthread */
    uint8_t *window;          /* copy of the current data-stack chunk (3.11+) */
    size_t window_cap;
    prefetch_set *prefetch;   /* PREFETCH_SLOTS sets, by thread state */
    step_probe *probes;       /* PREFETCH_SLOTS, by thread state */
    uint64_t callback_frame_addr; /* target address of the last walk's callback frame, 0 */
    uint8_t *prefetch_buf;    /* PREFETCH_MAX frame copies for the thread being read */
    uint8_t code_span[PREFETCH_CODES][64]; /* fingerprint spans being confirmed ... */
    uint64_t code_check[PREFETCH_CODES];   /* ... of these code objects */
    uint64_t now_ns;          /* CLOCK_MONOTONIC at the start of the current sample */
    thread_name_fn names;
    pystack_stats stats;
} pystack;

int pystack_init(pystack *ps, const pyruntime *rt, mem *m, strtab *st);
void pystack_free(pystack *ps);

/* Append one aprof_thread_sample per Python thread to `out` (frames outermost first).
 * Returns the number of threads, or -1 when the interpreter cannot be read at all (errno from
 * the failed read: ESRCH when the process is gone). */
int pystack_sample(pystack *ps, aprof_sample *out, uint64_t now_ns);

/* Read and decode one interpreter frame (a _PyInterpreterFrame, or a PyFrameObject on 3.10) at
 * frame_addr, e.g. a suspended coroutine's. Returns 1 with *out filled, 0 for a frame CPython
 * hides (C-stack shim, not yet started), -1 when unreadable. *prev: the next-outer frame;
 * *owner_obj: the generator/coroutine that owns the frame, or 0. */
int pystack_read_frame(pystack *ps, uint64_t frame_addr, aprof_frame *out, uint64_t *prev,
                       uint64_t *owner_obj);

#endif
