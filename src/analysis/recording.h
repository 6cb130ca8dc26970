/* A recording as `aprof diff` compares it: from a profile, the sampled time each function
 * (name and file) was on the stack (total) and innermost (self); from a --summary file, the
 * stalls, their culprit lines and the loop lag. */
#ifndef APROF_RECORDING_H
#define APROF_RECORDING_H

#include "hmap.h"
#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rec_function {
    char *name, *file;
    double total_s, self_s; /* sampled time on the stack / innermost */
} rec_function;

/* A node of a recording's stack tree: one function (index into functions) called from its
 * parent node (REC_ROOT for an outermost frame), every line of it together. total_s: sampled
 * time with this call path on the stack; self_s: of it, innermost. Parents come before their
 * children. */
typedef struct rec_node {
    uint32_t parent, fn;
    double total_s, self_s;
} rec_node;

#define REC_ROOT UINT32_MAX
#define REC_MAX_NODES 4000000u

typedef struct rec_culprit {
    char *function, *file;
    int64_t line;
    uint64_t count;
    double total_s;
} rec_culprit;

typedef struct recording {
    char *path;
    bool has_profile, has_summary;
    /* profile */
    rec_function *functions;
    size_t nfunctions;
    double total_s;       /* all sampled time, every thread */
    uint64_t nsamples;    /* stack entries in the file: aprof merges identical neighbouring
                           * samples (speedscope) or stacks (pprof), so fewer than taken */
    rec_node *nodes;      /* the stack tree of every thread (for the differential flame graph) */
    size_t nnodes, cap_nodes;
    hmap node_map;        /* (parent, fn) -> node */
    bool tree_truncated;  /* REC_MAX_NODES reached or out of memory: later stacks left out */
    /* summary */
    double duration_s;
    uint64_t stalls;
    double stall_total_s, stall_max_s;
    rec_culprit *culprits;
    size_t nculprits;
    bool has_lag;         /* the loop with the most lag measurements */
    double lag_p50_s, lag_p95_s, lag_p99_s, lag_max_s;
} recording;

/* Read by recording_add_file (src/output/recording_read.h). */
void recording_free(recording *r);

/* Add a stack (function indices, outermost first) of w seconds to the tree. */
void recording_tree_add(recording *r, const uint32_t *fns, size_t n, double w);

#endif
