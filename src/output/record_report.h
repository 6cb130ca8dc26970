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

/* A process of a recording that follows several (--subprocesses). */
typedef struct record_proc_info {
    pid_t pid;
    char command[1024];
    char python_version[32];
    bool sampled;                 /* else skipped: `reason` says why */
    char reason[256];
    uint64_t samples;
    uint64_t joined_ns, left_ns;  /* CLOCK_MONOTONIC; left_ns 0: still there at the end */
    bool exited;                  /* it left because it exited (else unreadable, or the end) */
    bool tasks_known;             /* asyncio was seen in it: tasks holds its task figures */
    async_task_stats tasks;
} record_proc_info;

typedef struct record_report {
    /* the target: the process given (or launched); with --subprocesses the root */
    pid_t pid;
    const char *command;
    const char *python_version;   /* "" when the root is not a Python aprof reads */
    const sampler_stats *st;
    uint64_t start_unix_ns;       /* CLOCK_REALTIME of st->t_start_ns */
    const agg *a;
    const stall_detector *stalls; /* NULL when stall detection was off */
    async_record *async;          /* NULL with --no-async */
    const native_report *native;  /* thread states, GIL and native stack figures, or NULL */
    double requested_rate;
    double stall_threshold_s;
    bool cpu_only;
    uint64_t thread_samples, torn, marked, not_running;
    uint64_t gc_samples, gc_ns;   /* thread samples of the cyclic GC running, and their weight */
    const pystack_stats *reads;   /* one process's torn-stack re-reads, or NULL */
    const char *out_path;         /* NULL when the profile could not be written */
    const char *format;           /* "speedscope" / "collapsed" */
    double resolution_s;          /* speedscope samples merged by stack within windows this long */
    unsigned segments;            /* --segment: files written (out_path: the last one) */
    const char *first_segment;
    double segment_pause_max_s;   /* the longest a segment's end paused sampling */
    const record_proc_info *procs; /* --subprocesses: every process met, else NULL */
    size_t nprocs;
} record_report;

void record_report_print(const record_report *r, FILE *out);

/* 0, or -1 with errno. */
int record_report_write_json(const record_report *r, const char *path);

#endif
