/* Finding every task of the target: the task registries of asyncio.tasks (`_all_tasks` on
 * 3.10/3.11, `_scheduled_tasks` and `_eager_tasks` on 3.12/3.13, `_current_tasks`), looked up
 * through sys.modules, and the collection of task addresses out of them. */
#include "asyncio_internal.h"

#include <string.h>

/* ---- registries --------------------------------------------------------------------------- */

/* Look the task registries up through sys.modules -> asyncio.tasks. false when asyncio is not
 * imported (or sys.modules cannot be read). */
bool ar_refresh_registries(asyncio_reader *r)
{
    r->have_registries = false;
    r->weak_data[0] = r->weak_data[1] = r->eager_set = r->current = 0;
    memset(r->types, 0, sizeof(r->types)); /* types may have been freed and their memory reused */
    uint64_t interp = pyruntime_first_interp(r->t.rt, r->c.m), modules = 0, mod = 0;
    if (!interp || r->L->interp.modules == LAYOUT_ABSENT ||
        !rd_ptr(r, interp + (uint64_t)r->L->interp.modules, &modules) ||
        pyobj_module_find(&r->c, modules, "asyncio.tasks", &mod) < 0)
        return false;
    static const char *const weak_names[2] = {"_all_tasks", "_scheduled_tasks"};
    for (int i = 0; i < 2; i++) {
        uint64_t ws, data;
        if (pyobj_module_global(&r->c, mod, weak_names[i], &ws) >= 0 &&
            pyobj_getattr(&r->c, ws, "data", &data) >= 0 && (ar_classify(r, data) & TC_SET))
            r->weak_data[i] = data;
    }
    uint64_t obj;
    if (pyobj_module_global(&r->c, mod, "_eager_tasks", &obj) >= 0 &&
        (ar_classify(r, obj) & TC_SET))
        r->eager_set = obj;
    if (pyobj_module_global(&r->c, mod, "_current_tasks", &obj) >= 0 &&
        (ar_classify(r, obj) & TC_DICT))
        r->current = obj;
    r->have_registries = r->weak_data[0] || r->weak_data[1] || r->eager_set;
    return r->have_registries;
}

bool ar_registries_valid(asyncio_reader *r)
{
    for (int i = 0; i < 2; i++)
        if (r->weak_data[i] && !(ar_classify(r, r->weak_data[i]) & TC_SET))
            return false;
    if (r->eager_set && !(ar_classify(r, r->eager_set) & TC_SET))
        return false;
    if (r->current && !(ar_classify(r, r->current) & TC_DICT))
        return false;
    return r->have_registries;
}

/* ---- collecting task addresses ------------------------------------------------------------ */

typedef struct collect_ctx {
    asyncio_reader *r;
    async_snapshot *out;
    bool weak; /* items are weakrefs to tasks */
} collect_ctx;

typedef struct rec_query {
    const task_rec *recs;
    uint64_t task;
} rec_query;

static bool rec_is(const void *ctx, uint32_t idx)
{
    const rec_query *q = ctx;
    return q->recs[idx].t.id == q->task;
}

static bool collect_cb(void *ud, uint64_t item)
{
    collect_ctx *cc = ud;
    asyncio_reader *r = cc->r;
    uint64_t task = item;
    if (cc->weak) {
        if (!(ar_classify(r, item) & TC_WEAKREF) ||
            !rd_ptr(r, item + (uint64_t)r->L->weakref.object, &task))
            return true; /* torn or changing under us: skip the entry */
        if (!mem_ptr_ok(task, true) || (ar_classify(r, task) & TC_NONE))
            return true; /* a dead reference */
    }
    if (!mem_ptr_ok(task, true))
        return true;
    rec_query q = {r->recs, task};
    if (r->nrecs && hmap_find(&r->rec_by_id, hash32(task), rec_is, &q) != HMAP_NONE)
        return true;
    if (r->nrecs >= r->max_tasks) {
        cc->out->flags |= ASF_TASKS_TRUNCATED;
        return false;
    }
    if (!ar_grow((void **)&r->recs, &r->cap_recs, r->nrecs + 1, sizeof(task_rec),
                 ASYNC_TASK_LIMIT) ||
        hmap_insert(&r->rec_by_id, hash32(task), r->nrecs) != 0) {
        r->collect_failed = true;
        return false;
    }
    memset(&r->recs[r->nrecs], 0, sizeof(task_rec));
    r->recs[r->nrecs].t.id = task;
    r->nrecs++;
    return true;
}

int ar_collect_tasks(asyncio_reader *r, async_snapshot *out)
{
    r->nrecs = 0;
    r->collect_failed = false;
    if (!r->rec_by_id.cap && hmap_init(&r->rec_by_id, 2048) != 0)
        return -1;
    hmap_clear(&r->rec_by_id);
    for (int i = 0; i < 2; i++) {
        if (!r->weak_data[i])
            continue;
        collect_ctx cc = {r, out, true};
        if (pyobj_set_iter(&r->c, r->weak_data[i], collect_cb, &cc) < 0)
            out->flags |= ASF_REGISTRY_ERROR;
    }
    if (r->eager_set) {
        collect_ctx cc = {r, out, false};
        if (pyobj_set_iter(&r->c, r->eager_set, collect_cb, &cc) < 0)
            out->flags |= ASF_REGISTRY_ERROR;
    }
    return r->collect_failed ? -1 : 0;
}

bool ar_current_cb(void *ud, uint64_t key, uint64_t value)
{
    asyncio_reader *r = ud;
    if (r->ncur >= MAX_CURRENT)
        return false;
    r->cur[r->ncur++] = (current_pair){key, value};
    return true;
}
