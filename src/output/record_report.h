/* What `aprof record` reports at the end: the summary on stderr and the --summary JSON file
 * (one schema, documented in docs/formats.md). */
#ifndef APROF_RECORD_REPORT_H
#define APROF_RECORD_REPORT_H

#include "aggregate.h"
#include "async_record.h"
#include "native_report.h"
#include "sampler.h"
#include "session.h"
#include "stalls.h"

#include <stdbool.h>
#include <stdio.h>

typedef struct record_report {
    const session *s;
    const sampler_stats *st;
    const agg *a;
    const stall_detector *stalls; /* NULL when stall detection was off */
    async_record *async;          /* NULL with --no-async */
    const native_report *native;  /* thread states, GIL and native stack figures, or NULL */
    double requested_rate;
    double stall_threshold_s;
    bool cpu_only;
    uint64_t thread_samples, torn, marked, not_running;
    const char *out_path;         /* NULL when the profile could not be written */
    const char *format;           /* "speedscope" / "collapsed" */
    double resolution_s;          /* speedscope samples merged by stack within windows this long */
    unsigned segments;            /* --segment: files written (out_path: the last one) */
    const char *first_segment;
    double segment_pause_max_s;   /* the longest a segment's end paused sampling */
} record_report;

void record_report_print(const record_report *r, FILE *out);

/* 0, or -1 with errno. */
int record_report_write_json(const record_report *r, const char *path);

#endif
