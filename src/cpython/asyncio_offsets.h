/* CPython 3.14+ `_Py_AsyncioModuleDebugOffsets`: what the `_asyncio` extension publishes about
 * its tasks and about the thread and interpreter state it keeps them in.
 *
 * The `_asyncio` image (loaded once asyncio is imported) holds the struct in its ELF section
 * `.AsyncioDebug`: three tables of uint64 offsets, each led by its struct's size (task object:
 * size, task_name, task_awaited_by, task_is_task, task_awaited_by_is_set, task_coro,
 * task_node; interpreter state: size, asyncio_tasks_head; thread state: size,
 * asyncio_running_loop, asyncio_running_task, asyncio_tasks_head). Unlike _Py_DebugOffsets it
 * has no cookie or version: every offset is checked against its table's size and the sizes
 * against the interpreter's own. The layout of the struct is data below, per minor version.
 */
#ifndef APROF_ASYNCIO_OFFSETS_H
#define APROF_ASYNCIO_OFFSETS_H

#include "layouts.h"

#include <stdbool.h>
#include <stddef.h>

/* The ELF section that holds the struct. */
#define ASYNCIO_OFFSETS_SECTION ".AsyncioDebug"

/* Validate `len` bytes of the section of the `_asyncio` of the version *in describes and, on
 * success, write into *out
 * a copy of *in with the published fields (TaskObj name, coroutine, list node and size; the
 * thread state's running loop, running task and task list; the interpreter's task list)
 * overridden. false (and *out an unchanged copy) when there is no description for the version
 * or a value is implausible. */
bool asyncio_offsets_apply(const void *bytes, size_t len, const py_layout *in, py_layout *out);

#endif
