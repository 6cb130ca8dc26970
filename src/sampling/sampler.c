#include "sampler.h"

#include "clock.h"
#include "stop.h"
#include "freezer.h"
#include "native_stack.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONSECUTIVE_ERRORS 50
#define CODECACHE_REVALIDATE_NS 250000000ull
#define MAX_WEIGHT_INTERVALS 4
#define THREAD_STOP_TIMEOUT_NS 10000000ull /* a running thread stops within microseconds */
#define STOP_BUDGET 0.01 /* default mode: at most this share of the time spent stopping threads */
#define STOP_MAX_RATE_HZ 1000.0 /* ... and only at rates up to this */

/* Sample times form a Poisson process: the gaps between them are drawn from an exponential
 * distribution whose mean is the period asked for. Two reasons:
 *  - nothing periodic in the target can lock in phase with them (an event loop whose timers
 *    fire every millisecond would otherwise always be caught at the same point of its cycle);
 *  - Poisson arrivals see time averages (PASTA): the states they find are distributed as the
 *    target's states over time, even when sampling disturbs the target. A stopped event loop
 *    has work waiting when it is let go and runs busy for a while; samples drawn a fixed-ish
 *    time after the last one would always look past that spell, Poisson samples see it as often
 *    as it happens.
 * So each sample stands for the mean free-running time between samples (not the gap before
 * it, which depends on what the target did), plus the time it took itself: threads stopped for
 * it stay in the state it shows until they are let go, and no sample can start meanwhile (a
 * sample that stops a busy thread takes longer than one of a waiting thread: without its own
 * time, busy code would be under-counted by that dead time). */
typedef struct jitter {
    uint64_t state;
} jitter;

static uint64_t jitter_next(jitter *j)
{
    /* xorshift64*: plenty for spreading sample times */
    j->state ^= j->state >> 12;
    j->state ^= j->state << 25;
    j->state ^= j->state >> 27;
    return j->state * 0x2545f4914f6cdd1dull;
}

#define MAX_GAP_PERIODS 20.0 /* e^-20: a cap that changes nothing but rules out a lost minute */

static uint64_t exp_gap(jitter *j, uint64_t mean)
{
    /* 53 random bits -> (0, 1] */
    double u = (double)((jitter_next(j) >> 11) + 1) * (1.0 / 9007199254740992.0);
    double g = -log(u);
    if (g > MAX_GAP_PERIODS)
        g = MAX_GAP_PERIODS;
    uint64_t d = (uint64_t)(g * (double)mean);
    return d ? d : 1;
}

/* The sampler runs under real-time scheduling (SCHED_FIFO, lowest priority) when it may: it
 * sleeps, takes each sample and does the bookkeeping after it (aggregation, task snapshots)
 * that way. It drops to normal scheduling only while threads of the target are held stopped
 * (--blocking, --native, a torn thread in the default mode, once the stops are asked for): a
 * thread that shares its CPU must be let run to reach the stop.
 * Why real time: sample times must not depend on what the target does.
 *  - Waking: when a busy target thread runs on the CPU the sampler wakes up on, the normal
 *    scheduler lets it run on until it blocks, and the sample lands when the target is idle: an
 *    event loop sharing a CPU with aprof was seen 96% idle at the sampled moments while 76%
 *    idle by its own clock. A real-time thread preempts it at once.
 *  - The bookkeeping: at normal priority it takes turns with a busy target thread on a shared
 *    CPU, so that the target's busy spells (never its waits, which need no CPU) are lengthened
 *    exactly while no sample can be taken, and the next sample is late until the target blocks:
 *    a loop 40% busy by its own clock read 4 to 6 points under in every such run (within a
 *    point on a CPU of its own). In real time a thread on the shared CPU stands still, in
 *    whatever state the sample found it; one on another CPU runs on undisturbed. */
static bool realtime(bool on)
{
    struct sched_param sp = {.sched_priority = on ? 1 : 0};
    return sched_setscheduler(0, on ? SCHED_FIFO | SCHED_RESET_ON_FORK : SCHED_OTHER, &sp) == 0;
}

static bool skip_sleeper(void *ud, pid_t tid)
{
    char c = proc_thread_state(ud, tid);
    return c == 'S' || c == 'D';
}

typedef struct rt_state {
    bool allowed, on;
} rt_state;

static void enter_realtime(rt_state *rt)
{
    if (rt->allowed && !rt->on)
        rt->on = realtime(true);
}

/* Normal scheduling while stopped threads are waited for (see above). */
static void leave_realtime(void *ud)
{
    rt_state *rt = ud;
    if (rt->on)
        realtime(false);
    rt->on = false;
}

static void sleep_until(uint64_t deadline_ns)
{
    struct timespec ts = {(time_t)(deadline_ns / 1000000000ull), (long)(deadline_ns % 1000000000ull)};
    /* EINTR (a stop signal) returns early: the loop checks aprof_stop_requested. */
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* The default mode reads without stopping; a thread whose stack changed while read (it runs
 * Python code) is stopped on its own and read again (src/cpython/pystack_stopped.c). */
typedef struct thread_stopper {
    freezer *fz;
    sampler_stats *st;
    uint64_t start_ns;
} thread_stopper;

static int stop_thread(void *ud, pid_t tid)
{
    thread_stopper *ts = ud;
    /* A budget: stops that would hold the target stopped for more than STOP_BUDGET of the
     * time are not made (the stack is then kept as two reads verify it). At 1 kHz a busy loop
     * needs about 0.5%; at 4 kHz the stops and the dead time they leave (no sample can start
     * during one) would otherwise bias the profile toward idle code. */
    uint64_t now = aprof_now_ns();
    if (now > ts->start_ns && (double)ts->st->stopped_ns > STOP_BUDGET * (double)(now - ts->start_ns)) {
        errno = EAGAIN;
        return -1;
    }
    return freezer_stop_thread(ts->fz, tid, THREAD_STOP_TIMEOUT_NS);
}

static void resume_thread(void *ud, pid_t tid)
{
    thread_stopper *ts = ud;
    (void)tid;
    if (ts->fz->n) {
        ts->st->stopped_ns += aprof_now_ns() - ts->fz->first_stop_ns;
        ts->st->thread_stops++;
    }
    freezer_resume(ts->fz);
}

static bool reap_child(pid_t child, sampler_stats *st)
{
    int status;
    pid_t r = waitpid(child, &status, WNOHANG);
    /* A traced child (--blocking, --native) also reports ptrace stops here: not an exit. */
    if (r == child && (WIFEXITED(status) || WIFSIGNALED(status))) {
        st->child_reaped = true;
        st->child_status = status;
        return true;
    }
    return false;
}

/* The sampler's state for one process of the set. */
typedef struct slot {
    freezer fz;
    thread_stopper stopper;
    uint64_t prev_end, free_total, nfree, last_revalidate;
    uint64_t owed;     /* sample time held back by the cap on a sample's own time (below) */
    uint64_t credited; /* time its samples stand for */
    int consecutive_errors;
} slot;

static slot *slot_of(procset_proc *p, sampler_stats *st, rt_state *rt, uint64_t now)
{
    if (p->sampler)
        return p->sampler;
    slot *sl = calloc(1, sizeof(*sl));
    if (!sl)
        return NULL;
    session *s = p->s;
    freezer_init(&sl->fz, s->src.pid);
    /* --blocking stops only threads that are running: one asleep in a system call cannot
     * change its stack before it wakes (and if it wakes during the read, the read's own checks
     * see it), and stopping it would end its wait early: an event loop's epoll_wait, retried
     * with its timeout rounded up to a whole millisecond, would then idle longer each time it
     * is sampled, and a sampler at 1 kHz would keep it idle. */
    sl->fz.skip = skip_sleeper;
    sl->fz.skip_ud = s->stat;
    sl->fz.on_interrupted = leave_realtime;
    sl->fz.on_interrupted_ud = rt;
    if (s->native) {
        s->native->fz.on_interrupted = leave_realtime;
        s->native->fz.on_interrupted_ud = rt;
    }
    sl->stopper = (thread_stopper){&sl->fz, st, st->t_start_ns};
    sl->last_revalidate = now;
    p->sampler = sl;
    return sl;
}

static void slot_release(procset_proc *p)
{
    slot *sl = p->sampler;
    if (!sl)
        return;
    p->s->ps.stopper = (thread_stop_fn){0};
    if (p->s->native)
        p->s->native->fz.on_interrupted = NULL;
    freezer_free(&sl->fz);
    free(sl);
    p->sampler = NULL;
}

typedef struct run {
    const sampler_opts *o;
    sampler_stats *st;
    rt_state rt;
    uint64_t interval;
    uint64_t credited; /* time the samples of the most sampled process stand for */
    aprof_sample smp;
} run;

/* Sample one process. false when it is to leave the set (exited, or unreadable for long). */
static bool sample_one(run *r, procset_proc *p, slot *sl, sampler_consumer consume, void *ud,
                       bool *stop)
{
    const sampler_opts *o = r->o;
    sampler_stats *st = r->st;
    session *s = p->s;
    /* Above STOP_MAX_RATE_HZ the default mode reads like --nonblocking: at 4 kHz a busy loop's
     * busy share came out 2 to 5 points low with these stops (docs/limits.md), without them
     * within one. */
    bool stopping = o->blocking || s->native;
    if (!stopping && !o->nonblocking && o->rate_hz <= STOP_MAX_RATE_HZ)
        s->ps.stopper = (thread_stop_fn){stop_thread, resume_thread, &sl->stopper};
    /* A thread that took longer than THREAD_STOP_TIMEOUT_NS to stop (for a torn read) stops
     * later, and would stay stopped: nothing else calls the freezer until a read tears again,
     * and a stopped thread's stack never does. */
    freezer_settle(&sl->fz);
    uint64_t t0 = aprof_now_ns();
    aprof_sample *smp = &r->smp;
    sample_reset(smp);
    bool frozen = false;
    int nfrozen = 0;
    if (o->blocking && !s->native) { /* --native stops the target itself */
        nfrozen = freezer_stop(&sl->fz);
        frozen = nfrozen >= 0;
        /* an exited process not reaped yet (a zombie) refuses PTRACE_SEIZE with EPERM */
        if (!frozen && sl->fz.last_errno != ESRCH && !st->freeze_errno && proc_alive(s->src.pid))
            st->freeze_errno = sl->fz.last_errno;
    }
    int n = session_sample(s, smp);
    int read_errno = errno;
    if (frozen && nfrozen > 0) /* what a stopped thread lost: counted before it resumes */
        st->stopped_ns += aprof_now_ns() - sl->fz.first_stop_ns;
    if (frozen)
        freezer_resume(&sl->fz);
    uint64_t t1 = aprof_now_ns();
    enter_realtime(&r->rt); /* every thread runs free again: the bookkeeping (see above) */
    if (n < 0) {
        /* A failed read of a process that is exiting is the end, not an error. */
        if (read_errno == ESRCH || !proc_alive(s->src.pid)) {
            p->exited = true;
            return false;
        }
        st->errors++;
        return ++sl->consecutive_errors <= MAX_CONSECUTIVE_ERRORS;
    }
    sl->consecutive_errors = 0;
    smp->t_ns = t0;
    /* The mean free-running time between samples so far, plus this sample's own time when
     * threads were stopped for it (see exp_gap), the latter capped: a read held up for long
     * (aprof starved of CPU) is no evidence that the target sat in this state all along. The
     * mean, not this sample's own gap: how long the target ran free before a sample is not
     * independent of the state it is then found in. */
    sl->free_total += sl->prev_end ? t0 - sl->prev_end : r->interval;
    sl->nfree++;
    /* No sample can be taken while one is: its own time is dead time that follows the state
     * it found (threads stopped for it stay in that state; in the default mode a running
     * thread is stopped and read again, a waiting one is read at once). Not crediting it would
     * under-count the states that take longer to read: busy code. */
    uint64_t took = t1 - t0, cap = MAX_WEIGHT_INTERVALS * r->interval;
    uint64_t own = took > cap ? cap : took;
    /* What the cap holds back is not dropped but owed, and paid out to the samples that follow,
     * each getting at most its own weight again: it goes to the states the target is found in
     * afterwards, in proportion, since nothing is known of where it was while aprof was held
     * up (on a loaded machine a thread waiting for a CPU takes milliseconds to stop, and
     * --blocking held targets stopped 30-50% of the time in the test suite under a CPU hog).
     * Paid before this sample's own excess is added, which is no evidence for the state it
     * found. What is still owed at the end is in the summary's uncredited_s. */
    uint64_t base = sl->free_total / sl->nfree + own;
    uint64_t pay = sl->owed < base ? sl->owed : base;
    sl->owed = sl->owed - pay + (took - own);
    smp->weight_ns = base + pay;
    sl->prev_end = t1;
    smp->cost_ns = (uint32_t)(took > UINT32_MAX ? UINT32_MAX : took);
    st->cost_ns_total += took;
    st->samples++;
    p->samples++;
    sl->credited += smp->weight_ns;
    if (sl->credited > r->credited)
        r->credited = sl->credited;
    if (!consume(ud, smp, st))
        *stop = true;
    if (t1 - sl->last_revalidate >= CODECACHE_REVALIDATE_NS) {
        codecache_revalidate(s->ps.cc, &s->m);
        session_prune_threads(s);
        sl->last_revalidate = t1;
    }
    return true;
}

/* Drop procs[i]: the sampler's state first, then the set's entry. */
static void drop(procset *ps, size_t i, bool exited)
{
    slot_release(ps->procs[i]);
    procset_drop(ps, i, exited);
}

int sampler_run_set(procset *ps, const sampler_opts *o, sampler_consumer consume, void *ud,
                    sampler_stats *st)
{
    memset(st, 0, sizeof(*st));
    /* The default 50 us timer slack would smear a 1 kHz schedule; ask for precise wakeups. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    run r = {.o = o, .st = st, .interval = (uint64_t)(1e9 / o->rate_hz)};
    if (r.interval == 0)
        r.interval = 1;
    sample_init(&r.smp);
    uint64_t start = aprof_now_ns();
    uint64_t end = o->duration_s > 0 ? start + (uint64_t)(o->duration_s * 1e9) : UINT64_MAX;
    uint64_t next = start, last_progress = 0;
    jitter jit = {start ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull};
    st->realtime = realtime(true);
    r.rt = (rt_state){st->realtime, st->realtime};
    st->t_start_ns = start;
    procset_refresh(ps, start, true);
    bool stop = false;
    while (!aprof_stop_requested && !stop) {
        uint64_t t0 = aprof_now_ns();
        if (t0 >= end)
            break;
        procset_refresh(ps, t0, false);
        if (ps->n == 0 && (!ps->follow || ps->root_gone)) {
            st->target_exited = true;
            break;
        }
        if (ps->n)
            st->ticks++;
        for (size_t i = 0; i < ps->n && !stop;) {
            procset_proc *p = ps->procs[i];
            enter_realtime(&r.rt); /* the one before may have left it */
            slot *sl = slot_of(p, st, &r.rt, t0);
            if (!sl) {
                i++;
                continue;
            }
            if (sample_one(&r, p, sl, consume, ud, &stop)) {
                i++;
                continue;
            }
            bool exited = p->exited;
            drop(ps, i, exited);
            if (!ps->follow) {
                st->target_exited = exited;
                stop = true;
            }
        }
        if (o->child && reap_child(o->child, st)) {
            st->target_exited = true;
            break;
        }
        uint64_t t1 = aprof_now_ns();
        if (o->progress && t1 - last_progress >= 250000000ull) {
            o->progress(o->progress_ud, st, t1, false);
            last_progress = t1;
        }
        next += exp_gap(&jit, r.interval);
        enter_realtime(&r.rt);
        uint64_t now = aprof_now_ns();
        if (next < now) {
            /* The sample time passed while aprof was busy: start the draw again from now
             * (a Poisson process has no memory). Sampling at once instead would catch the
             * target just after it was let go, when a stopped event loop works off what
             * piled up: a rate aprof cannot keep up with would then overstate busy time. */
            if (ps->n)
                st->late++;
            next = now + exp_gap(&jit, r.interval);
        }
        if (next > now)
            sleep_until(next < end ? next : end);
    }
    leave_realtime(&r.rt);
    for (size_t i = 0; i < ps->n; i++)
        slot_release(ps->procs[i]);
    st->t_end_ns = aprof_now_ns();
    /* Time no sample stands for: aprof did not get to sample as often as asked (starved of
     * CPU, or the asked rate is more than it can take). */
    uint64_t wall = st->t_end_ns - st->t_start_ns;
    st->uncredited_ns = wall > r.credited ? wall - r.credited : 0;
    if (o->progress)
        o->progress(o->progress_ud, st, st->t_end_ns, true);
    sample_free(&r.smp);
    return 0;
}

int sampler_run(session *s, const sampler_opts *o, sampler_consumer consume, void *ud,
                sampler_stats *st)
{
    procset ps;
    procset_init(&ps, s->src.pid, false, s->st, NULL);
    if (procset_add_session(&ps, s) != 0) {
        memset(st, 0, sizeof(*st));
        return -1;
    }
    int rc = sampler_run_set(&ps, o, consume, ud, st);
    procset_free(&ps);
    return rc;
}
