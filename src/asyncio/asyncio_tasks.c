/* Reading one task (state, loop, coroutine, waiter, callbacks, name), and reading the fields
 * of every task again after the analysis to catch tasks that ran meanwhile. */
#include "asyncio_internal.h"

#include "redact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* C FutureObj.fut_state values (enum fut_state in _asynciomodule.c, 3.10-3.13). */
enum { FUT_PENDING = 0, FUT_CANCELLED = 1, FUT_FINISHED = 2 };

/* ---- reading one task --------------------------------------------------------------------- */

static const char *intern(asyncio_reader *r, const char *s)
{
    const char *p = strtab_intern_cstr(r->names_cur, s);
    return p ? p : "?";
}

static const char *decode_task_name_as_is(asyncio_reader *r, uint64_t obj);

/* A task's name as every output shows it: with --redact, its placeholder. */
static const char *decode_task_name(asyncio_reader *r, uint64_t obj)
{
    const char *name = decode_task_name_as_is(r, obj);
    if (!name || !r->t.redact)
        return name;
    char shown[64];
    return redact_task_name(name, shown, sizeof(shown)) ? intern(r, shown) : name;
}

static const char *decode_task_name_as_is(asyncio_reader *r, uint64_t obj)
{
    uint32_t cls = ar_classify(r, obj);
    if (cls & TC_STR) {
        const char *name;
        if (pyobj_str_intern(&r->c, obj, r->names_cur, &name) >= 0 && name)
            return name;
    } else if (cls & TC_INT) {
        /* 3.13 names tasks lazily: the counter until the first get_name() */
        int64_t v;
        if (pyobj_int_value(&r->c, obj, &v) >= 0) {
            char buf[32];
            snprintf(buf, sizeof buf, "Task-%lld", (long long)v);
            return intern(r, buf);
        }
    }
    return NULL;
}

static bool names_fit(asyncio_reader *r)
{
    if (r->names && (r->nnames + 1) * 2ull <= r->names_mask + 1ull)
        return true;
    /* full: start over, with room for twice as many */
    uint32_t size = r->names ? (r->names_mask + 1) * 2 : 1024;
    if (size > 4 * ASYNC_TASK_LIMIT)
        size = r->names_mask + 1;
    name_entry *n = realloc(r->names, (size_t)size * sizeof(name_entry));
    if (!n)
        return false;
    memset(n, 0, (size_t)size * sizeof(name_entry));
    r->names = n;
    r->names_mask = size - 1;
    r->nnames = 0;
    return true;
}

static const char *task_name(asyncio_reader *r, uint64_t obj)
{
    uint8_t head[NAME_FP_BYTES];
    if (!mem_ptr_ok(obj, true) || !rd(r, obj, head, sizeof head))
        return decode_task_name(r, obj);
    uint64_t fp = 0;
    for (size_t k = 0; k < sizeof head; k += 8) {
        uint64_t word;
        memcpy(&word, head + k, 8);
        fp = hash_combine(fp, word);
    }
    if (!names_fit(r))
        return decode_task_name(r, obj);
    uint32_t h = hash32(obj) & r->names_mask;
    while (r->names[h].obj && r->names[h].obj != obj)
        h = (h + 1) & r->names_mask;
    name_entry *e = &r->names[h];
    if (e->obj == obj && e->fp == fp)
        return e->name;
    const char *name = decode_task_name(r, obj);
    if (!name)
        return NULL;
    if (!e->obj)
        r->nnames++;
    *e = (name_entry){obj, fp, name};
    return name;
}

/* None (or NULL) -> 0 */
static uint64_t not_none(asyncio_reader *r, uint64_t obj)
{
    return obj && !(ar_classify(r, obj) & TC_NONE) ? obj : 0;
}

bool ar_py_attr(asyncio_reader *r, uint64_t obj, const char *name, uint64_t *value)
{
    *value = 0;
    if (pyobj_getattr(&r->c, obj, name, value) < 0)
        return false;
    *value = not_none(r, *value);
    return true;
}

/* State of a future from its fields. -1 when unreadable. */
static int future_state(asyncio_reader *r, uint64_t fut, uint32_t cls)
{
    if (cls & TC_CLAYOUT) {
        int32_t st;
        if (!rd(r, fut + (uint64_t)r->L->asyncio.fut_state, &st, 4) || st < 0 || st > 2)
            return -1;
        return st;
    }
    uint64_t s;
    int rc = pyobj_getattr(&r->c, fut, "_state", &s);
    if (rc == PYOBJ_E_NOTFOUND)
        return FUT_PENDING; /* still the class attribute Future._state = 'PENDING' */
    if (rc < 0)
        return -1;
    if (pyobj_str_equals(&r->c, s, "PENDING", 7) == 1)
        return FUT_PENDING;
    if (pyobj_str_equals(&r->c, s, "CANCELLED", 9) == 1)
        return FUT_CANCELLED;
    if (pyobj_str_equals(&r->c, s, "FINISHED", 8) == 1)
        return FUT_FINISHED;
    return -1;
}

void ar_read_task(asyncio_reader *r, task_rec *rec)
{
    async_task *t = &rec->t;
    task_work *w = &rec->w;
    const py_layout *L = r->L;
    t->name = "";
    t->state = ATS_UNKNOWN;
    t->wait_kind = AWK_UNKNOWN;
    t->loop_index = ASYNC_NO_INDEX;
    uint32_t cls = ar_classify(r, t->id);
    if (!(cls & TC_TASK)) {
        t->flags |= ATF_UNREADABLE;
        return;
    }
    uint64_t name_obj = 0;
    int st;
    if (cls & TC_CLAYOUT) {
        uint8_t buf[512];
        loff size = L->asyncio.task_sizeof;
        if (size <= 0 || size > (loff)sizeof buf || !rd(r, t->id, buf, (size_t)size)) {
            t->flags |= ATF_UNREADABLE;
            return;
        }
        int32_t fs;
        memcpy(&fs, buf + L->asyncio.fut_state, 4);
        w->raw_state = fs;
        st = fs >= 0 && fs <= 2 ? fs : -1;
        t->loop = ld64(buf, L->asyncio.fut_loop);
        w->waiter = w->raw_waiter = ld64(buf, L->asyncio.task_fut_waiter);
        t->coro = ld64(buf, L->asyncio.task_coro);
        name_obj = ld64(buf, L->asyncio.task_name);
        w->cb0 = ld64(buf, L->asyncio.fut_callback0);
        w->cbs = ld64(buf, L->asyncio.fut_callbacks);
    } else {
        t->flags |= ATF_PY_TASK;
        st = future_state(r, t->id, cls);
        ar_py_attr(r, t->id, "_loop", &t->loop);
        ar_py_attr(r, t->id, "_fut_waiter", &w->waiter);
        ar_py_attr(r, t->id, "_coro", &t->coro);
        ar_py_attr(r, t->id, "_name", &name_obj);
        ar_py_attr(r, t->id, "_callbacks", &w->cbs);
    }
    if (st < 0 || !mem_ptr_ok(t->loop, true)) {
        t->flags |= ATF_UNREADABLE;
        return;
    }
    w->waiter = mem_ptr_ok(w->waiter, true) ? not_none(r, w->waiter) : 0;
    if (!mem_ptr_ok(t->coro, true))
        t->coro = 0;
    t->name_obj = name_obj;
    const char *name = task_name(r, name_obj);
    if (!name) {
        t->flags |= ATF_PARTIAL;
        name = "?";
    }
    t->name = name;
    t->state = st == FUT_PENDING ? ATS_PENDING : st == FUT_CANCELLED ? ATS_CANCELLED : ATS_DONE;
    t->wait_kind = AWK_NONE;
    if (t->state != ATS_PENDING)
        w->waiter = 0;
    for (uint32_t i = 0; i < r->ncur; i++)
        if (r->cur[i].task == t->id && r->cur[i].loop == t->loop && t->state == ATS_PENDING)
            t->state = ATS_RUNNING;
}

uint8_t asyncio_task_outcome(asyncio_reader *r, uint64_t id, uint64_t coro)
{
    uint32_t cls = ar_classify(r, id);
    if (!(cls & TC_TASK) || !coro)
        return ATS_UNKNOWN;
    uint64_t now_coro = 0;
    if (cls & TC_CLAYOUT) {
        if (!rd_ptr(r, id + (uint64_t)r->L->asyncio.task_coro, &now_coro))
            return ATS_UNKNOWN;
    } else if (!ar_py_attr(r, id, "_coro", &now_coro)) {
        return ATS_UNKNOWN;
    }
    if (now_coro != coro) /* cleared by its deallocation, or the memory holds another task */
        return ATS_UNKNOWN;
    int st = future_state(r, id, cls);
    return st == FUT_CANCELLED ? ATS_CANCELLED : st == FUT_FINISHED ? ATS_DONE : ATS_UNKNOWN;
}

/* ---- recheck ------------------------------------------------------------------------------ */

/* Without --blocking the target runs while a snapshot reads it, and the reads of one task are
 * spread over the whole snapshot (the cache fills page groups as they are first needed). A task
 * that ran meanwhile can show a state, a wait and a stack from different moments. So after the
 * analysis the cache is dropped and every C task's fut_state and _fut_waiter and its coroutine's
 * instruction pointer are read again (fresh pages, in the same few big reads as the first pass,
 * since tasks are visited in address order): whatever changed is marked ATF_CHANGED. */
void ar_recheck_tasks(asyncio_reader *r, async_snapshot *out)
{
    const py_layout *L = r->L;
    pagecache_forget(&r->pc);
    for (uint32_t i = 0; i < out->ntasks; i++) {
        async_task *t = &out->tasks[i];
        const task_work *w = &r->work[i];
        if ((t->flags & (ATF_UNREADABLE | ATF_PY_TASK)) ||
            (t->state != ATS_PENDING && t->state != ATS_RUNNING))
            continue;
        int32_t st;
        uint64_t waiter, instr = 0;
        bool same = rd(r, t->id + (uint64_t)L->asyncio.fut_state, &st, 4) &&
                    rd_ptr(r, t->id + (uint64_t)L->asyncio.task_fut_waiter, &waiter) &&
                    st == w->raw_state && waiter == w->raw_waiter;
        if (same && w->instr_len && t->state == ATS_PENDING)
            same = rd(r, w->instr_addr, &instr, w->instr_len) && instr == w->instr;
        if (!same)
            t->flags |= ATF_CHANGED;
    }
}
