/* asyncio awareness for recordings (`aprof record`, the TUI).
 *
 * Keeps a recent snapshot of the target's tasks (src/asyncio/asyncio_reader.h), refreshed at the
 * awaiting-profile rate and sooner when a thread runs a coroutine the snapshot does not know. It
 * uses the snapshot three ways:
 *  - stitching: a sample of a thread that runs a task becomes
 *      loop frames, <task ROOT>, ROOT's coroutine frames, ..., <task NAME>, the running frames
 *    so time is attributed through the chain of tasks that await each other;
 *  - the "asyncio: awaiting" profile: at each snapshot, every pending task's await chain,
 *    weighted by the time since the previous snapshot, so wall time spent awaiting shows per
 *    await site;
 *  - task lifecycle (seen, created, finished, cancelled, most alive at once) and per await site
 *    the total time tasks were suspended there and how many distinct waits were seen.
 */
#ifndef APROF_ASYNC_RECORD_H
#define APROF_ASYNC_RECORD_H

#include "aggregate.h"
#include "asyncio_reader.h"
#include "sample.h"
#include "session.h"

#include <stdint.h>
#include <stdio.h>

#define ASYNC_RECORD_DEFAULT_AWAIT_HZ 10.0
#define ASYNC_RECORD_AWAITING_PROFILE "asyncio: awaiting"

typedef struct async_task_stats {
    uint64_t seen, created, finished, cancelled, max_alive;
} async_task_stats;

typedef struct async_await_site {
    aprof_frame frame;   /* where suspended tasks wait: the innermost frame of the program's own
                          * code in the task's coroutine stack, else its innermost frame */
    uint64_t wait_ns;    /* task-time spent suspended here */
    uint64_t waits;      /* distinct waits: a task arriving at this site */
} async_await_site;

typedef struct async_record async_record;

/* NULL when out of memory. await_hz: snapshots (and awaiting-profile samples) per second.
 * exact_task_names: every task by its own name in stitched stacks (async_stitch.h: by default
 * tasks with asyncio's default names are grouped). */
async_record *async_record_new(session *s, agg *a, double await_hz, bool exact_task_names);
void async_record_free(async_record *r);

/* Add the awaiting profile to another aggregator from now on (record --segment starts a new
 * one per segment). */
void async_record_set_agg(async_record *r, agg *a);

/* Keep the timeline of tasks (timeline.h) in tl from now on: every snapshot's tasks and, through
 * async_record_stitch, which task each thread sample ran. NULL stops. */
struct task_timeline;
void async_record_set_timeline(async_record *r, struct task_timeline *tl);

/* Name the awaiting profile PREFIX + "asyncio: awaiting" (recordings of several processes). */
void async_record_set_profile_prefix(async_record *r, const char *prefix);

/* Feed every sample in order, before stitching its threads. Takes a new task snapshot when due
 * (and adds the awaiting profile's samples to the aggregator). */
void async_record_observe(async_record *r, const aprof_sample *s);

/* The stitched stack of a thread of the last observed sample: writes it to out and returns its
 * length, or returns 0 when the thread runs no known task (use its own frames then). */
uint32_t async_record_stitch(async_record *r, const aprof_thread_sample *t, aprof_frame *out,
                             uint32_t cap);

/* Name of the task whose coroutine is `coro`, for stall reports (stall_task_fn). */
const char *async_record_task_name(void *r, pid_t pid, uint64_t coro);

/* True once the target was seen using asyncio. */
bool async_record_active(const async_record *r);

const async_task_stats *async_record_task_stats(const async_record *r);
/* Await sites, most waited-on first. */
size_t async_record_site_count(const async_record *r);
const async_await_site *async_record_site_at(async_record *r, size_t i);
uint64_t async_record_snapshots(const async_record *r);

#endif
