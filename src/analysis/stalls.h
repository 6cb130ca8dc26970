/* Event-loop stall detection from samples.
 *
 * For every thread that runs an event loop, each sample says whether the loop is idle (waiting
 * in its selector) or busy, and which callback run (Handle, or task step) is executing. A busy
 * stretch runs from leaving the selector to returning to it (loop lag); within it, consecutive
 * samples with the same callback identity are one callback run. A callback run that lasts at
 * least the threshold is a stall: the callbacks queued behind it are lag, not part of it.
 * Boundaries are placed half-way between the samples that straddle them, so a duration is
 * exact to within half of each straddling gap (one interval when the sampler keeps its rate;
 * more when samples were late or dropped as torn): each stall carries that bound.
 */
#ifndef APROF_STALLS_H
#define APROF_STALLS_H

#include "sample.h"
#include "strtab.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum stall_impact { STALL_WARNING = 1, STALL_CRITICAL = 2 } stall_impact;

typedef struct stall_event {
    uint64_t start_ns, end_ns;  /* CLOCK_MONOTONIC */
    pid_t pid;                  /* the loop's process */
    pid_t tid;
    const char *thread_name;
    const char *task;           /* task name, or NULL when the callback was not a task step */
    const char *callback;       /* function that the callback run started in */
    aprof_frame culprit;        /* innermost own-code frame that dominated the stall */
    aprof_frame *stack;         /* a representative full stack (outermost first) */
    uint32_t nstack;
    uint32_t samples;
    uint32_t gc_samples;        /* of them, samples of the cyclic GC running (TSF_GC) */
    uint64_t uncertainty_ns;    /* how far the duration can be off from the sampling alone: half
                                 * of each gap between the samples straddling its two ends */
    uint8_t impact;             /* stall_impact */
    uint8_t loop;               /* loop_kind */
    bool clipped;               /* it began before the first sample of its loop or was still
                                 * running at the end: the real stall is longer */
} stall_event;

typedef struct loop_lag {
    pid_t pid, tid;
    const char *thread_name;
    uint8_t kind;               /* loop_kind */
    uint64_t count;             /* busy stretches */
    double min_s, mean_s, p50_s, p95_s, p99_s, max_s;
    double blocked_ratio;       /* busy share of the samples' weight (torn samples are busy) */
    uint64_t observed_ns, busy_ns;
    uint64_t stalls;
    int busy_now;               /* last sample: 1 busy, 0 idle */
    uint64_t busy_for_ns;       /* when busy_now: how long the current stretch has lasted */
} loop_lag;

/* Name of the task a callback run in process pid belongs to, from the coroutine that owns its
 * first frame (0 when none). May return NULL. */
typedef const char *(*stall_task_fn)(void *ud, pid_t pid, uint64_t coroutine);

typedef struct stall_detector stall_detector;

stall_detector *stall_detector_new(uint64_t threshold_ns, strtab *st);
void stall_detector_free(stall_detector *d);
void stall_detector_set_task_resolver(stall_detector *d, stall_task_fn fn, void *ud);

/* Told every busy stretch of every loop as it ends, [start_ns, end_ns] (timeline.h keeps them). */
typedef void (*stall_stretch_fn)(void *ud, pid_t pid, pid_t tid, uint64_t start_ns,
                                 uint64_t end_ns);
void stall_detector_set_stretch_sink(stall_detector *d, stall_stretch_fn fn, void *ud);

/* Feed every sample in time order (torn thread samples are ignored). Returns the number of new
 * stalls that this sample completed. */
size_t stall_detector_feed(stall_detector *d, const aprof_sample *s);

/* Close open busy stretches at the end of the recording (they count as lag up to end_ns, and a
 * callback still running past the threshold is reported). */
void stall_detector_finish(stall_detector *d, uint64_t end_ns);

size_t stall_count(const stall_detector *d);
const stall_event *stall_at(const stall_detector *d, size_t i);

/* Lag statistics per loop thread (computed on call). */
size_t stall_loop_count(const stall_detector *d);
void stall_loop_lag(const stall_detector *d, size_t i, loop_lag *out);

/* A loop's state at time `now`, for live views: whether it is busy and for how long, its lag
 * "now" (the running stretch, or the longest that ended within window_ns before now) and its
 * worst stretch so far (the running one included). */
typedef struct loop_now {
    pid_t pid, tid;
    const char *thread_name;
    uint8_t kind;               /* loop_kind */
    bool busy;
    uint64_t busy_for_ns;
    uint64_t current_ns;
    uint64_t worst_ns;
} loop_now;
void stall_loop_now(const stall_detector *d, size_t i, uint64_t now, uint64_t window_ns,
                    loop_now *out);

/* Was more than half of the stall's samples the cyclic garbage collector running? */
static inline bool stall_mostly_gc(const stall_event *e)
{
    return e->samples && 2 * e->gc_samples > e->samples;
}

/* Is this file the program's own code (not the standard library, site/dist-packages, or a
 * frozen module)? Exposed for tests. */
int stall_is_own_code(const char *file);

#endif
