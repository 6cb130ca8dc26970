/* Task-stitched stacks: a thread's stack re-rooted through the chain of asyncio tasks that await
 * the task it is running, so that flame graphs group time by tasks:
 *     loop frames, <task ROOT>, ROOT's coroutine frames, ..., <task NAME>, the running frames
 * Pure functions over a task snapshot (src/asyncio/asyncio_reader.h). */
#ifndef APROF_ASYNC_STITCH_H
#define APROF_ASYNC_STITCH_H

#include "asyncio_reader.h"
#include "sample.h"
#include "strtab.h"

#include <stdbool.h>
#include <stdint.h>

/* Tasks whose names differ only in a trailing counter (asyncio's default "Task-17": one per
 * request in many services; "w-730", "conn_41": redact.h's task_name_group_len) are one
 * `<task Task-*>`, `<task w-*>` frame unless exact_names: one flame per kind of task, and a
 * recording's distinct stacks stay bounded however many tasks come and go. Other names are
 * kept. */

/* Append to out[*n..cap): for each task awaiting task i, outermost (root) first, a
 * `<task NAME>` frame and that task's coroutine frames; then `<task NAME>` of i. */
void async_stitch_chain(const async_snapshot *s, uint32_t i, strtab *st, aprof_frame *out,
                        uint32_t *n, uint32_t cap, bool exact_names);

/* Checks a snapshot's chain at the time of a sample: how many leading entries of chain (the
 * running task, then its awaiters) still hold. asyncio_chain_still_valid() is the real one. */
typedef struct async_chain_check {
    uint32_t (*still_valid)(void *ud, const async_snapshot *s, const uint32_t *chain, uint32_t n);
    void *ud;
} async_chain_check;

/* The stitched stack of thread t into out; returns its length, or 0 when t runs no task of the
 * snapshot (then t's own frames stand). The snapshot is older than the sample: the task is
 * only taken as t's when the frame t runs for it is that task's coroutine function (its address
 * may hold another coroutine now), and with `check` (optional) each awaiter only while it still
 * holds; where one does not, the chain is cut and an "<awaiters unknown>" mark stands above the
 * part that holds. */
uint32_t async_stitch_thread(const async_snapshot *s, const aprof_thread_sample *t, strtab *st,
                             aprof_frame *out, uint32_t cap, const async_chain_check *check,
                             bool exact_names, uint32_t *running);
/* (running, optional: the index of the running task stitched in, ASYNC_NO_INDEX when 0 is
 * returned) */

#endif
