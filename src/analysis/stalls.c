#include "stalls.h"

#include "grow.h"
#include "stall_groups.h"

#include "lag_hist.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LOOPS 64
#define MAX_CULPRITS 64

typedef struct culprit_count {
    aprof_frame frame;
    uint32_t count;
    aprof_frame *stack; /* the first sample's stack with this culprit */
    uint32_t nstack;
} culprit_count;

typedef struct loop_track {
    pid_t pid, tid;
    const char *thread_name;
    uint8_t kind;
    uint64_t first_t, last_t;   /* first and last sample seen */
    uint64_t cb_last_t;         /* last sample that showed the current callback run */
    uint64_t weight_ns, busy_weight_ns; /* what the samples stand for, and of that the busy */
    bool busy;                  /* state at last_t */
    uint64_t busy_start;        /* boundary estimate where the current busy stretch began */
    /* current callback run */
    uint64_t cb_id;
    uint64_t cb_start;
    uint64_t cb_start_gap;      /* gap between the samples that straddle cb_start */
    uint32_t cb_samples;
    uint32_t cb_gc_samples;     /* ... of them, samples of the cyclic GC running */
    const char *cb_task;
    uint64_t cb_coro;           /* coroutine owning the callback's first frame, 0 if none */
    bool cb_clipped;            /* the callback run was already running at the first sample */
    const char *cb_name;
    culprit_count culprits[MAX_CULPRITS];
    uint32_t nculprits;
    lag_hist *lag;              /* busy stretch durations (lag_hist.h) */
    uint64_t stalls;
} loop_track;

struct stall_detector {
    uint64_t threshold_ns;
    strtab *st;
    stall_task_fn task_fn;
    void *task_ud;
    stall_stretch_fn stretch_fn;
    void *stretch_ud;
    loop_track loops[MAX_LOOPS];
    size_t nloops;
    stall_event *events;
    size_t nevents, cap_events;
};

stall_detector *stall_detector_new(uint64_t threshold_ns, strtab *st)
{
    stall_detector *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->threshold_ns = threshold_ns;
    d->st = st;
    return d;
}

static void clear_culprits(loop_track *lt)
{
    for (uint32_t i = 0; i < lt->nculprits; i++)
        free(lt->culprits[i].stack);
    lt->nculprits = 0;
}

void stall_detector_free(stall_detector *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->nloops; i++) {
        clear_culprits(&d->loops[i]);
        if (d->loops[i].lag)
            lag_hist_free(d->loops[i].lag);
        free(d->loops[i].lag);
    }
    for (size_t i = 0; i < d->nevents; i++)
        free(d->events[i].stack);
    free(d->events);
    free(d);
}

void stall_detector_set_task_resolver(stall_detector *d, stall_task_fn fn, void *ud)
{
    d->task_fn = fn;
    d->task_ud = ud;
}

void stall_detector_set_stretch_sink(stall_detector *d, stall_stretch_fn fn, void *ud)
{
    d->stretch_fn = fn;
    d->stretch_ud = ud;
}

int stall_is_own_code(const char *file)
{
    if (!file || !*file || file[0] == '<')
        return 0; /* frozen modules, <string>, unknown */
    if (strstr(file, "/site-packages/") || strstr(file, "/dist-packages/"))
        return 0;
    /* The standard library: .../lib/python3.N/... (pyenv, Debian, venvs' base). */
    const char *p = strstr(file, "/lib/python3");
    if (p) {
        p += strlen("/lib/python3");
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9')
                p++;
            if (*p == '/')
                return 0;
        }
    }
    return 1;
}

static loop_track *find_track(stall_detector *d, pid_t tid)
{
    for (size_t i = 0; i < d->nloops; i++)
        if (d->loops[i].tid == tid)
            return &d->loops[i];
    return NULL;
}

static loop_track *track_of(stall_detector *d, pid_t pid, const aprof_thread_sample *t)
{
    for (size_t i = 0; i < d->nloops; i++)
        if (d->loops[i].tid == t->tid)
            return &d->loops[i];
    if (d->nloops == MAX_LOOPS)
        return NULL;
    loop_track *lt = &d->loops[d->nloops++];
    memset(lt, 0, sizeof(*lt));
    lt->pid = pid;
    lt->tid = t->tid;
    lt->thread_name = t->name;
    lt->kind = t->loop;
    return lt;
}

/* A busy stretch [start, end] of the loop ended. */
static int push_lag(stall_detector *d, loop_track *lt, uint64_t start, uint64_t end)
{
    if (d->stretch_fn)
        d->stretch_fn(d->stretch_ud, lt->pid, lt->tid, start, end);
    if (!lt->lag && !(lt->lag = calloc(1, sizeof(*lt->lag))))
        return -1;
    return lag_hist_add(lt->lag, end > start ? end - start : 0, end);
}

/* The frame blamed for one sample of a callback run: the innermost frame of the program's own
 * code inside the callback, else the innermost frame of the callback. */
static int blame_index(const aprof_thread_sample *t)
{
    int first = t->callback_frame >= 0 ? t->callback_frame : 0;
    for (int i = (int)t->nframes - 1; i >= first; i--)
        if (t->frames[i].kind == FRAME_PYTHON && stall_is_own_code(t->frames[i].file))
            return i;
    return t->nframes ? (int)t->nframes - 1 : -1;
}

static bool same_frame(const aprof_frame *a, const aprof_frame *b)
{
    return a->name == b->name && a->file == b->file && a->line == b->line;
}

static void count_culprit(loop_track *lt, const aprof_thread_sample *t)
{
    int bi = blame_index(t);
    if (bi < 0)
        return;
    const aprof_frame *f = &t->frames[bi];
    for (uint32_t i = 0; i < lt->nculprits; i++) {
        if (same_frame(&lt->culprits[i].frame, f)) {
            lt->culprits[i].count++;
            return;
        }
    }
    if (lt->nculprits == MAX_CULPRITS)
        return;
    culprit_count *c = &lt->culprits[lt->nculprits];
    c->frame = *f;
    c->count = 1;
    c->nstack = t->nframes;
    c->stack = malloc((t->nframes ? t->nframes : 1) * sizeof(aprof_frame));
    if (!c->stack)
        return;
    memcpy(c->stack, t->frames, t->nframes * sizeof(aprof_frame));
    lt->nculprits++;
}

static void start_callback(loop_track *lt, const aprof_thread_sample *t, uint64_t at,
                           uint64_t gap)
{
    lt->cb_clipped = false;
    clear_culprits(lt);
    lt->cb_id = t->callback_id;
    lt->cb_start = at;
    lt->cb_start_gap = gap;
    lt->cb_samples = 0;
    lt->cb_gc_samples = 0;
    lt->cb_task = NULL;
    lt->cb_name = NULL;
    lt->cb_coro = 0;
    if (t->callback_frame >= 0 && (uint32_t)t->callback_frame < t->nframes) {
        lt->cb_name = t->frames[t->callback_frame].name;
        lt->cb_coro = t->owners ? t->owners[t->callback_frame] : 0;
    }
}

/* End the current callback run at `at`; report it when it lasted at least the threshold.
 * `gap`: between the samples that straddle `at`. `clipped`: it is ended by the end of the
 * recording, not seen ending. */
static size_t end_callback(stall_detector *d, loop_track *lt, uint64_t at, uint64_t gap,
                           bool clipped)
{
    size_t reported = 0;
    uint64_t dur = at > lt->cb_start ? at - lt->cb_start : 0;
    if (lt->cb_samples > 0 && dur >= d->threshold_ns && lt->nculprits > 0) {
        uint32_t best = 0;
        for (uint32_t i = 1; i < lt->nculprits; i++)
            if (lt->culprits[i].count > lt->culprits[best].count)
                best = i;
        if (!grow_array((void **)&d->events, &d->cap_events, d->nevents + 1, sizeof(*d->events),
                        64, SIZE_MAX))
            goto out;
        culprit_count *c = &lt->culprits[best];
        /* Resolved at the end: a task created just before it ran may be known only now. */
        if (lt->cb_coro && d->task_fn)
            lt->cb_task = d->task_fn(d->task_ud, lt->pid, lt->cb_coro);
        stall_event *e = &d->events[d->nevents++];
        *e = (stall_event){
            .start_ns = lt->cb_start, .end_ns = at, .pid = lt->pid, .tid = lt->tid,
            .thread_name = lt->thread_name, .callback = lt->cb_name,
            /* a snapshot's task names do not live forever (asyncio_reader.h) */
            .task = lt->cb_task ? strtab_intern_cstr(d->st, lt->cb_task) : NULL,
            .culprit = c->frame, .stack = c->stack, .nstack = c->nstack,
            .samples = lt->cb_samples,
            .gc_samples = lt->cb_gc_samples,
            .uncertainty_ns = lt->cb_start_gap / 2 + gap / 2,
            .impact = dur >= 2 * d->threshold_ns ? STALL_CRITICAL : STALL_WARNING,
            .loop = lt->kind,
            .clipped = clipped || lt->cb_clipped,
        };
        c->stack = NULL; /* ownership moved to the event */
        lt->stalls++;
        reported = 1;
    }
out:
    clear_culprits(lt);
    lt->cb_samples = 0;
    lt->cb_gc_samples = 0;
    lt->cb_id = 0;
    return reported;
}

/* Where two samples disagree, the change is placed half-way: the loop's busy/idle state between
 * the last sample of any kind and this one, a callback run's end between the last sample that
 * showed that run (cb_last_t: torn samples in between may not have) and this one. */
static uint64_t half_way(uint64_t from, uint64_t now)
{
    return from + (now - from) / 2;
}

/* The current callback run ends (at half-way from its last sighting) and, if `t` is busy, the
 * one `t` shows begins there. */
static size_t switch_callback(stall_detector *d, loop_track *lt, const aprof_thread_sample *t,
                              uint64_t now)
{
    uint64_t gap = now - lt->cb_last_t, at = half_way(lt->cb_last_t, now);
    size_t reported = end_callback(d, lt, at, gap, false);
    start_callback(lt, t, at, gap);
    lt->cb_last_t = now;
    return reported;
}

/* The loop, idle at the last sample, is busy now. */
static void become_busy(loop_track *lt, const aprof_thread_sample *t, uint64_t now)
{
    uint64_t gap = now - lt->last_t, at = half_way(lt->last_t, now);
    lt->busy = true;
    lt->busy_start = at;
    start_callback(lt, t, at, gap);
    lt->cb_last_t = now;
}

/* A torn sample whose reader found the running callback otherwise (TSF_STEP_PROBED): the run in
 * progress still runs (same identity), has ended (0), or another one runs (another identity). */
static size_t feed_probe(stall_detector *d, pid_t pid, const aprof_thread_sample *t, uint64_t now)
{
    loop_track *lt = track_of(d, pid, t);
    if (!lt || !lt->first_t || now <= lt->last_t)
        return 0;
    size_t reported = 0;
    if (!lt->busy)
        become_busy(lt, t, now);
    else if (t->callback_id == lt->cb_id)
        lt->cb_last_t = now; /* still running: the end lies after this sample */
    else if (t->callback_id || lt->cb_id)
        /* Ended, and another run goes on: one not seen (callback_id 0), or the one the second
         * read named (no frames: no name and no culprit until a readable sample of it). */
        reported = switch_callback(d, lt, t, now);
    lt->last_t = now;
    return reported;
}

/* A torn sample without a probe: the thread was busy (a waiting thread's stack does not change)
 * running something that could not be read. A run of a callback of known identity may still be
 * going on (the next readable sample tells); anything else, or an idle loop, has changed. */
static size_t feed_unknown(stall_detector *d, pid_t pid, const aprof_thread_sample *t,
                           uint64_t now)
{
    loop_track *lt = track_of(d, pid, t);
    if (!lt || !lt->first_t || now <= lt->last_t)
        return 0;
    size_t reported = 0;
    if (!lt->busy)
        become_busy(lt, t, now); /* identity 0, no culprit: never reported itself */
    else if (!lt->cb_id)
        /* loop code between callbacks, or a run that could not be named: what runs now is not
         * known to be the same, so it is not one run */
        reported = switch_callback(d, lt, t, now);
    lt->last_t = now; /* busy until here, whatever ran */
    return reported;
}

size_t stall_detector_feed(stall_detector *d, const aprof_sample *s)
{
    size_t reported = 0;
    for (uint32_t i = 0; i < s->nthreads; i++) {
        const aprof_thread_sample *t = &s->threads[i];
        /* A torn read may not reach the loop's frames: a thread known to run a loop still does */
        if (t->loop == LOOP_NONE && !((t->flags & TSF_TORN) && find_track(d, t->tid)))
            continue;
        loop_track *wt = track_of(d, s->pid, t);
        if (wt) {
            /* torn samples are busy (a waiting thread's stack does not change), unless the
             * read began in the selector (the loop woke while read: idle then) */
            wt->weight_ns += s->weight_ns;
            if (!t->loop_idle)
                wt->busy_weight_ns += s->weight_ns;
        }
        /* (a torn sample that began in the selector is an idle one: the regular path below) */
        if ((t->flags & TSF_TORN) && !t->loop_idle) {
            if (t->flags & TSF_STEP_PROBED)
                reported += feed_probe(d, s->pid, t, s->t_ns);
            else
                reported += feed_unknown(d, s->pid, t, s->t_ns);
            continue;
        }
        loop_track *lt = track_of(d, s->pid, t);
        if (!lt)
            continue;
        lt->thread_name = t->name;
        /* asyncio's own loop frames are conclusive; a runner frame alone (LOOP_NATIVE) is also
         * what a pure-asyncio program shows before its loop starts running. */
        if (t->loop == LOOP_ASYNCIO)
            lt->kind = LOOP_ASYNCIO;
        uint64_t now = s->t_ns;
        if (!lt->first_t) {
            lt->first_t = lt->last_t = lt->cb_last_t = now;
            lt->busy = !t->loop_idle;
            lt->busy_start = now;
            if (lt->busy) {
                start_callback(lt, t, now, 0);
                lt->cb_clipped = true; /* it was running before aprof looked */
                lt->cb_samples = 1;
                lt->cb_gc_samples = (t->flags & TSF_GC) != 0;
                count_culprit(lt, t);
            }
            continue;
        }
        if (now <= lt->last_t)
            continue;
        if (t->loop_idle) {
            if (lt->busy) {
                uint64_t end = half_way(lt->last_t, now);
                uint64_t cb_end = half_way(lt->cb_last_t, now);
                reported += end_callback(d, lt, cb_end, now - lt->cb_last_t, false);
                push_lag(d, lt, lt->busy_start, end);
                lt->busy = false;
            }
        } else {
            if (!lt->busy) {
                become_busy(lt, t, now);
            } else if (t->callback_id != lt->cb_id) {
                reported += switch_callback(d, lt, t, now);
            } else if (!lt->cb_name && t->callback_frame >= 0 &&
                       (uint32_t)t->callback_frame < t->nframes) {
                /* a run first seen through a torn sample: name it now */
                lt->cb_name = t->frames[t->callback_frame].name;
                lt->cb_coro = t->owners ? t->owners[t->callback_frame] : 0;
            }
            lt->cb_last_t = now;
            lt->cb_samples++;
            lt->cb_gc_samples += (t->flags & TSF_GC) != 0;
            count_culprit(lt, t);
        }
        lt->last_t = now;
    }
    return reported;
}

void stall_detector_finish(stall_detector *d, uint64_t end_ns)
{
    for (size_t i = 0; i < d->nloops; i++) {
        loop_track *lt = &d->loops[i];
        if (!lt->busy)
            continue;
        uint64_t at = end_ns > lt->last_t ? end_ns : lt->last_t;
        end_callback(d, lt, at, at - lt->cb_last_t, true);
        push_lag(d, lt, lt->busy_start, at);
        lt->busy = false;
        lt->last_t = at;
    }
}

size_t stall_count(const stall_detector *d)
{
    return d->nevents;
}

const stall_event *stall_events(const stall_detector *d)
{
    return d ? d->events : NULL;
}

const stall_event *stall_at(const stall_detector *d, size_t i)
{
    return i < d->nevents ? &d->events[i] : NULL;
}

size_t stall_loop_count(const stall_detector *d)
{
    return d->nloops;
}

/* How long the loop's current busy stretch has lasted at `now` (0 when idle). */
static uint64_t running_stretch(const loop_track *lt, uint64_t now)
{
    if (!lt->busy)
        return 0;
    uint64_t t = now > lt->last_t ? now : lt->last_t;
    return t > lt->busy_start ? t - lt->busy_start : 0;
}

void stall_loop_lag(const stall_detector *d, size_t i, loop_lag *out)
{
    memset(out, 0, sizeof(*out));
    if (i >= d->nloops)
        return;
    const loop_track *lt = &d->loops[i];
    out->pid = lt->pid;
    out->tid = lt->tid;
    out->thread_name = lt->thread_name;
    out->kind = lt->kind;
    const lag_hist *h = lt->lag;
    out->count = h ? h->count : 0;
    out->stalls = lt->stalls;
    out->observed_ns = lt->last_t - lt->first_t;
    out->busy_ns = h ? h->sum_ns : 0;
    out->busy_now = lt->busy;
    out->busy_for_ns = running_stretch(lt, lt->last_t);
    out->busy_ns += out->busy_for_ns;
    /* From what the samples stand for, like the profile: busy stretches placed half-way between
     * samples miss every switch between two samples, and a loop that polls every millisecond
     * switches more often than that. */
    out->blocked_ratio = lt->weight_ns ? (double)lt->busy_weight_ns / (double)lt->weight_ns : 0;
    if (out->blocked_ratio > 1)
        out->blocked_ratio = 1;
    if (!h || h->count == 0)
        return;
    out->min_s = (double)h->min_ns / 1e9;
    out->max_s = (double)h->max_ns / 1e9;
    out->mean_s = (double)h->sum_ns / (double)h->count / 1e9;
    out->p50_s = (double)lag_hist_quantile(h, 0.50) / 1e9;
    out->p95_s = (double)lag_hist_quantile(h, 0.95) / 1e9;
    out->p99_s = (double)lag_hist_quantile(h, 0.99) / 1e9;
}

void stall_loop_now(const stall_detector *d, size_t i, uint64_t now, uint64_t window_ns,
                    loop_now *out)
{
    memset(out, 0, sizeof(*out));
    if (i >= d->nloops)
        return;
    const loop_track *lt = &d->loops[i];
    out->pid = lt->pid;
    out->tid = lt->tid;
    out->thread_name = lt->thread_name;
    out->kind = lt->kind;
    out->busy = lt->busy;
    out->busy_for_ns = running_stretch(lt, now);
    out->current_ns = out->busy_for_ns;
    uint64_t max_lag = lt->lag ? lt->lag->max_ns : 0;
    out->worst_ns = max_lag > out->busy_for_ns ? max_lag : out->busy_for_ns;
    if (lt->lag) {
        uint64_t recent = lag_hist_recent_max(lt->lag, now > window_ns ? now - window_ns : 0, NULL);
        if (recent > out->current_ns)
            out->current_ns = recent;
    }
}
