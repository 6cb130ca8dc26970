/* `aprof diff`'s report: text for people, JSON for scripts (docs/diff.md). */
#ifndef APROF_DIFF_REPORT_H
#define APROF_DIFF_REPORT_H

#include "json.h"
#include "recording_diff.h"

#include <stdbool.h>
#include <stdio.h>

typedef struct diff_verdict {
    const diff_cond *cond;
    bool holds;
    char why[256];
} diff_verdict;

void diff_report_text(FILE *out, const recording *before, const recording *after,
                      const rec_diff *d, size_t top, const diff_verdict *v, size_t nv);
void diff_report_json(json_writer *w, const recording *before, const recording *after,
                      const rec_diff *d, size_t top, const diff_verdict *v, size_t nv);

#endif
