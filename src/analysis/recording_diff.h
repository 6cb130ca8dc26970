/* Two recordings compared (`aprof diff`): the functions whose share of sampled time changed
 * most, the stall culprit lines that appeared or vanished, and the --fail-on conditions a CI
 * job can fail on. */
#ifndef APROF_RECORDING_DIFF_H
#define APROF_RECORDING_DIFF_H

#include "recording.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct fn_change {
    const char *name, *file;
    double before_total, after_total; /* shares of all sampled time, 0..1 */
    double before_self, after_self;
} fn_change;

typedef struct rec_diff {
    fn_change *fns; /* every function of either side, the largest change (total or self) first */
    size_t nfns;
    const rec_culprit **appeared, **vanished; /* culprit lines in only one of the summaries */
    size_t nappeared, nvanished;
} rec_diff;

/* 0, or -1 when out of memory. */
int recording_diff(const recording *before, const recording *after, rec_diff *out);
void rec_diff_free(rec_diff *d);

typedef enum diff_cond_kind {
    COND_FUNCTION_SHARE, /* some function's total share grew by more than threshold points */
    COND_STALL_TOTAL,    /* total stalled time grew by more than threshold percent */
    COND_NEW_CULPRIT,    /* a stall culprit line appeared */
} diff_cond_kind;

typedef struct diff_cond {
    diff_cond_kind kind;
    double threshold;
    const char *text; /* as given */
} diff_cond;

/* "function-share:POINTS", "stall-total:PERCENT" or "new-culprit". */
bool diff_cond_parse(const char *s, diff_cond *out);
/* Whether the recordings have what the condition needs (a profile each, or a summary each). */
bool diff_cond_answerable(const diff_cond *c, const recording *before, const recording *after);
/* Does it hold? why: one line either way. */
bool diff_cond_holds(const diff_cond *c, const recording *before, const recording *after,
                     const rec_diff *d, char *why, size_t len);

#endif
