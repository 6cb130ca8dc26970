#include "task_stats_json.h"

void task_stats_json(json_writer *w, const char *key, const async_task_stats *t,
                     int64_t snapshots)
{
    json_key(w, key);
    json_begin_object(w);
    json_kv_uint(w, "seen", t->seen);
    json_kv_uint(w, "created", t->created);
    json_kv_uint(w, "finished", t->finished);
    json_kv_uint(w, "cancelled", t->cancelled);
    json_kv_uint(w, "max_alive", t->max_alive);
    if (snapshots >= 0)
        json_kv_uint(w, "snapshots", (uint64_t)snapshots);
    json_end_object(w);
}
