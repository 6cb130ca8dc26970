#include "tui_live.h"

#include "async_stitch.h"
#include "clock.h"
#include "proc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SNAPSHOT_MAX_SHARE 20 /* a snapshot every >= 20x its cost: at most ~5% of the time */

/* ---- samples ----------------------------------------------------------------------------------- */

/* Deep copy (frames and owners; strings are interned and shared). 0 or -1 (ENOMEM). */
static int sample_copy(aprof_sample *dst, const aprof_sample *src)
{
    sample_reset(dst);
    dst->pid = src->pid;
    dst->t_ns = src->t_ns;
    dst->weight_ns = src->weight_ns;
    dst->cost_ns = src->cost_ns;
    for (uint32_t i = 0; i < src->nthreads; i++) {
        const aprof_thread_sample *t = &src->threads[i];
        aprof_thread_sample *d = sample_add_thread(dst, t->nframes ? t->nframes : 1);
        if (!d)
            return -1;
        aprof_frame *frames = d->frames;
        uint64_t *owners = d->owners;
        uint32_t cap = d->cap_frames;
        *d = *t;
        d->frames = frames;
        d->owners = owners;
        d->cap_frames = cap;
        if (t->nframes && t->frames)
            memcpy(frames, t->frames, t->nframes * sizeof(*frames));
        if (t->nframes && t->owners)
            memcpy(owners, t->owners, t->nframes * sizeof(*owners));
        else if (t->nframes)
            memset(owners, 0, t->nframes * sizeof(*owners));
    }
    return 0;
}

/* Everything one sample feeds; with the lock held. */
static tui_proc *proc_of(const tui_live *l, pid_t pid)
{
    for (size_t i = 0; i < l->nprocs; i++)
        if (l->procs[i]->pid == pid)
            return l->procs[i];
    return NULL;
}

static void process(tui_live *l, const aprof_sample *smp)
{
    tui_proc *tp = proc_of(l, smp->pid); /* NULL: it has left (a backlog sample) */
    if (l->stalls)
        stall_detector_feed(l->stalls, smp);
    for (uint32_t i = 0; i < smp->nthreads; i++) {
        const aprof_thread_sample *t = &smp->threads[i];
        if ((t->flags & TSF_TORN) && !(t->flags & TSF_PARTIAL)) {
            l->torn++;
            continue;
        }
        l->marked += (t->flags & TSF_MARKED) != 0;
        agg_profile *p = agg_thread_profile(l->a, smp->pid, t->tid, t->name);
        /* Task-stitched, like record: time grouped by the tasks awaiting each other. */
        uint32_t n = 0;
        if (tp && tp->tasks) {
            async_chain_check check = {asyncio_chain_still_valid, tp->ar};
            n = async_stitch_thread(tp->tasks, t, l->st, l->stitched, APROF_MAX_FRAMES, &check,
                                    l->o.exact_task_names, NULL);
        }
        const aprof_frame *frames = n ? l->stitched : t->frames;
        if (!n)
            n = t->nframes;
        if (!p || agg_profile_add(l->a, p, frames, n, smp->t_ns, smp->weight_ns) != 0) {
            l->oom++;
            continue;
        }
        l->thread_samples++;
    }
}

static void drain_backlog(tui_live *l)
{
    while (l->bl_len > 0) {
        process(l, &l->backlog[l->bl_head]);
        l->bl_head = (l->bl_head + 1) % TUI_BACKLOG_MAX;
        l->bl_len--;
    }
}

static void enqueue(tui_live *l, const aprof_sample *smp)
{
    if (!l->backlog || l->bl_len == TUI_BACKLOG_MAX) {
        atomic_fetch_add(&l->dropped, 1);
        return;
    }
    size_t slot = (l->bl_head + l->bl_len) % TUI_BACKLOG_MAX;
    if (sample_copy(&l->backlog[slot], smp) != 0) {
        atomic_fetch_add(&l->dropped, 1);
        return;
    }
    l->bl_len++;
}

/* ---- task snapshots ----------------------------------------------------------------------------- */

static async_snapshot *back_buffer(tui_proc *p)
{
    return p->tasks == &p->snap[0] ? &p->snap[1] : &p->snap[0];
}

/* The Tasks view's snapshot follows the process shown (lock held). */
static void sync_shown(tui_live *l)
{
    if (l->shown >= l->nprocs)
        l->shown = 0;
    tui_proc *p = l->nprocs ? l->procs[l->shown] : NULL;
    l->tasks = p ? p->tasks : NULL;
    l->tasks_t_ns = p ? p->tasks_t_ns : 0;
    l->tasks_pid = p ? p->pid : 0;
}

static void publish_snapshot(tui_live *l, tui_proc *p)
{
    if (!p->snap_pending)
        return;
    p->tasks = back_buffer(p);
    p->tasks_t_ns = p->snap_last_ns;
    p->snap_pending = false;
    sync_shown(l);
}

static void publish_all(tui_live *l)
{
    for (size_t i = 0; i < l->nprocs; i++)
        publish_snapshot(l, l->procs[i]);
}

static const char *lookup_task(const tui_proc *p, uint64_t coro)
{
    uint32_t i = p->tasks ? async_find_by_coro(p->tasks, coro) : ASYNC_NO_INDEX;
    return i == ASYNC_NO_INDEX ? NULL : p->tasks->tasks[i].name;
}

/* The stall detector asks which task a callback run belongs to (on the sampler thread, lock
 * held). The latest snapshot usually knows; a task newer than it gets a fresh snapshot right
 * away (at most every MISS_SNAPSHOT_NS), so that a stall in a new task still names it. */
#define MISS_SNAPSHOT_NS 200000000ull
static const char *task_of_coroutine(void *ud, pid_t pid, uint64_t coro)
{
    tui_live *l = ud;
    tui_proc *p = proc_of(l, pid);
    if (!p)
        return NULL;
    const char *name = lookup_task(p, coro);
    if (name || !p->ar)
        return name;
    publish_snapshot(l, p);
    if ((name = lookup_task(p, coro)) != NULL)
        return name;
    uint64_t now = aprof_now_ns();
    if (now - p->miss_snap_ns < MISS_SNAPSHOT_NS)
        return NULL;
    p->miss_snap_ns = now;
    uint64_t t0 = now;
    const aprof_sample *feeding = l->feeding && l->feeding->pid == pid ? l->feeding : NULL;
    if (asyncio_snapshot(p->ar, feeding, back_buffer(p)) >= 0) {
        p->snap_last_ns = aprof_now_ns();
        p->snap_cost_ns = p->snap_last_ns - t0;
        p->snap_pending = true;
        publish_snapshot(l, p);
    }
    return lookup_task(p, coro);
}

static void maybe_snapshot(tui_live *l, const aprof_sample *smp)
{
    tui_proc *p = proc_of(l, smp->pid); /* the list changes on this thread only */
    if (!p || !p->ar || p->snap_pending)
        return;
    uint64_t now = aprof_now_ns();
    uint64_t every = atomic_load(&l->tasks_interval_ns);
    if (every < SNAPSHOT_MAX_SHARE * p->snap_cost_ns)
        every = SNAPSHOT_MAX_SHARE * p->snap_cost_ns;
    if (now - p->snap_last_ns < every)
        return;
    async_snapshot *back = back_buffer(p);
    int n = asyncio_snapshot(p->ar, smp, back);
    uint64_t end = aprof_now_ns();
    p->snap_cost_ns = end - now;
    p->snap_last_ns = end;
    if (n >= 0)
        p->snap_pending = true;
}

/* ---- the processes ------------------------------------------------------------------------------ */

static tui_proc *proc_new(session *s)
{
    tui_proc *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->pid = s->src.pid;
    p->s = s;
    proc_cmdline_label(s->cmdline, 60, p->label, sizeof(p->label));
    async_snapshot_init(&p->snap[0]);
    async_snapshot_init(&p->snap[1]);
    p->ar = session_asyncio_reader(s);
    if (!p->ar) {
        free(p);
        return NULL;
    }
    return p;
}

static void proc_free(tui_proc *p)
{
    if (!p)
        return;
    asyncio_reader_free(p->ar);
    async_snapshot_free(&p->snap[0]);
    async_snapshot_free(&p->snap[1]);
    free(p);
}

/* Following: thread profiles named after their process. */
static void label_procs(tui_live *l)
{
    for (size_t i = 0; l->o.follow_root && i < l->nprocs; i++)
        agg_process_label(l->a, l->procs[i]->pid, l->procs[i]->label);
}

static bool on_joined(void *ud, procset_proc *pp, char *why, size_t whylen)
{
    tui_live *l = ud;
    if (l->o.redact)
        session_enable_redaction(pp->s);
    tui_proc *p = proc_new(pp->s);
    if (!p) {
        snprintf(why, whylen, "out of memory");
        return false;
    }
    pthread_mutex_lock(&l->lock);
    l->procs[l->nprocs++] = p; /* the set holds at most as many */
    l->procs_joined++;
    label_procs(l);
    sync_shown(l);
    pthread_mutex_unlock(&l->lock);
    pp->user = p;
    return true;
}

static void on_left(void *ud, procset_proc *pp)
{
    tui_live *l = ud;
    tui_proc *p = pp->user;
    if (!p)
        return;
    pthread_mutex_lock(&l->lock);
    size_t i = 0;
    while (i < l->nprocs && l->procs[i] != p)
        i++;
    if (i < l->nprocs) {
        memmove(&l->procs[i], &l->procs[i + 1], (l->nprocs - i - 1) * sizeof(l->procs[0]));
        l->nprocs--;
        if (l->shown > i)
            l->shown--;
    }
    sync_shown(l);
    pthread_mutex_unlock(&l->lock);
    proc_free(p);
    pp->user = NULL;
}

void tui_live_show_process_locked(tui_live *l, int step)
{
    if (l->nprocs == 0)
        return;
    int n = (int)l->nprocs;
    l->shown = (size_t)(((int)l->shown + step % n + n) % n);
    sync_shown(l);
}

/* ---- the sampler thread ------------------------------------------------------------------------- */

static bool consume(void *ud, const aprof_sample *smp, const sampler_stats *st)
{
    tui_live *l = ud;
    if (atomic_load(&l->stop))
        return false;
    if (pthread_mutex_trylock(&l->lock) == 0) {
        drain_backlog(l);
        l->feeding = smp; /* the live sample: a snapshot taken while feeding it may use it */
        process(l, smp);
        l->feeding = NULL;
        l->stats = *st;
        publish_all(l);
        pthread_mutex_unlock(&l->lock);
    } else {
        enqueue(l, smp);
    }
    maybe_snapshot(l, smp);
    return !atomic_load(&l->stop);
}

static void on_wake(int sig)
{
    (void)sig; /* only interrupts the sampler's sleep */
}

static void *sampler_main(void *arg)
{
    tui_live *l = arg;
    sigset_t only_wake;
    sigfillset(&only_wake);
    sigdelset(&only_wake, SIGUSR1);
    pthread_sigmask(SIG_SETMASK, &only_wake, NULL);
    sampler_opts so = {.rate_hz = l->o.rate_hz, .blocking = l->o.blocking,
                       .nonblocking = l->o.nonblocking};
    sampler_stats st;
    procset ps;
    if (l->o.follow_root) {
        procset_hooks hooks = {on_joined, on_left, NULL, l};
        procset_init(&ps, l->o.follow_root, true, l->st, &hooks);
        sampler_run_set(&ps, &so, consume, l, &st);
    } else {
        sampler_run(l->s, &so, consume, l, &st);
    }
    pthread_mutex_lock(&l->lock);
    drain_backlog(l);
    l->stats = st;
    if (st.target_exited) {
        if (l->stalls)
            stall_detector_finish(l->stalls, st.t_end_ns);
        l->target_exited = true;
    }
    l->finished = true;
    pthread_mutex_unlock(&l->lock);
    if (l->o.follow_root)
        procset_free(&ps); /* on_left takes the lock: not held here */
    return NULL;
}

aprof_status tui_live_start(tui_live *l, session *s, const tui_live_opts *o, aprof_error *err)
{
    memset(l, 0, sizeof(*l));
    l->s = s;
    l->o = *o;
    l->st = s ? s->st : (l->own_st = strtab_new());
    pthread_mutex_init(&l->lock, NULL);
    atomic_init(&l->stop, false);
    atomic_init(&l->dropped, 0);
    atomic_init(&l->tasks_interval_ns, 1000000000ull);
    l->a = l->st ? agg_new(l->st) : NULL;
    l->stitched = malloc(APROF_MAX_FRAMES * sizeof(*l->stitched));
    l->stalls = l->st ? stall_detector_new(o->stall_threshold_ns, l->st) : NULL;
    l->backlog = calloc(TUI_BACKLOG_MAX, sizeof(*l->backlog));
    if (s && (l->single = proc_new(s)) != NULL) {
        l->procs[l->nprocs++] = l->single;
        l->procs_joined = 1;
        sync_shown(l);
    }
    if (!l->a || !l->stalls || !l->backlog || (s && !l->single) || !l->stitched) {
        tui_live_free(l);
        return aprof_error_set(err, APROF_E_INTERNAL, "out of memory");
    }
    stall_detector_set_task_resolver(l->stalls, task_of_coroutine, l);
    l->reset_ns = aprof_now_ns();

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_wake;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL); /* no SA_RESTART: the sleep ends at once */

    /* The thread starts with every signal blocked but its wake-up one, so that Ctrl-C, SIGTERM
     * and SIGWINCH go to the UI thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&l->thread, NULL, sampler_main, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        tui_live_free(l);
        return aprof_error_set(err, APROF_E_INTERNAL, "cannot start the sampling thread: %s",
                               strerror(rc));
    }
    l->started = true;
    return APROF_OK;
}

void tui_live_stop(tui_live *l)
{
    if (!l->started)
        return;
    atomic_store(&l->stop, true);
    pthread_kill(l->thread, SIGUSR1);
    pthread_join(l->thread, NULL);
    l->started = false;
}

void tui_live_free(tui_live *l)
{
    tui_live_stop(l);
    if (l->backlog) {
        for (size_t i = 0; i < TUI_BACKLOG_MAX; i++)
            sample_free(&l->backlog[i]);
        free(l->backlog);
    }
    proc_free(l->single);
    stall_detector_free(l->stalls);
    agg_free(l->a);
    free(l->stitched);
    strtab_free(l->own_st);
    pthread_mutex_destroy(&l->lock);
    memset(l, 0, sizeof(*l));
}

void tui_live_lock(tui_live *l)
{
    pthread_mutex_lock(&l->lock);
}

void tui_live_unlock(tui_live *l)
{
    pthread_mutex_unlock(&l->lock);
}

int tui_live_reset_locked(tui_live *l)
{
    agg *a = agg_new(l->st);
    stall_detector *d = stall_detector_new(l->o.stall_threshold_ns, l->st);
    if (!a || !d) {
        agg_free(a);
        stall_detector_free(d);
        return -1;
    }
    stall_detector_set_task_resolver(d, task_of_coroutine, l);
    agg_free(l->a);
    stall_detector_free(l->stalls);
    l->a = a;
    l->stalls = d;
    label_procs(l);
    l->thread_samples = l->torn = l->marked = l->oom = 0;
    atomic_store(&l->dropped, 0);
    l->reset_ns = aprof_now_ns();
    return 0;
}

void tui_live_set_tasks_interval(tui_live *l, uint64_t ns)
{
    atomic_store(&l->tasks_interval_ns, ns);
}
