/* Torn stacks read again: at once without a stop where that tends to hold (reread_memo, see
 * FRESH_TRIES), then with their thread stopped.
 *
 * A thread that runs Python code changes its stack faster than one copy of it takes: a task
 * step that calls small functions pushes and pops a frame every microsecond or so, and a
 * non-stopping read of it is torn most of the time. Two reads then agree only on the frames
 * below the task step (pystack_torn.c), and the functions inside it go uncounted. So when a
 * stopper is set (the default; `--nonblocking` leaves it unset), a torn thread is stopped on
 * its own (ptrace, a few tens of microseconds) and read whole; the other threads never are.
 * Threads that wait (an event loop in its selector, a thread blocked on a lock) read
 * consistently without it, so their timed waits are not interrupted.
 *
 * The read is a few microseconds after the sampled moment. The thread ran Python code at that
 * moment; if it is found back in its event loop's selector, that is what it does after: the
 * sample keeps the loop's frames down to _run_once and marks the rest <unreadable> (busy time,
 * what ran not known) rather than crediting the wait with busy time. */
#include "pystack_internal.h"
#include "clock.h"

#include <errno.h>


#define STOPPED_TRIES 3
/* A fresh read without a stop before one is made: a stop costs the thread tens of microseconds
 * (interrupt, reschedule, cold caches), a read costs it nothing. Both see a moment microseconds
 * after the sampled one (see above). On a 32-deep pure-Python stack nearly every such read is
 * consistent and the stops disappear (bench/vs_cpython_sampler.py: the target slowdown at 1 kHz
 * fell to that of --nonblocking); on a busy event loop about 1 in 20 is, so it is made only
 * for a thread where at least 1 in 4 was (reread_memo), else one in 16 times. */
#define FRESH_TRIES 1
#define FRESH_MIN_TRIES 8
#define FRESH_PROBE_EVERY 16

static bool fresh_worth_trying(reread_memo *rm)
{
    if (rm->tries < FRESH_MIN_TRIES || 4u * rm->ok >= rm->tries ||
        ++rm->skipped >= FRESH_PROBE_EVERY) {
        rm->skipped = 0;
        return true;
    }
    return false;
}

static void fresh_outcome(reread_memo *rm, bool ok)
{
    rm->tries++;
    rm->ok += ok;
    if (rm->tries >= 64) {
        rm->tries /= 2;
        rm->ok /= 2;
    }
}
/* A thread let go resumes at the very instruction it stopped at: stopped again at once, it
 * would be found there again. Give it this long to move on. */
#define RETRY_GAP_NS 20000ull

/* Wait without sleeping (a sleep lasts at least the timer slack, and longer on a busy host). */
static void let_run(uint64_t ns)
{
    uint64_t end = aprof_now_ns() + ns;
    while (aprof_now_ns() < end)
        ;
}

/* An event loop found waiting by the stopped read while the first read found it running: keep
 * its frames down to _run_once, then the mark (see above). */
static void mark_went_idle(pystack *ps, aprof_thread_sample *t)
{
    uint32_t keep = ps->run_once_at >= 0 ? (uint32_t)ps->run_once_at + 1 : 0;
    if (keep >= t->cap_frames)
        keep = t->cap_frames - 1;
    if (keep > t->nframes)
        keep = t->nframes;
    t->frames[keep] = (aprof_frame){ps->unreadable, "", 0, FRAME_MARK, 0};
    t->owners[keep] = 0;
    t->nframes = keep + 1;
    t->flags = (t->flags & ~(uint32_t)(TSF_NO_PYTHON | TSF_TRUNCATED)) | TSF_TORN |
               TSF_PARTIAL | TSF_MARKED;
    t->loop_idle = 0;
    t->callback_frame = -1;
    t->callback_id = 0;
    ps->stats.went_idle++;
    ps->stats.partial++;
}

/* One more read of thread tid into the last thread of out (replacing it), with the thread
 * stopped when `stop`. 0, 1 when the thread could not be stopped or read (out unchanged), -1
 * when out of memory. */
static int read_once(pystack *ps, uint64_t tstate, size_t tsize, aprof_sample *out, pid_t tid,
                     bool stop)
{
    if (stop && ps->stopper.stop(ps->stopper.ud, tid) != 0) {
        if (errno != EAGAIN) /* EAGAIN: over the stop budget, or a thread slow to stop */
            ps->stats.stop_failures++;
        if (errno == EPERM)
            ps->stopper.stop = NULL; /* not allowed (another tracer?): no more tries */
        return 1;
    }
    /* A new moment: pages cached by the torn read (C-stack entry frames, coroutine frames)
     * are from before it. */
    mem_begin_sample(ps->m);
    uint8_t ts2[TSTATE_READ];
    if (mem_read_direct(ps->m, tstate, ts2, tsize) != (ssize_t)tsize) {
        if (stop)
            ps->stopper.resume(ps->stopper.ud, tid);
        return 1;
    }
    out->nthreads--;
    ps->in_reread = true;
    int rc = pystack_sample_thread(ps, tstate, ts2, false, out);
    ps->in_reread = false;
    if (stop) {
        ps->stopper.resume(ps->stopper.ud, tid);
        ps->stats.stopped_reads++;
    } else {
        ps->stats.fresh_reads++;
    }
    return rc;
}

aprof_thread_sample *pystack_read_stopped(pystack *ps, uint64_t tstate, size_t tsize,
                                          aprof_sample *out)
{
    aprof_thread_sample *t = &out->threads[out->nthreads - 1];
    if (!ps->stopper.stop || t->tid <= 0)
        return t;
    /* A loop whose first read began in its selector was waiting at the sampled moment and
     * woke while read: pystack_confirm_torn keeps it idle. */
    if (t->loop != LOOP_NONE && t->loop_idle && t->nframes > 0)
        return t;
    thread_identity id = thread_identity_of(t);
    /* A thread stopped between two instructions can be half-way through a call from C into
     * Python (3.11/3.12 publish a new _PyCFrame before its frame pointer is set; a new frame is
     * linked before it is filled in), now and then in a task step that
     * makes many such calls. Its stack is then torn even though it stands still; a few microseconds
     * later it is past that point. */
    reread_memo *rm = &ps->reread[(tstate >> 6) % PREFETCH_SLOTS];
    if (rm->tstate != tstate)
        *rm = (reread_memo){.tstate = tstate};
    int fresh = fresh_worth_trying(rm) ? FRESH_TRIES : 0;
    for (int tries = 0; tries < fresh + STOPPED_TRIES; tries++) {
        bool stop = tries >= fresh;
        if (tries > fresh)
            let_run(RETRY_GAP_NS);
        int rc = read_once(ps, tstate, tsize, out, id.tid, stop);
        if (rc < 0)
            return NULL;
        if (rc == 0) {
            t = &out->threads[out->nthreads - 1];
            thread_identity_restore(t, &id);
        }
        bool ok = rc == 0 && !(t->flags & TSF_TORN);
        if (!stop) {
            fresh_outcome(rm, ok);
            ps->stats.fresh_ok += ok;
        }
        if (ok || (stop && (rc > 0 || !ps->stopper.stop)))
            break;
    }
    t = &out->threads[out->nthreads - 1];
    if (!(t->flags & TSF_TORN) && t->loop == LOOP_ASYNCIO && t->loop_idle)
        mark_went_idle(ps, t);
    return t;
}
