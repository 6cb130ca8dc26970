/* What the parts of the stack reader share (pystack.c, pystack_frames.c, pystack_torn.c):
 * buffer sizes, one thread's snapshot (window), the walk's loop marks, and the functions each
 * part calls in another. Private to src/cpython/pystack*.c. */
#ifndef APROF_PYSTACK_INTERNAL_H
#define APROF_PYSTACK_INTERNAL_H

#include "pystack.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define TSTATE_READ 512u
#define WINDOW_MAX (256u * 1024u) /* most of a data-stack chunk copied */
#define FRAME_READ 384u /* upper bound of ps->frame_read */
#define LATE_MAX 16 /* coroutine frames read after the snapshot whose state is rechecked */
#define KEY_SPAN_MAX 128u /* upper bound of ps->key_len */

/* Frame owner values (enum _frameowner in pycore_frame.h). */
enum { OWNER_THREAD = 0, OWNER_GENERATOR = 1, OWNER_FRAME_OBJECT = 2, OWNER_CSTACK = 3 };

static inline uint32_t rd32(const uint8_t *buf, loff off)
{
    uint32_t v;
    memcpy(&v, buf + off, 4);
    return v;
}

static inline uint64_t rd64(const uint8_t *buf, loff off)
{
    uint64_t v;
    memcpy(&v, buf + off, 8);
    return v;
}

typedef struct window {
    uint64_t base;       /* data-stack chunk copy */
    uint64_t chunk;      /* the chunk's address when the copy starts at it, else 0 */
    size_t len;
    uint64_t top;        /* the thread state's datastack_top, as copied with it (3.11+) */
    uint64_t top_again;  /* ... and reread after the snapshot bracket, 0 when not read */
    prefetch_set *pf;    /* this thread's prefetch set (addresses to fetch / fetched) */
    uint32_t pf_loaded;  /* how many of pf->addr were fetched into ps->prefetch_buf */
    uint32_t pf_early;   /* ... and how many had their key fields copied before the chunk too
                          * (into ps->early_keys) */
    uint64_t innermost;  /* the innermost frame, as the snapshot's frame pointer named it */
    prefetch_set next;   /* frames read outside the chunk this time: next sample's set */
    uint64_t again;      /* the innermost-frame pointer reread at the end of the snapshot */
    uint64_t code_again_addr;  /* 3.10: that frame, whose f_code and f_back are reread after */
    uint8_t code_again_buf[32]; /* ... into this (the span of the two fields) */
    loff code_again_lo;
    uint64_t cframe, cframe_again; /* 3.11/3.12: tstate->cframe as copied, and reread last */
    bool cframe_reread;  /* ... whether cframe_again was read */
    uint64_t leaf;       /* the innermost frame as the thread state named it, when its copy */
    bool leaf_ok;        /* ... in leaf_buf came from the snapshot */
    uint8_t leaf_buf[FRAME_READ];
    bool again_ok;       /* ... and that read succeeded */
    bool all_in_snapshot;/* every frame of the walk came from the snapshot syscall */
    uint64_t leaf_prev;  /* the innermost kept frame's caller, as the walk saw it */
    /* Frames read after the snapshot, one by one: each is read again with the final recheck
     * and must not have changed (key), and a coroutine's state must still be "executing". */
    uint32_t nlate;
    uint64_t late_addr[LATE_MAX], late_key[LATE_MAX];
    uint64_t late_state[LATE_MAX]; /* where its state byte lives, 0 for plain function frames */
} window;

/* What a walk notices for the event-loop view of a thread. */
typedef struct loop_marks {
    bool asyncio_loop;     /* run_forever / _run_once seen */
    bool leaf_select;      /* innermost frame is a selector's select() */
    int32_t handle_index;  /* innermost-first index of the innermost Handle._run, -1 */
    uint64_t handle;       /* its self */
    int32_t entry_index;   /* innermost-first index of the innermost runner frame, -1 */
    int32_t run_once_index;/* innermost-first index of the innermost _run_once frame, -1 */
    /* target addresses of the frames the running callback starts in: the frame just inside
     * that Handle._run (or Handle._run itself when it is innermost), just inside that runner */
    uint64_t handle_inner_frame, entry_inner_frame;
} loop_marks;

typedef enum decode_result { DECODE_OK, DECODE_SKIP, DECODE_SKIP_SHIM, DECODE_BAD } decode_result;

/* What a thread's sample keeps from its first read when the thread is read again: run state,
 * name and identity describe the sampled moment (a stopped thread reads as state 't', one
 * ending meanwhile as tid 0). */
typedef struct thread_identity {
    pid_t tid;
    uint8_t state;
    uint64_t py_thread_id;
    const char *name;
    bool is_main;
} thread_identity;

static inline thread_identity thread_identity_of(const aprof_thread_sample *t)
{
    return (thread_identity){t->tid, t->state, t->py_thread_id, t->name, t->is_main};
}

static inline void thread_identity_restore(aprof_thread_sample *t, const thread_identity *id)
{
    t->tid = id->tid;
    t->state = id->state;
    t->py_thread_id = id->py_thread_id;
    t->name = id->name;
    t->is_main = id->is_main;
}

/* pystack.c */

/* Read one thread's stack as a new thread of out. ts: its thread state, copied just before; or,
 * with `predicted`, as the last sample copied it: the thread state is then copied again in the
 * snapshot's own syscall (3.13+) and ts gets that fresh copy. Returns 0, -1 when out of memory,
 * or PYSTACK_NO_TSTATE (predicted only) when the thread state could not be read. */
#define PYSTACK_NO_TSTATE 2
int pystack_sample_thread(pystack *ps, uint64_t tstate, uint8_t *ts, bool predicted,
                          aprof_sample *out);

/* pystack_frames.c */

/* Copy the thread's innermost-frame pointer, data-stack chunk and prefetched frames in one
 * process_vm_readv into w (*where: the pointer's address, *frame: the innermost frame).
 * Returns 0, or -1 when the frame pointer cannot be read.
 * ts_fresh non-NULL: a predicted snapshot (3.13+, where the frame pointer is in the thread
 * state). ts is then the thread state as the last sample copied it; the thread state is copied
 * into ts_fresh first, in the same syscall, and what was chosen from ts must hold for it, else
 * SNAPSHOT_MISPREDICTED (ts_fresh holds the fresh copy: snapshot again from it) or
 * SNAPSHOT_NO_TSTATE (the thread state could not be read: the list changed). */
#define SNAPSHOT_MISPREDICTED 1
#define SNAPSHOT_NO_TSTATE 2
int pystack_snapshot_frames(pystack *ps, const uint8_t *ts, uint64_t tstate, uint8_t *ts_fresh,
                            uint64_t *where, uint64_t *frame, window *w);
/* A frame's bytes: from the snapshot when it holds them (0), else read now (1); -1 unreadable. */
int pystack_frame_bytes(pystack *ps, window *w, uint64_t addr, uint8_t *out, size_t len);
/* A frame's identity (address, caller, code, instruction) from its copied bytes. */
uint64_t pystack_frame_key_of_bytes(const pystack *ps, uint64_t addr, const uint8_t *fb);
/* Turn one frame's copied bytes into an aprof_frame, its caller, owner and asyncio role;
 * *co_flags gets its code object's co_flags (DECODE_OK). */
decode_result pystack_decode_frame(pystack *ps, const uint8_t *fb, uint64_t frame_addr,
                                   int32_t *co_flags, aprof_frame *out, uint64_t *prev, uint64_t *owner_obj,
                                   uint8_t *role);
/* Walk one thread's frame chain innermost-first into t->frames, noting loop marks in lm. */
uint32_t pystack_walk_frames(pystack *ps, uint64_t frame, window *w, aprof_thread_sample *t,
                             loop_marks *lm);
/* Set the thread's loop fields from a walk's marks; the callback frame's address, or 0. */
uint64_t pystack_apply_loop_marks(aprof_thread_sample *t, const loop_marks *lm);
/* After a walk that read frames outside the snapshot: is its innermost frame still the same? */
bool pystack_unchanged_since_walk(pystack *ps, window *w, uint64_t where, uint64_t frame,
                                  const aprof_thread_sample *t);

/* pystack_torn.c */

/* A consistent stack: remember its outer frames for later torn reads of the same thread. */
void pystack_remember_outer(pystack *ps, outer_memo *om, uint64_t tstate,
                            const aprof_thread_sample *t);
/* A torn read: its outer frames verified in its own copy of the data stack, into ps->vframes. */
uint32_t pystack_verify_outer(pystack *ps, const outer_memo *om, uint64_t tstate,
                              const window *w);
/* Read a torn thread again and keep the outer frames confirmed; NULL when out of memory. */
aprof_thread_sample *pystack_confirm_torn(pystack *ps, uint64_t tstate, size_t tsize,
                                          aprof_sample *out);
/* After a thread's final try: remember its task step, or probe it for a torn sample. */
void pystack_update_step_probe(pystack *ps, uint64_t tstate, aprof_thread_sample *t);

/* pystack_stopped.c */

/* A torn read of a thread that runs Python code: read it again with the thread stopped (when
 * a stopper is set). Returns the thread's sample, still torn when that was not possible, NULL
 * when out of memory. */
aprof_thread_sample *pystack_read_stopped(pystack *ps, uint64_t tstate, size_t tsize,
                                          aprof_sample *out);

/* pystack_tiles.c */

/* End of a torn first read: keep its chunk copy for the second read to verify against. */
void pystack_tiles_keep_first(pystack *ps, const window *w, uint64_t frame);
/* Before the second read: have it copy the frames outside the chunk that link the tiles. */
void pystack_tiles_discover(pystack *ps, uint64_t tstate);
/* In the second read: the tiles both copies agree on, into ps->tframes; returns how many. */
uint32_t pystack_tiles_verify(pystack *ps, const window *w);

#endif
