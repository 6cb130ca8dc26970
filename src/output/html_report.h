/* `record -f html`: one self-contained HTML file (the page in src/output/report/report.html,
 * compiled in; no network) with the recording's data embedded as JSON: flame graphs (wall and
 * cpu, every thread or one), the stalls by culprit line, the loops' lag, the tasks (lifecycle,
 * tree, await sites, timeline) and the run's facts. docs/report.md describes the page and
 * docs/formats.md#html the embedded data. */
#ifndef APROF_HTML_REPORT_H
#define APROF_HTML_REPORT_H

#include "aggregate.h"
#include "async_record.h"
#include "diff_report.h"
#include "record_report.h"
#include "stalls.h"
#include "timeline.h"

#include <stdio.h>

typedef struct html_report {
    const record_report *facts; /* target, rates, samples, costs (what the summary says) */
    const agg *wall;            /* every sample */
    const agg *cpu;             /* samples of threads running on a CPU; NULL when not kept */
    const stall_detector *stalls;
    async_record *async;        /* NULL with --no-async */
    const task_timeline *tl;    /* loops' busy stretches and tasks' segments; NULL: none */
    bool exact_task_names;      /* the task tree keeps every name (else Task-N is Task-*) */
} html_report;

/* Bounds on what the page shows, so that a long recording still opens in seconds: the task
 * timeline's tasks and segments, the loops' time bins. The flame graphs are exact. */
#define HTML_MAX_TIMELINE_TASKS 300
#define HTML_MAX_TIMELINE_SEGS 120000
#define HTML_LAG_TIME_BINS 600
#define HTML_MAX_STALLS 2000

/* 0, or -1 with errno. */
int write_html(const html_report *r, FILE *out);

/* `aprof diff --html`: the same page as a differential flame graph of two recordings (their
 * stack trees merged by call path of functions, coloured by the change of each path's share)
 * and what `diff --json` says. 0, or -1 with errno. */
int write_diff_html(const recording *before, const recording *after, const rec_diff *d,
                    const diff_verdict *v, size_t nv, FILE *out);

#endif
