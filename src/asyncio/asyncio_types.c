/* Type classification of target objects for the asyncio reader: which objects are tasks,
 * futures, coroutines, ... (cached by type address), the names of wait kinds and task states,
 * and the kind of wait an asyncio coroutine stands for. */
#include "asyncio_internal.h"

#include <string.h>

#define TYPE_NAME_MAX 96u

/* tp_flags */
#define TPF_HEAPTYPE (1ull << 9)

/* ---- small helpers ------------------------------------------------------------------------ */

/* A NUL-terminated C string (a tp_name) of at most cap-1 bytes, read page by page. */
static bool rd_cstr(asyncio_reader *r, uint64_t addr, char *buf, size_t cap)
{
    size_t got = 0;
    while (got + 1 < cap) {
        uint64_t a = addr + got;
        size_t chunk = MEM_PAGE_SIZE - (size_t)(a & (MEM_PAGE_SIZE - 1));
        if (chunk > cap - 1 - got)
            chunk = cap - 1 - got;
        if (!rd(r, a, buf + got, chunk))
            return false;
        void *nul = memchr(buf + got, 0, chunk);
        if (nul)
            return true;
        got += chunk;
    }
    buf[cap - 1] = '\0';
    return true;
}

/* ---- type classification (cached by type address) ----------------------------------------- */

static uint32_t class_of_name(const char *name, bool heap)
{
    static const struct { const char *name; uint32_t cls; } statics[] = {
        {"coroutine", TC_CORO}, {"generator", TC_GEN}, {"function", TC_FUNC},
        {"method", TC_METHOD}, {"builtin_function_or_method", TC_CFUNC}, {"cell", TC_CELL},
        {"set", TC_SET}, {"frozenset", TC_SET}, {"list", TC_LIST}, {"tuple", TC_TUPLE},
        {"str", TC_STR}, {"int", TC_INT}, {"bool", TC_INT}, {"NoneType", TC_NONE},
        {"weakref.ReferenceType", TC_WEAKREF}, {"weakref", TC_WEAKREF}, {"dict", TC_DICT},
    };
    /* The C types of _asyncio are static types on 3.10/3.11 and heap types on 3.12+. */
    if (strcmp(name, "_asyncio.Task") == 0)
        return TC_TASK | TC_FUTURE | TC_CLAYOUT;
    if (strcmp(name, "_asyncio.Future") == 0)
        return TC_FUTURE | TC_CLAYOUT;
    if (heap) {
        /* Python classes of asyncio (tp_name of a heap type is its bare name). */
        if (strcmp(name, "_GatheringFuture") == 0)
            return TC_GATHER | TC_FUTURE;
        if (strcmp(name, "TaskGroup") == 0)
            return TC_TASKGROUP;
        if (strcmp(name, "Task") == 0)
            return TC_TASK | TC_FUTURE;
        if (strcmp(name, "Future") == 0)
            return TC_FUTURE;
        return 0;
    }
    for (size_t i = 0; i < sizeof statics / sizeof statics[0]; i++)
        if (strcmp(name, statics[i].name) == 0)
            return statics[i].cls;
    return 0;
}

static uint32_t class_of_base(asyncio_reader *r, uint64_t type)
{
    char name[TYPE_NAME_MAX];
    uint64_t flags = 0, tp_name = 0;
    if (!mem_ptr_ok(type, true) || pyobj_type_flags(&r->c, type, &flags) < 0 ||
        !rd_ptr(r, type + (uint64_t)r->L->type.name, &tp_name) || !rd_cstr(r, tp_name, name, sizeof name))
        return 0;
    return class_of_name(name, (flags & TPF_HEAPTYPE) != 0);
}

static uint32_t compute_class(asyncio_reader *r, uint64_t type)
{
    uint32_t cls = class_of_base(r, type);
    uint64_t mro = 0;
    if (rd_ptr(r, type + (uint64_t)r->L->type.mro, &mro) && mem_ptr_ok(mro, true)) {
        uint64_t items[PYOBJ_MAX_MRO];
        size_t n = 0;
        if (pyobj_seq_items(&r->c, mro, items, PYOBJ_MAX_MRO, &n) >= 0)
            for (size_t i = 1; i < n; i++)
                cls |= class_of_base(r, items[i]);
    }
    /* A Python Task subclassing nothing of _asyncio keeps the Python layout; any C base wins. */
    return cls | TC_KNOWN;
}

static uint32_t classify_type(asyncio_reader *r, uint64_t type)
{
    if (!mem_ptr_ok(type, true))
        return 0;
    uint32_t h = hash32(type) & (TYPE_CACHE - 1);
    for (uint32_t probe = 0; probe < 8; probe++) {
        type_entry *e = &r->types[(h + probe) & (TYPE_CACHE - 1)];
        if (e->type == type)
            return e->cls;
        if (e->type == 0) {
            uint32_t cls = compute_class(r, type);
            e->type = type;
            e->cls = cls;
            return cls;
        }
    }
    return compute_class(r, type); /* cache full around here: uncached */
}

uint32_t ar_classify(asyncio_reader *r, uint64_t obj)
{
    uint64_t type;
    if (!mem_ptr_ok(obj, true) || !rd_ptr(r, obj + (uint64_t)r->L->object.type, &type))
        return 0;
    return classify_type(r, type);
}

/* ---- names -------------------------------------------------------------------------------- */

const char *async_wait_kind_name(uint8_t kind)
{
    static const char *const names[AWK_COUNT_] = {
        [AWK_NONE] = "none", [AWK_TASK] = "task", [AWK_GATHER] = "gather",
        [AWK_SHIELD] = "shield", [AWK_WAIT_FOR] = "wait_for", [AWK_WAIT] = "wait",
        [AWK_TASKGROUP] = "taskgroup", [AWK_SLEEP] = "sleep", [AWK_LOCK] = "lock",
        [AWK_SEMAPHORE] = "semaphore", [AWK_EVENT] = "event", [AWK_CONDITION] = "condition",
        [AWK_BARRIER] = "barrier", [AWK_QUEUE] = "queue", [AWK_STREAM] = "stream",
        [AWK_FUTURE] = "future", [AWK_OTHER] = "other", [AWK_UNKNOWN] = "unknown",
    };
    return kind < AWK_COUNT_ ? names[kind] : "unknown";
}

const char *async_task_state_name(uint8_t state)
{
    switch (state) {
    case ATS_PENDING: return "pending";
    case ATS_RUNNING: return "running";
    case ATS_DONE: return "done";
    case ATS_CANCELLED: return "cancelled";
    default: return "unknown";
    }
}

/* ---- wait kinds (what a task waits on) ---------------------------------------------------- */

uint8_t ar_asyncio_file_of(asyncio_reader *r, const char *file)
{
    for (uint32_t i = 0; i < r->nfiles; i++)
        if (r->files[i].file == file)
            return r->files[i].af;
    uint8_t af = AF_NONE;
    size_t n = strlen(file);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    static const char dir[] = "asyncio/";
    size_t dl = sizeof dir - 1, bl = strlen(base);
    if (n >= dl + bl && memcmp(file + n - bl - dl, dir, dl) == 0 &&
        (n == dl + bl || file[n - bl - dl - 1] == '/')) {
        af = AF_OTHER;
        if (strcmp(base, "tasks.py") == 0)
            af = AF_TASKS;
        else if (strcmp(base, "taskgroups.py") == 0)
            af = AF_TASKGROUPS;
        else if (strcmp(base, "locks.py") == 0)
            af = AF_LOCKS;
        else if (strcmp(base, "queues.py") == 0)
            af = AF_QUEUES;
        else if (strcmp(base, "streams.py") == 0)
            af = AF_STREAMS;
    }
    if (r->nfiles < FILE_CACHE)
        r->files[r->nfiles++] = (file_entry){file, af};
    return af;
}

static bool starts_with(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* The kind of wait a coroutine of asyncio stands for (by its __qualname__), AWK_NONE if none. */
static uint8_t kind_of_coroutine(uint8_t af, const char *q)
{
    switch (af) {
    case AF_TASKS:
        if (strcmp(q, "sleep") == 0 || strcmp(q, "__sleep0") == 0)
            return AWK_SLEEP;
        if (strcmp(q, "wait_for") == 0)
            return AWK_WAIT_FOR;
        if (strcmp(q, "wait") == 0 || strcmp(q, "_wait") == 0)
            return AWK_WAIT;
        return AWK_NONE;
    case AF_TASKGROUPS:
        return starts_with(q, "TaskGroup.") ? AWK_TASKGROUP : AWK_NONE;
    case AF_LOCKS:
        if (starts_with(q, "Lock."))
            return AWK_LOCK;
        if (starts_with(q, "Semaphore.") || starts_with(q, "BoundedSemaphore."))
            return AWK_SEMAPHORE;
        if (starts_with(q, "Event."))
            return AWK_EVENT;
        if (starts_with(q, "Condition."))
            return AWK_CONDITION;
        if (starts_with(q, "Barrier."))
            return AWK_BARRIER;
        return AWK_NONE;
    case AF_QUEUES:
        return AWK_QUEUE;
    case AF_STREAMS:
        return AWK_STREAM;
    default:
        return AWK_NONE;
    }
}

/* Wait kind of one coroutine of asyncio (af: its file), by its qualified name. 3.11+ frames
 * carry co_qualname; 3.10 frames only co_name, which does not tell Lock.acquire from
 * Semaphore.acquire, so there locks.py coroutines are asked for their gi_qualname. */
static uint8_t kind_of_frame(asyncio_reader *r, uint8_t af, const aprof_frame *f, uint64_t coro)
{
    bool need_qualname = r->L->code.qualname == LAYOUT_ABSENT && af == AF_LOCKS;
    uint32_t h = (uint32_t)(((uintptr_t)f->file >> 4) ^ ((uintptr_t)f->name >> 3)) & (KIND_CACHE - 1);
    kind_entry *e = &r->kinds[h];
    if (!need_qualname && e->file == f->file && e->name == f->name)
        return e->kind;
    const char *q = f->name;
    char buf[128];
    uint64_t qn;
    if (need_qualname) {
        if (!rd_ptr(r, coro + (uint64_t)r->L->gen.qualname, &qn) ||
            pyobj_str_utf8(&r->c, qn, buf, sizeof buf, NULL) < 0)
            return AWK_NONE;
        q = buf;
    }
    uint8_t kind = kind_of_coroutine(af, q);
    if (!need_qualname)
        *e = (kind_entry){f->file, f->name, kind};
    return kind;
}

/* From the innermost coroutine outwards, over the trailing run of asyncio's own coroutines: the
 * outermost one that names a kind of wait (Barrier.wait rather than the Condition.wait it uses).
 * *which gets the chain position of that coroutine. */
uint8_t ar_recognise_wait(asyncio_reader *r, const async_snapshot *out, const chain *ch,
                          uint32_t *which)
{
    uint8_t kind = AWK_NONE;
    for (uint32_t i = ch->n; i-- > 0;) {
        if (ch->frame[i] == ASYNC_NO_INDEX)
            break;
        const aprof_frame *f = &out->frames[ch->frame[i]];
        uint8_t af = ar_asyncio_file_of(r, f->file);
        if (af == AF_NONE)
            break;
        if (af == AF_OTHER)
            continue;
        uint8_t k = kind_of_frame(r, af, f, ch->coro[i]);
        if (k != AWK_NONE) {
            kind = k;
            *which = i;
        }
    }
    return kind;
}
