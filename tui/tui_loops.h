/* Event-loop data of the TUI: the header's loop state and lag (a small tracker fed with every
 * sample, O(1) per sample) and the Stalls view's list (copies of the stall detector's events, so
 * the view keeps them while the detector grows). Pure data structures, no locking. */
#ifndef APROF_TUI_LOOPS_H
#define APROF_TUI_LOOPS_H

#include "sample.h"
#include "stalls.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TUI_MAX_LOOPS 16
#define TUI_LAG_BUCKET_NS 1000000000ull /* "current lag" looks back one to two of these */

typedef struct tui_loop_lag {
    pid_t tid;
    const char *thread_name;
    uint8_t kind;               /* loop_kind */
    bool busy;                  /* at the last sample */
    uint64_t busy_start;        /* where the current busy stretch began (boundary estimate) */
    uint64_t last_t;            /* last sample */
    uint64_t stretches;         /* completed busy stretches */
    uint64_t worst_ns;          /* longest completed busy stretch */
    uint64_t bucket;            /* index (time / TUI_LAG_BUCKET_NS) of bucket_max */
    uint64_t bucket_max, prev_bucket_max; /* longest stretch ending in this / the previous bucket */
} tui_loop_lag;

typedef struct tui_lags {
    tui_loop_lag loops[TUI_MAX_LOOPS];
    size_t n;
} tui_lags;

/* Feed one sample (time order). Boundaries are placed half-way between samples, as the stall
 * detector does. */
void tui_lags_feed(tui_lags *l, const aprof_sample *s);

/* The loop's lag now: the stretch running at `now` if busy, else the longest stretch that ended
 * in the last one to two seconds (0 when none). */
uint64_t tui_lag_current(const tui_loop_lag *l, uint64_t now);
/* How long the current busy stretch has lasted at `now` (0 when idle). */
uint64_t tui_lag_busy_for(const tui_loop_lag *l, uint64_t now);
/* Longest stretch so far, the running one included. */
uint64_t tui_lag_worst(const tui_loop_lag *l, uint64_t now);

/* ---- stalls ----------------------------------------------------------------------------------- */

typedef struct tui_stall_list {
    stall_event *ev;            /* copies; each stack owned here */
    size_t n, cap;
} tui_stall_list;

void tui_stall_list_free(tui_stall_list *l);
void tui_stall_list_clear(tui_stall_list *l);
/* Copy the events of the detector that the list does not have yet. 0 or -1 (ENOMEM). */
int tui_stall_list_sync(tui_stall_list *l, const stall_detector *d);

/* Indices into l->ev, newest first, of the stalls whose culprit, task, callback or thread
 * contains filter (all with an empty one). out must hold l->n entries. Returns the count. */
size_t tui_stalls_order(const tui_stall_list *l, const char *filter, uint32_t *out);

#endif
