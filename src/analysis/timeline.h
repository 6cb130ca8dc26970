/* The timeline of a recording's event loops and asyncio tasks, for `record --format trace`.
 *
 * What it keeps, all in CLOCK_MONOTONIC ns:
 *  - per event loop, every busy stretch (leaving the selector to returning to it), as the stall
 *    detector finds them (stalls.h: stall_detector_set_stretch_sink);
 *  - per asyncio task, its life (first seen, and how and when it ended) and the segments it
 *    went through, which never overlap:
 *      run        from the samples of its loop thread that were running it (task-stitched: the
 *                 same samples that put the task in the flame graph);
 *      await      from the task snapshots (async_record.h): suspended at an await site;
 *      ready      scheduled to resume, not running yet;
 *      suspended  between two runs with no snapshot in between: waiting somewhere unknown;
 *  - who awaits whom: the first task seen awaiting each task, and when.
 * A task's identity is its address with its coroutine's (an address is reused once a task is
 * freed). Task names are interned in the string table given: the timeline keeps every task.
 *
 * Memory grows with what happened, not with time standing still: a segment per run or change of
 * await site, a busy stretch per wake-up of a loop. Caps (TIMELINE_MAX_*) bound a long
 * recording; past one, further entries are counted as dropped and the trace says so.
 */
#ifndef APROF_TIMELINE_H
#define APROF_TIMELINE_H

#include "asyncio_reader.h"
#include "sample.h"
#include "strtab.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TIMELINE_MAX_TASKS 1000000u
#define TIMELINE_MAX_SEGS 4000000u
#define TIMELINE_MAX_BUSY 4000000u
#define TIMELINE_NONE UINT32_MAX

typedef enum tl_seg_kind {
    TL_RUN = 1,
    TL_AWAIT = 2,
    TL_READY = 3,
    TL_SUSPENDED = 4,
} tl_seg_kind;

typedef enum tl_end {
    TL_ALIVE = 0,      /* still pending or running when the recording ended */
    TL_DONE = 1,       /* seen done */
    TL_CANCELLED = 2,  /* seen cancelled */
    TL_GONE = 3,       /* left the task lists between two snapshots (finished, outcome unseen) */
} tl_end;

typedef struct tl_seg {
    uint64_t start_ns, end_ns;
    uint64_t sampled_ns;      /* run: the time its samples stand for (their weights) */
    const char *site_name;    /* await: the await site (async_record.h's rule), else NULL */
    const char *site_file;
    int32_t site_line;
    uint32_t samples;         /* run: samples that showed the task running */
    uint32_t next;            /* the task's next segment, TIMELINE_NONE at the last */
    uint8_t kind;             /* tl_seg_kind */
    uint8_t wait_kind;        /* await: async_wait_kind */
} tl_seg;

typedef struct tl_task {
    uint64_t addr, coro;      /* the task object (Python's id()) and its coroutine */
    const char *name;         /* interned */
    const char *coro_name;    /* its coroutine's function, NULL when unknown */
    pid_t pid, tid;           /* its process and loop thread (0 unknown) */
    uint64_t first_ns;        /* first snapshot that listed it */
    uint64_t last_seen_ns;    /* last snapshot or sample that showed it */
    uint64_t end_ns;          /* when it ended (not TL_ALIVE): after its last segment */
    uint64_t parent_ns;       /* when `parent` was first seen awaiting it */
    uint64_t run_ns;          /* sum of its run segments' sampled_ns */
    uint32_t parent;          /* index of the first task seen awaiting it, TIMELINE_NONE */
    uint32_t head, tail;      /* its segments, in time order */
    uint32_t run_samples;
    uint32_t gen;             /* last snapshot generation that listed it */
    uint8_t end;              /* tl_end */
    bool created;             /* first seen after its process's first snapshot */
} tl_task;

typedef struct tl_busy {
    uint64_t start_ns, end_ns;
    pid_t pid, tid;
} tl_busy;

typedef struct task_timeline task_timeline;

/* NULL when out of memory. st: where task names are interned; it outlives the timeline. */
task_timeline *timeline_new(strtab *st);
void timeline_free(task_timeline *tl);

/* A busy stretch of the loop on thread tid of process pid ended (stall_stretch_fn). */
void timeline_loop_busy(void *tl, pid_t pid, pid_t tid, uint64_t start_ns, uint64_t end_ns);

/* A task snapshot of process pid taken at now: call timeline_snapshot_task for each task, then
 * timeline_snapshot_edges, then timeline_snapshot_end. `site` is where a pending task waits
 * (NULL: no await site). `baseline`: an earlier snapshot of this process was taken (tasks not
 * in it are new). */
void timeline_snapshot_begin(task_timeline *tl, pid_t pid, uint64_t now);
void timeline_snapshot_task(task_timeline *tl, pid_t pid, const async_snapshot *s, uint32_t i,
                            const aprof_frame *site, bool baseline, uint64_t now);
/* Awaited-by edges of the snapshot: the first awaiter of each task is its parent. */
void timeline_snapshot_edges(task_timeline *tl, pid_t pid, const async_snapshot *s,
                             uint64_t now);
/* Tasks of pid that this snapshot no longer lists have ended. */
void timeline_snapshot_end(task_timeline *tl, pid_t pid, uint64_t now);

/* A sample of thread tid of process pid at t_ns standing for weight_ns ran task i of snapshot
 * s, or no task (s NULL). Call it for every thread sample of a process whose tasks are
 * followed, in time order. */
void timeline_thread_sample(task_timeline *tl, pid_t pid, pid_t tid, const async_snapshot *s,
                            uint32_t i, uint64_t t_ns, uint64_t weight_ns);

/* Read access, for writers. */
size_t timeline_task_count(const task_timeline *tl);
const tl_task *timeline_task_at(const task_timeline *tl, size_t i);
const tl_seg *timeline_seg_at(const task_timeline *tl, uint32_t i);
size_t timeline_busy_count(const task_timeline *tl);
const tl_busy *timeline_busy_at(const task_timeline *tl, size_t i);
/* Entries left out because a cap was reached or memory ran out (tasks, segments, stretches). */
uint64_t timeline_dropped(const task_timeline *tl);

#endif
