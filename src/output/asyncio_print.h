/* The asyncio picture of a snapshot (asyncio_reader.h), for `aprof dump`. */
#ifndef APROF_ASYNCIO_PRINT_H
#define APROF_ASYNCIO_PRINT_H

#include "asyncio_reader.h"
#include "json.h"

#include <stdio.h>

/* The text picture: per loop a tree of who awaits whom (roots first), each task with its state,
 * what it awaits and its coroutine stack; then await cycles. */
void async_print_text(FILE *out, const async_snapshot *s);
/* JSON members "loops", "tasks" and "await_cycles" of the enclosing object (docs/asyncio.md). */
void async_print_json(json_writer *w, const async_snapshot *s);

#endif
