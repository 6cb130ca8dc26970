/* Reading every thread's Python stack from a live CPython process, without stopping it.
 *
 * One call of pystack_sample() walks the interpreter's thread states and each thread's frame
 * chain and fills an aprof_sample. Non-invasive reads can see a stack while it changes (detected
 * by rereading the thread's frame pointer after the walk and by validating every frame): such a
 * thread is read once more, and the sample keeps the outer frames that both reads found
 * identical (same frame, caller, code and instruction), or that the first read's copy of the
 * data stack verifies, and ends in an `<unreadable>` mark, flagged TSF_TORN | TSF_PARTIAL. Its time is never lost, and never taken
 * for idle time (an idle thread's stack does not change).
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
    uint64_t confirmed;   /* torn at first, then found identical by the second read: kept whole */
    uint64_t partial;     /* thread stacks still torn after the retries, kept as their verified
                           * outer frames and an <unreadable> mark (TSF_PARTIAL) */
    uint64_t fresh_reads; /* torn thread stacks read again at once, not stopped ... */
    uint64_t fresh_ok;    /* ... and found consistent then */
    uint64_t stopped_reads; /* torn thread stacks read again with the thread stopped */
    uint64_t stop_failures; /* ... or not, because the thread could not be stopped */
    uint64_t went_idle;   /* stopped reads that found an event loop gone back to its selector */
    uint64_t mispredicted; /* snapshots chosen from the last sample's thread state that missed
                            * (another chunk, a top outside the copy): taken again */
    uint64_t shared_tid;  /* thread reads dropped: another thread state named the same OS thread
                           * (a thread being started, 3.10/3.11) and was the better witness */
    uint64_t moved_callers; /* prefetched calling frames whose copies before and after the
                             * chunk's differ: read again after the snapshot instead */
} pystack_stats;

typedef struct thread_state_fn {
    /* Optional: the thread's /proc run-state letter, read right before its stack (so that
     * both describe the sampled moment), or 0 when unknown. */
    char (*read)(void *ud, pid_t tid);
    void *ud;
} thread_state_fn;

typedef struct thread_stop_fn {
    /* Optional: stop the target's thread tid for a read of its stack: 0 when it is stopped
     * (resume() then lets it go), -1 when it cannot be (errno: EPERM ends the tries). */
    int (*stop)(void *ud, pid_t tid);
    void (*resume)(void *ud, pid_t tid);
    void *ud;
} thread_stop_fn;

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

/* The outer frames of a thread's last consistent stack (3.11+: those in its data-stack chunk).
 * When a later read stays torn, the ones still found, byte for byte, in that read's copy of the
 * chunk below its top are the verified outer part of the stack (pystack_torn.c
 * keep_verified_part). */
#define OUTER_MAX 96
typedef struct outer_memo {
    uint64_t tstate;
    uint32_t n;
    uint64_t addr[OUTER_MAX], key[OUTER_MAX], owner[OUTER_MAX];
    aprof_frame frame[OUTER_MAX];
} outer_memo;

/* A torn read's copy of the thread's data-stack chunk, kept while the thread is read again: the
 * tiles both copies agree on are the verified part of its stack (pystack_tiles.c). */
typedef struct first_copy {
    bool valid;
    uint64_t chunk;           /* the chunk's address, the copy's start */
    uint64_t base, end;       /* the copy covers [base, end): below both readings of the top */
    uint64_t ptr;             /* the innermost frame as the read's frame pointer named it */
    bool ptr_is_leaf;         /* ... read through the thread's current _PyCFrame (3.11/3.12) */
    uint32_t nx;              /* frames outside the chunk copied by that read (prefetched) */
    uint64_t xaddr[PREFETCH_MAX];
} first_copy;

/* A thread state as the last sample copied it: what the next snapshot of it copies is chosen
 * from this, and checked against the fresh copy taken in the same syscall. */
typedef struct ts_memo {
    uint64_t tstate;          /* its address, 0: none */
    uint8_t bytes[512];       /* TSTATE_READ */
} ts_memo;

/* How often a torn thread's stack read again at once (not stopped) came out consistent: worth
 * trying first for a thread whose stack tears now and then (a deep call chain), not for one
 * that tears on every read (a busy event loop), where it only delays the stop. */
typedef struct reread_memo {
    uint64_t tstate;
    uint16_t tries, ok;       /* halved together past 64 tries: recent reads weigh most */
    uint16_t skipped;         /* skipped in a row: every 16th is tried again */
} reread_memo;

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
    uint8_t *window1;         /* ... the torn first read's copy, while the thread is reread */
    size_t window1_cap;
    first_copy c1;
    aprof_frame *tframes;     /* APROF_MAX_FRAMES: the tiles both reads' copies agree on */
    uint64_t *towners;
    uint32_t ntiles;
    bool tiles_leaf;          /* ... and their last was the innermost frame at the first read */
    prefetch_set *prefetch;   /* PREFETCH_SLOTS sets, by thread state */
    step_probe *probes;       /* PREFETCH_SLOTS, by thread state */
    uint64_t callback_frame_addr; /* target address of the last walk's callback frame, 0 */
    uint8_t *prefetch_buf;    /* PREFETCH_MAX frame copies for the thread being read */
    uint8_t *late_buf;        /* LATE_MAX frame copies: late-read frames, read again */
    uint8_t *early_keys;      /* PREFETCH_MAX copies of the prefetched frames' key fields, taken
                               * before the chunk (KEY_SPAN_MAX bytes each) */
    uint32_t key_lo, key_len; /* the span of a frame that holds its caller, code and
                               * instruction; key_len 0: no early copies */
    uint8_t code_span[PREFETCH_CODES][64]; /* fingerprint spans being confirmed ... */
    uint64_t code_check[PREFETCH_CODES];   /* ... of these code objects */
    uint64_t now_ns;          /* CLOCK_MONOTONIC at the start of the current sample */
    uint64_t *keys;           /* APROF_MAX_FRAMES: identity of each frame of the last walk
                               * (address, caller, code, instruction), parallel to its frames */
    uint64_t *addrs;          /* APROF_MAX_FRAMES: the target address of each of those frames */
    outer_memo *outer;        /* PREFETCH_SLOTS, by thread state */
    ts_memo *ts_memo;         /* PREFETCH_SLOTS, by thread state */
    bool predict;             /* snapshots predicted from ts_memo (3.13+) */
    uint32_t verified_in_chunk; /* frames the last try verified in its copy of the chunk: */
    aprof_frame *vframes;       /* ... APROF_MAX_FRAMES, outermost first */
    uint64_t *vowners;
    uint64_t *vkeys;            /* ... their frame keys */
    uint32_t vmemo;             /* ... how many of them came from the remembered stack */
    uint64_t *prev_keys;      /* ... of the previous try of the same thread */
    uint32_t prev_nkeys;
    bool keys_usable;         /* the last walk's keys may be compared (no structural failure) */
    bool in_second_read;      /* reading a torn thread again, to confirm its outer frames */
    uint64_t confirm_cb;      /* ... the busy callback that second read found (0: none) */
    uint8_t confirm_loop;
    const char *unreadable;   /* interned "<unreadable>" */
    const char *gc_mark;      /* interned "<GC>" */
    uint64_t gc_flag;         /* address of the interpreter's gc.collecting, 0 unknown */
    int32_t gc_flag_copy;     /* ... as the last thread snapshot copied it */
    bool gc_seen;             /* ... and it was set: a collection ran while that thread was read */
    bool gc_leaf;             /* end a collecting thread's stack in "<GC>" (not with --native) */
    thread_name_fn names;
    thread_state_fn states;
    thread_stop_fn stopper;   /* set: a torn stack is read again, at once then stopped */
    bool in_reread;           /* ... reading it so (its thread's identity is the first read's) */
    reread_memo reread[PREFETCH_SLOTS]; /* by thread state */
    int32_t run_once_at;      /* outermost-first index of the last walk's _run_once, -1 */
    uint64_t *tid_keys;       /* drop_shared_tids: (tid << 32 | index) of one sample's reads */
    uint8_t *tid_drop;        /* ... and which of them are dropped */
    size_t cap_tid_keys, cap_tid_drop;
    pystack_stats stats;
} pystack;

int pystack_init(pystack *ps, const pyruntime *rt, mem *m, strtab *st);
void pystack_free(pystack *ps);

/* Append one aprof_thread_sample per Python thread to `out` (frames outermost first).
 * Returns the number of threads, or -1 when the interpreter cannot be read at all (errno from
 * the failed read: ESRCH when the process is gone). */
int pystack_sample(pystack *ps, aprof_sample *out, uint64_t now_ns);

#endif
