/* View model of the TUI's Tasks view: the asyncio task tree of a snapshot (asyncio_reader.h) as
 * rows, per event loop, each task under the task that awaits it. Pure function of the snapshot. */
#ifndef APROF_TUI_TASKS_H
#define APROF_TUI_TASKS_H

#include "asyncio_reader.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tui_task_row {
    bool is_loop;          /* a heading row for one event loop (fields below: loop only) */
    uint32_t loop;         /* loop index in the snapshot, ASYNC_NO_INDEX when unknown */
    uint32_t task;         /* task index in the snapshot (task rows) */
    uint64_t id;           /* the task object's address (task rows), the loop's (loop rows) */
    uint32_t depth;        /* 0 for tasks that nothing awaits */
    bool again;            /* awaited by several: shown in full under its first awaiter only */
    char name[96];         /* task name (a copy: a snapshot's names do not outlive it for long,
                            * and rows stay on screen while the display is paused); loop rows:
                            * the loop's thread name */
    pid_t tid;             /* loop rows: the loop's thread */
    uint32_t ntasks;       /* loop rows: its tasks */
    uint8_t state;         /* async_task_state */
    uint8_t wait_kind;     /* async_wait_kind */
    uint16_t flags;        /* async_task_flags */
    aprof_frame where;     /* innermost frame of its coroutine stack; name NULL when none */
} tui_task_row;

/* Rows for every task whose name or location contains filter (all with an empty filter);
 * done and cancelled tasks only with show_done. *rows / *cap is the caller's growable buffer
 * (free()). Returns the number of rows; on allocation failure as many as fit. */
size_t tui_tasks_build(const async_snapshot *s, const char *filter, bool show_done,
                       tui_task_row **rows, size_t *cap);

/* Tasks that are neither done nor cancelled. */
uint32_t tui_tasks_alive(const async_snapshot *s);

#endif
