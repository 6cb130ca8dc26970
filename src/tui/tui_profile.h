/* View models of the TUI's Top and Tree views: statistics per call-tree node for a selection of
 * the aggregate (one thread or all, a time window, a substring filter), the function table
 * (Top) and the flattened, expandable call tree (Tree).
 *
 * Everything here is a pure function of an agg (aggregate.h) and plain state: no ncurses, no
 * locking (the caller holds the aggregate's lock), so it is unit-tested with hand-made
 * aggregates.
 *
 * Statistics are accumulated incrementally: tui_prof_update() only looks at the points that were
 * added since the previous call, so a refresh costs what was sampled since the last one. A
 * "recent window" is a fresh selection from a start time, found by binary search.
 *
 * "Calls seen": sampling cannot count calls, but it sees a call begin. A node on a thread's stack
 * that was not on that thread's previous stack is a new call (the prefix tree makes "same node"
 * mean "same caller chain"); repeated calls from one line faster than the sampling interval are
 * seen as one.
 */
#ifndef APROF_TUI_PROFILE_H
#define APROF_TUI_PROFILE_H

#include "aggregate.h"
#include "hmap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TUI_FILTER_MAX 128

typedef struct tui_node_stat {
    uint64_t self_ns, total_ns;
    uint32_t self_n, total_n; /* samples */
    uint32_t calls;           /* calls seen (see above) */
} tui_node_stat;

typedef struct tui_func {
    const char *name, *file; /* interned */
} tui_func;

typedef struct tui_prof {
    /* selection */
    pid_t tid;                      /* 0: every thread profile */
    char filter[TUI_FILTER_MAX];    /* only stacks with a frame whose name or file contains it */
    uint64_t from_ns;               /* only points at or after this time (0: all) */
    /* results */
    tui_node_stat *stat;            /* per agg node */
    uint64_t total_ns;              /* weight of every selected point, filtered out or not */
    uint64_t matched_ns;            /* weight of the points that passed the filter */
    uint64_t samples;               /* selected samples */
    size_t nstat;                   /* agg nodes covered by stat and the caches below */
    /* incremental state, per agg profile index */
    size_t *cursor;                 /* the next point not yet seen */
    uint32_t *prev_leaf;
    agg_point *taken;               /* what was taken of point cursor - 1, which can still grow
                                       (consecutive samples of one stack merge into it) */
    size_t nprof;
    /* per node caches: fixed for the life of the aggregate (match: for the filter) */
    uint32_t *depth, *func;
    uint8_t *recursive, *match;
    size_t cap_nodes;
    /* functions: frames merged by (name, file) */
    uint32_t *frame_func;
    size_t nframes, cap_frames;
    tui_func *funcs;
    size_t nfuncs, cap_funcs;
    hmap fmap;                      /* (name, file) -> function index */
} tui_prof;

void tui_prof_init(tui_prof *p);
void tui_prof_free(tui_prof *p);

/* Forget everything, including the caches: for a new aggregate (reset). */
void tui_prof_clear(tui_prof *p);

/* A new selection: statistics start again from nothing (the caches stay). */
void tui_prof_select(tui_prof *p, pid_t tid, const char *filter, uint64_t from_ns);

/* Take in the points added to the aggregate since the last call. 0, or -1 (ENOMEM). */
int tui_prof_update(tui_prof *p, const agg *a);

/* ---- Top: functions ------------------------------------------------------------------------- */

typedef struct tui_top_row {
    const char *name, *file;        /* interned */
    int line;                       /* the hottest line: most self time, else most total */
    uint8_t kind;                   /* frame_kind */
    uint64_t self_ns, total_ns;     /* total counts a recursive function once per stack */
    uint32_t self_n, total_n;
    uint32_t calls;
} tui_top_row;

typedef enum tui_top_key {
    TUI_TOP_SELF = 0,
    TUI_TOP_TOTAL,
    TUI_TOP_CALLS,
    TUI_TOP_NAME,
    TUI_TOP_NKEYS
} tui_top_key;

const char *tui_top_key_name(tui_top_key k);

/* One row per function (name, file) seen in the selection whose name or file contains the
 * filter, unsorted. *rows / *cap is a growable buffer owned by the caller (free()).
 * Returns the number of rows; on allocation failure as many as fit. */
size_t tui_top_build(const tui_prof *p, const agg *a, tui_top_row **rows, size_t *cap);

/* Sort: self, total, calls: largest first (ties by the other times, then name); name: A-Z.
 * `reverse` flips the order. */
void tui_top_sort(tui_top_row *rows, size_t n, tui_top_key key, bool reverse);

/* ---- Tree: the call tree ---------------------------------------------------------------------- */

#define TUI_TREE_MAX_ZOOM 64
/* Nodes with at least this share of the selection's time are expanded until the user says
 * otherwise. */
#define TUI_TREE_AUTO_EXPAND_PCT 10

typedef struct tui_tree_state {
    uint8_t *mark;          /* per node: 0 default, 1 expanded, 2 collapsed */
    size_t cap;
    uint32_t zoom[TUI_TREE_MAX_ZOOM]; /* zoom stack: the subtree roots, innermost last */
    int nzoom;
} tui_tree_state;

typedef struct tui_tree_row {
    uint32_t node;
    uint32_t depth;         /* 0 for the rows at the top (or the zoom root) */
    bool has_children, expanded;
    aprof_frame frame;      /* a copy (the agg's frame table moves as it grows) */
    uint64_t self_ns, total_ns;
} tui_tree_row;

void tui_tree_state_free(tui_tree_state *ts);
void tui_tree_state_clear(tui_tree_state *ts);
/* Set a node expanded (true) or collapsed (false). 0 or -1 (ENOMEM). */
int tui_tree_set(tui_tree_state *ts, uint32_t node, bool expanded);
void tui_tree_zoom_in(tui_tree_state *ts, uint32_t node);
void tui_tree_zoom_out(tui_tree_state *ts);

/* The visible rows, depth first, children by total time (largest first), nodes without time in
 * the selection left out. Zoomed: the zoom root first (depth 0), then its subtree.
 * Returns the number of rows; on allocation failure as many as fit. */
size_t tui_tree_build(const tui_prof *p, const agg *a, const tui_tree_state *ts,
                      tui_tree_row **rows, size_t *cap);

#endif
