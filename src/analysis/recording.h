/* A recording as `aprof diff` compares it: from a profile, the sampled time each function
 * (name and file) was on the stack (total) and innermost (self); from a --summary file, the
 * stalls, their culprit lines and the loop lag. */
#ifndef APROF_RECORDING_H
#define APROF_RECORDING_H

#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rec_function {
    char *name, *file;
    double total_s, self_s; /* sampled time on the stack / innermost */
} rec_function;

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

#endif
