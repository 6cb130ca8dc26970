/* Finding every task of the target: the task registries of asyncio.tasks (`_all_tasks` on
 * 3.10/3.11, `_scheduled_tasks` and `_eager_tasks` on 3.12/3.13, `_current_tasks`), looked up
 * through sys.modules, and the collection of task addresses out of them. */
#include "asyncio_internal.h"
#include "asyncio_offsets.h"
#include "elfimage.h"
#include "proc.h"

#include <limits.h>
#include <string.h>

/* Whether a mapped file can hold the _asyncio module: its own extension image
 * ("_asyncio.cpython-314-x86_64-linux-gnu.so"), or the interpreter's executable or libpython
 * when the module is built in (Debian's 3.15). */
static bool may_hold_asyncio(const char *base)
{
    static const char *const prefixes[] = {"_asyncio.", "python", "libpython"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(base, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* 3.14+: the offsets the target's `_asyncio` image publishes (.AsyncioDebug), into the
 * reader's own copy of the layout. The image is the first mapped file that may hold the module
 * and has the section (opened the way the interpreter was: map_files, then root-relative, then
 * as named). The section's contents are constant: they are read from the file. */
static bool apply_asyncio_offsets(asyncio_reader *r)
{
    proc_maps maps;
    if (target_src_maps(&r->pc.src, &maps) != 0)
        return false;
    bool ok = false;
    for (size_t i = 0; i < maps.n && !ok; i++) {
        const char *path = maps.maps[i].path, *base = path ? strrchr(path, '/') : NULL;
        if (!base || !may_hold_asyncio(base + 1) || maps.maps[i].offset != 0)
            continue;
        char hp[PATH_MAX + 32];
        elf_image img;
        if (!target_src_file_path(&r->pc.src, maps.maps[i].start, maps.maps[i].end, path, hp,
                                  sizeof hp) ||
            elf_image_open(hp, &img) != 0)
            continue;
        uint64_t addr, size;
        const uint8_t *data;
        py_layout refined;
        if (elf_image_section(&img, ASYNCIO_OFFSETS_SECTION, &addr, &size, &data) == 0 && data &&
            asyncio_offsets_apply(data, (size_t)size, r->L, &refined)) {
            r->own_layout = refined;
            r->L = &r->own_layout;
            r->c.L = r->L;
            ok = true;
        }
        elf_image_close(&img);
    }
    proc_maps_free(&maps);
    return ok;
}

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
    if (r->L->facts.task_registry == TASK_REGISTRY_THREAD_LISTS && !r->asyncio_offsets)
        r->asyncio_offsets = apply_asyncio_offsets(r);
    r->have_registries = r->weak_data[0] || r->weak_data[1] || r->eager_set ||
                         r->L->facts.task_registry == TASK_REGISTRY_THREAD_LISTS;
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

/* 3.14+: a circular list of C tasks (struct llist_node {next, prev}) headed at `head`, each
 * task linked through its task_node. Bounded: a torn list ends the walk, it never loops. */
static bool walk_task_list(asyncio_reader *r, uint64_t head, void *cc)
{
    uint64_t node = 0;
    if (!rd_ptr(r, head, &node))
        return false;
    for (uint32_t guard = 0; node && node != head; guard++) {
        if (guard > ASYNC_TASK_LIMIT || !mem_ptr_ok(node, true) ||
            node < (uint64_t)r->L->asyncio.task_node)
            return false;
        if (!collect_cb(cc, node - (uint64_t)r->L->asyncio.task_node))
            return true; /* full */
        if (!rd_ptr(r, node, &node))
            return false;
    }
    return node == head;
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
    if (r->L->facts.task_registry == TASK_REGISTRY_THREAD_LISTS) {
        /* every thread's list, then the interpreter's (tasks whose thread ended) */
        const py_layout *L = r->L;
        collect_ctx cc = {r, out, false};
        uint64_t interp = pyruntime_first_interp(r->t.rt, r->c.m), ts = 0;
        if (!interp || !rd_ptr(r, interp + (uint64_t)L->interp.threads_head, &ts))
            out->flags |= ASF_REGISTRY_ERROR;
        for (uint32_t guard = 0; ts && guard < MAX_THREADS; guard++) {
            if (!mem_ptr_ok(ts, true) ||
                !walk_task_list(r, ts + (uint64_t)L->tstate.asyncio_tasks_head, &cc))
                out->flags |= ASF_REGISTRY_ERROR;
            if (!mem_ptr_ok(ts, true) || !rd_ptr(r, ts + (uint64_t)L->tstate.next, &ts))
                break;
        }
        if (interp && L->interp.asyncio_tasks_head != LAYOUT_ABSENT &&
            !walk_task_list(r, interp + (uint64_t)L->interp.asyncio_tasks_head, &cc))
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
