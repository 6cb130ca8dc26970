/* Output writers. Each writes the whole aggregate to an open stream and returns 0, or -1 with
 * errno set when the stream failed. Callers open files through outfile.h (atomic replace). */
#ifndef APROF_WRITERS_H
#define APROF_WRITERS_H

#include "aggregate.h"
#include "stalls.h"
#include "timeline.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct writer_meta {
    const char *name;        /* profile file name shown by speedscope, e.g. "aprof: python app.py (pid 42)" */
    const char *exporter;    /* "aprof@0.1.0" */
    uint64_t resolution_ns;  /* speedscope: a thread's samples within each window this long are
                                merged by stack (first seen first, weights added); 0: every one */
} writer_meta;

/* speedscope file format (https://www.speedscope.app/file-format-schema.json): one "sampled"
 * profile per agg profile, unit seconds, frames shared. */
int write_speedscope(const agg *a, const writer_meta *meta, FILE *out);

/* Brendan Gregg's folded stacks: "thread;frame;frame count" lines, frames "name (file:line)".
 * The count is the number of samples. */
int write_collapsed(const agg *a, FILE *out);

/* What a pprof profile says besides the stacks. */
typedef struct pprof_meta {
    int64_t pid;
    const char *program;     /* the mapping's file name: the target's command line */
    bool cpu;                /* --mode cpu: values are cpu/nanoseconds, else wall/nanoseconds */
    uint64_t time_nanos;     /* Unix time of the recording's start */
    uint64_t duration_nanos;
    uint64_t period_nanos;   /* the mean interval between samples asked for */
} pprof_meta;

/* pprof: gzip-compressed profile.proto, thread profiles only (details in write_pprof.c). */
int write_pprof(const agg *a, const pprof_meta *m, FILE *out);

/* What a trace says besides the recording's content. */
typedef struct trace_meta {
    const char *name;         /* the recording, e.g. "aprof: python app.py (pid 42)" */
    const char *exporter;     /* "aprof@0.1.0" */
    const char *process_name; /* the target's command line */
    int64_t pid;              /* the target; profiles without a pid belong to it */
    uint64_t start_ns, end_ns;/* the recording (CLOCK_MONOTONIC): tasks alive at the end last
                               * until end_ns */
    double rate;              /* samples per second asked for: a thread's stack is closed across a
                               * gap of more than three intervals */
} trace_meta;

/* Chrome trace event JSON (write_trace.c, docs/formats.md#trace-chrome-trace-events): per event
 * loop a track of busy stretches and stalls, per asyncio task a track of its life and segments,
 * per thread its sampled stacks. tl and sd may be NULL (no loop or task tracks then). */
int write_trace(const agg *a, const task_timeline *tl, const stall_detector *sd,
                const trace_meta *m, FILE *out);

#endif
