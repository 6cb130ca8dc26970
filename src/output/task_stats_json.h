/* The task lifecycle figures (asyncio) as one JSON object, for every file that gives them: the
 * --summary file (per recording and per process) and the HTML report's data. */
#ifndef APROF_TASK_STATS_JSON_H
#define APROF_TASK_STATS_JSON_H

#include "async_record.h"
#include "json.h"

#include <stdint.h>

/* Member `key`: {seen, created, finished, cancelled, max_alive[, snapshots]}; snapshots only
 * when >= 0. */
void task_stats_json(json_writer *w, const char *key, const async_task_stats *t,
                     int64_t snapshots);

#endif
