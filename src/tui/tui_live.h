/* The live data behind `aprof attach`: a background thread samples the target at full rate
 * (sampler.h) into an aggregate, the stall detector, the loop-lag tracker and, a few times a
 * second, an asyncio task snapshot; the UI thread reads all of it under one lock.
 *
 * The sampler never waits for the UI: it only try-locks. When the UI holds the lock (building a
 * view, writing a file) samples are copied into a bounded backlog and added, in order, as soon
 * as the lock is free again; only when the backlog is full are samples dropped (counted). Task
 * snapshots are taken by the sampler thread between two samples, outside the lock (the session
 * is not thread-safe), into a back buffer that is swapped in under the lock; their rate adapts
 * to their cost (at most ~5% of the time).
 */
#ifndef APROF_TUI_LIVE_H
#define APROF_TUI_LIVE_H

#include "aggregate.h"
#include "asyncio_reader.h"
#include "procset.h"
#include "sampler.h"
#include "session.h"
#include "stalls.h"
#include "tui_loops.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define TUI_BACKLOG_MAX 4096

typedef struct tui_live_opts {
    double rate_hz;
    uint64_t stall_threshold_ns;
    bool blocking;
    bool nonblocking;
    bool exact_task_names;
    /* --subprocesses: follow this process and its descendants (tui_live_start's session is
     * then NULL); each one found is opened with redact as asked */
    pid_t follow_root;
    bool redact;
} tui_live_opts;

/* A process being sampled, with its asyncio task snapshots. */
typedef struct tui_proc {
    pid_t pid;
    session *s;
    char label[80];               /* its command line, paths cut to file names */
    /* ---- sampler thread only ---- */
    asyncio_reader *ar;
    async_snapshot snap[2];       /* one is `tasks`, the other the back buffer */
    bool snap_pending;            /* back buffer holds a snapshot not yet published */
    uint64_t snap_last_ns, snap_cost_ns, miss_snap_ns;
    /* ---- guarded by the lock ---- */
    async_snapshot *tasks;        /* latest published snapshot (NULL before the first) */
    uint64_t tasks_t_ns;
} tui_proc;

typedef struct tui_live {
    session *s;                   /* the one process, or NULL when following (o.follow_root) */
    strtab *st;                   /* the strings of every process */
    strtab *own_st;               /* following: owned here */
    tui_live_opts o;
    aprof_frame *stitched;    /* scratch: a task-stitched stack (sampler thread, lock held) */
    pthread_mutex_t lock;
    /* ---- guarded by lock ---- */
    agg *a;
    stall_detector *stalls;
    sampler_stats stats;          /* the sampler's counters at its latest sample */
    uint64_t thread_samples;      /* thread stacks added (since the last reset) */
    uint64_t torn;                /* thread stacks left out: changed while read */
    uint64_t marked;              /* thread stacks kept with an <unreadable> leaf (TSF_PARTIAL) */
    uint64_t oom;
    uint64_t reset_ns;            /* when the data was last reset (session start at first) */
    tui_proc *procs[PROCSET_MAX]; /* the processes sampled now */
    size_t nprocs;
    size_t shown;                 /* the process whose tasks the Tasks view shows */
    async_snapshot *tasks;        /* its latest task snapshot (NULL before the first) */
    uint64_t tasks_t_ns;          /* when it was taken */
    pid_t tasks_pid;              /* whose they are */
    uint64_t procs_joined;        /* processes sampled at some point */
    bool finished;                /* the sampler thread is done */
    bool target_exited;
    /* ---- atomics ---- */
    atomic_uint_fast64_t dropped; /* samples lost because the backlog was full */
    atomic_bool stop;
    atomic_uint_fast64_t tasks_interval_ns;
    /* ---- sampler thread only ---- */
    pthread_t thread;
    bool started;
    tui_proc *single;             /* one process: its entry (not following) */
    const aprof_sample *feeding;  /* the live sample being added, NULL for backlog ones */
    aprof_sample *backlog;        /* ring of copies */
    size_t bl_head, bl_len;
    sampler_stats pending_stats;
    bool have_pending_stats;
} tui_live;

/* Start sampling s in the background. 0, or an exit code after one "aprof: " line. */
aprof_status tui_live_start(tui_live *l, session *s, const tui_live_opts *o, aprof_error *err);

/* Ask the sampler thread to stop and wait for it. Safe to call more than once. */
void tui_live_stop(tui_live *l);

/* After tui_live_stop(): free everything (the session stays open). */
void tui_live_free(tui_live *l);

void tui_live_lock(tui_live *l);
void tui_live_unlock(tui_live *l);

/* Forget everything collected so far (with the lock held). 0, or -1 when out of memory (the
 * old data is kept then). */
int tui_live_reset_locked(tui_live *l);

/* Show the tasks of the next (step 1) or previous (-1) process (with the lock held). */
void tui_live_show_process_locked(tui_live *l, int step);

/* How often to take task snapshots (the UI asks more often while the Tasks view is shown). */
void tui_live_set_tasks_interval(tui_live *l, uint64_t ns);

#endif
