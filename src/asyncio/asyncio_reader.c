/* Reading asyncio tasks out of a target (see asyncio_reader.h and docs/asyncio.md). */
#include "asyncio_reader.h"

#include "clock.h"
#include "pyobj.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REGISTRY_REFRESH_NS 1000000000ull /* module/registry addresses are looked up again */
#define TYPE_CACHE 512u                   /* power of two */
#define FILE_CACHE 64u
#define MAX_CALLBACKS 1024u               /* done callbacks looked at per future */
#define MAX_RESOLVE_DEPTH 16u             /* gather in gather in shield ... */
#define MAX_SLOTS 256u                    /* locals + stack slots of one frame */
#define MAX_THREADS 4096u
#define MAX_CURRENT 4096u                 /* entries of _current_tasks */
#define TYPE_NAME_MAX 96u
#define ASYNC_TASK_LIMIT 1000000u         /* hard limit of asyncio_reader_set_max_tasks() */

/* ---- version facts (checked: DWARF enum _framestate, dis.opmap of each interpreter) -------- */

/* gi_frame_state (3.11+). 3.11/3.12: CREATED -2, SUSPENDED -1, EXECUTING 0, COMPLETED 1,
 * CLEARED 4. 3.13 adds SUSPENDED_YIELD_FROM: CREATED -3, SUSPENDED -2, SUSPENDED_YIELD_FROM -1. */
#define FS_EXECUTING 0
#define FS_COMPLETED 1
#define FS_CLEARED 4
#define FS_CREATED_311 (-2)
#define FS_SUSPENDED_YIELD_FROM_313 (-1)
/* Opcodes _PyGen_yf looks at: 3.10 YIELD_FROM; 3.11 RESUME (and its quickened form
 * RESUME_QUICK); 3.12 RESUME and INSTRUMENTED_RESUME. A RESUME oparg >= 2 means "after a yield
 * from / await". */
#define OP_YIELD_FROM_310 72
#define OP_RESUME_311 151
#define OP_RESUME_QUICK_311 150
#define OP_RESUME_312 151
#define OP_INSTRUMENTED_RESUME_312 240

/* C FutureObj.fut_state values (enum fut_state in _asynciomodule.c, 3.10-3.13). */
enum { FUT_PENDING = 0, FUT_CANCELLED = 1, FUT_FINISHED = 2 };

/* tp_flags */
#define TPF_HEAPTYPE (1ull << 9)

/* ---- type classes ------------------------------------------------------------------------- */

enum type_class {
    TC_KNOWN = 1u << 0,     /* the cache entry is filled */
    TC_TASK = 1u << 1,
    TC_FUTURE = 1u << 2,    /* Future or subclass (tasks too) */
    TC_CLAYOUT = 1u << 3,   /* has the C FutureObj / TaskObj layout */
    TC_GATHER = 1u << 4,    /* asyncio.tasks._GatheringFuture */
    TC_TASKGROUP = 1u << 5,
    TC_CORO = 1u << 6,
    TC_GEN = 1u << 7,
    TC_FUNC = 1u << 8,
    TC_METHOD = 1u << 9,
    TC_CFUNC = 1u << 10,
    TC_CELL = 1u << 11,
    TC_SET = 1u << 12,
    TC_LIST = 1u << 13,
    TC_TUPLE = 1u << 14,
    TC_STR = 1u << 15,
    TC_INT = 1u << 16,
    TC_NONE = 1u << 17,
    TC_WEAKREF = 1u << 18,
    TC_DICT = 1u << 19,
};

typedef struct type_entry {
    uint64_t type;
    uint32_t cls;
} type_entry;

/* Which asyncio source file a frame runs in (for recognising what a task waits on). */
enum asyncio_file {
    AF_NONE = 0, AF_OTHER, AF_TASKS, AF_TASKGROUPS, AF_LOCKS, AF_QUEUES, AF_STREAMS,
};

typedef struct file_entry {
    const char *file; /* interned */
    uint8_t af;
} file_entry;

/* Task names, by str object: reused while the object's first NAME_FP_BYTES bytes (header, hash,
 * start of the text) are unchanged, so a snapshot rarely decodes a name twice. */
#define NAME_FP_BYTES 64u
typedef struct name_entry {
    uint64_t obj;
    uint64_t fp;
    const char *name;
} name_entry;

/* Wait kind of an asyncio coroutine, by (interned file, interned function name). */
#define KIND_CACHE 256u
typedef struct kind_entry {
    const char *file, *name;
    uint8_t kind;
} kind_entry;

/* Per task, what later passes need that the public struct does not carry. */
typedef struct task_work {
    uint64_t waiter;  /* task._fut_waiter */
    uint64_t cb0;     /* first done callback (C futures), 0 */
    uint64_t cbs;     /* list of further callbacks ((callback, context) tuples), 0 */
    /* for the recheck: what was read first */
    uint64_t raw_waiter;
    int32_t raw_state;
    uint32_t instr_len;    /* 0: nothing to recheck in the coroutine */
    uint64_t instr_addr;   /* the outermost coroutine's prev_instr / instr_ptr / f_lasti */
    uint64_t instr;
} task_work;

typedef struct task_rec {
    async_task t;
    task_work w;
} task_rec;

/* A sort record: radix-sorted on key. Await edges are key = child << 32 | parent. */
typedef struct kv {
    uint64_t key, val;
} kv;

typedef struct thread_info {
    uint64_t thread_id;    /* pthread ident == threading.get_ident() */
    pid_t tid;
    uint64_t running_loop; /* 3.13+ tstate->asyncio_running_loop */
    const char *name;
    bool is_main;
} thread_info;

typedef struct current_pair {
    uint64_t loop, task;
} current_pair;

/* The await chain of one task, innermost last. */
typedef struct chain {
    uint32_t n;                        /* coroutines followed */
    uint64_t coro[ASYNC_MAX_DEPTH];
    uint32_t frame[ASYNC_MAX_DEPTH];   /* index into snapshot frames, ASYNC_NO_INDEX if none */
    uint64_t end;                      /* what the innermost coroutine awaits (not a coroutine) */
} chain;

/* The reader's own page cache. A snapshot walks thousands of small objects (tasks, coroutines,
 * futures) spread over a few MiB; the session's 128-page cache would thrash on them, so the
 * reader keeps a larger one (pages allocated as used), filled PC_GROUP aligned pages per
 * process_vm_readv, and forgotten at the start of every snapshot. */
#define PC_SLOTS 4096u /* direct-mapped: 16 MiB at most */
#define PC_GROUP 4u    /* pages read per miss (aligned group) */

typedef struct pc_page {
    uint64_t base;
    uint64_t epoch;
    uint32_t len;
    uint8_t data[MEM_PAGE_SIZE];
} pc_page;

struct asyncio_reader {
    asyncio_target t;
    pc_page *pages[PC_SLOTS];
    uint64_t pc_epoch;
    pyobj_ctx c;
    const py_layout *L;
    unsigned minor;
    uint32_t max_tasks;

    /* registries, looked up through sys.modules */
    uint64_t refreshed_ns;
    bool have_registries;
    uint64_t weak_data[2]; /* the `data` sets of _all_tasks / _scheduled_tasks (WeakSets) */
    uint64_t eager_set;    /* _eager_tasks (3.12+) */
    uint64_t current;      /* _current_tasks dict */

    type_entry types[TYPE_CACHE];
    file_entry files[FILE_CACHE];
    uint32_t nfiles;
    name_entry *names;   /* open addressing, names_mask + 1 entries */
    uint32_t names_mask, nnames;
    kind_entry kinds[KIND_CACHE];

    /* scratch, reused */
    task_rec *recs;
    uint32_t nrecs, cap_recs;
    uint32_t *rec_map;   /* dedupe of task addresses while collecting */
    uint32_t rec_mask;
    kv *order;           /* recs in snapshot order (val: index into recs) */
    uint32_t cap_order;
    task_work *work;     /* parallel to snapshot tasks after sorting */
    uint32_t cap_work;
    kv *pairs;
    uint32_t npairs, cap_pairs;
    kv *sort_tmp;        /* scratch of the radix sorts */
    uint32_t cap_sort_tmp;
    thread_info threads[MAX_THREADS];
    uint32_t nthreads;
    current_pair cur[MAX_CURRENT];
    uint32_t ncur;
    uint8_t *color;      /* cycle search */
    uint32_t *stack, *stack_edge;
    uint32_t cap_dfs;
    chain ch;
    bool collect_failed;
    uint64_t resolve_budget; /* objects the await-edge resolution may still visit this snapshot */
};

/* ---- small helpers ------------------------------------------------------------------------ */

static bool rd_slow(asyncio_reader *r, uint64_t addr, void *dst, size_t n);

/* Copy n bytes at addr from the cache (reading what is missing). */
static inline bool rd(asyncio_reader *r, uint64_t addr, void *dst, size_t n)
{
    size_t off = (size_t)(addr & (MEM_PAGE_SIZE - 1));
    if (off + n <= MEM_PAGE_SIZE && mem_ptr_ok(addr, false)) {
        const pc_page *p = r->pages[(addr / MEM_PAGE_SIZE) % PC_SLOTS];
        if (p && p->epoch == r->pc_epoch && p->base == addr - off && p->len >= off + n) {
            memcpy(dst, p->data + off, n);
            return true;
        }
    }
    return rd_slow(r, addr, dst, n);
}

/* The page holding addr, from the cache or read now (with the rest of its aligned group). */
static const pc_page *pc_get(asyncio_reader *r, uint64_t addr)
{
    uint64_t base = addr & ~(uint64_t)(MEM_PAGE_SIZE - 1);
    uint32_t slot = (uint32_t)((base / MEM_PAGE_SIZE) % PC_SLOTS);
    pc_page *p = r->pages[slot];
    if (p && p->epoch == r->pc_epoch && p->base == base)
        return p;
    /* read the aligned group of pages around it in one syscall */
    uint64_t gbase = base & ~(uint64_t)(PC_GROUP * MEM_PAGE_SIZE - 1);
    uint32_t gslot = (uint32_t)((gbase / MEM_PAGE_SIZE) % PC_SLOTS);
    uint64_t addrs[PC_GROUP];
    void *dsts[PC_GROUP];
    size_t lens[PC_GROUP];
    for (uint32_t k = 0; k < PC_GROUP; k++) {
        if (!r->pages[gslot + k] && !(r->pages[gslot + k] = malloc(sizeof(pc_page))))
            return NULL;
        addrs[k] = gbase + (uint64_t)k * MEM_PAGE_SIZE;
        dsts[k] = r->pages[gslot + k]->data;
        lens[k] = MEM_PAGE_SIZE;
    }
    ssize_t got = mem_readv(r->c.m, addrs, dsts, lens, PC_GROUP);
    if (got < 0)
        got = 0;
    for (uint32_t k = 0; k < PC_GROUP; k++) {
        pc_page *q = r->pages[gslot + k];
        q->base = addrs[k];
        q->epoch = (uint64_t)got >= (k + 1) * (uint64_t)MEM_PAGE_SIZE ? r->pc_epoch : 0;
        q->len = MEM_PAGE_SIZE;
    }
    p = r->pages[slot];
    if (p->epoch == r->pc_epoch)
        return p;
    /* the group crosses an unmapped page: read just this page (short at a mapping's end) */
    ssize_t n = mem_read_direct(r->c.m, base, p->data, MEM_PAGE_SIZE);
    if (n <= 0)
        return NULL;
    p->base = base;
    p->len = (uint32_t)n;
    p->epoch = r->pc_epoch;
    return p;
}

static bool rd_slow(asyncio_reader *r, uint64_t addr, void *dst, size_t n)
{
    if (!mem_ptr_ok(addr, false) || addr + n < addr)
        return false;
    uint8_t *out = dst;
    while (n > 0) {
        const pc_page *p = pc_get(r, addr);
        size_t off = (size_t)(addr & (MEM_PAGE_SIZE - 1));
        size_t chunk = MEM_PAGE_SIZE - off < n ? MEM_PAGE_SIZE - off : n;
        if (!p || p->len < off + chunk)
            return false;
        memcpy(out, p->data + off, chunk);
        out += chunk;
        addr += chunk;
        n -= chunk;
    }
    return true;
}

static bool rd_ptr(asyncio_reader *r, uint64_t addr, uint64_t *out)
{
    *out = 0;
    return rd(r, addr, out, 8);
}

static uint64_t ld64(const uint8_t *b, loff off)
{
    uint64_t v;
    memcpy(&v, b + off, 8);
    return v;
}

static uint32_t hash64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return (uint32_t)k;
}

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
    uint32_t h = hash64(type) & (TYPE_CACHE - 1);
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

static uint32_t classify(asyncio_reader *r, uint64_t obj)
{
    uint64_t type;
    if (!mem_ptr_ok(obj, true) || !rd_ptr(r, obj + (uint64_t)r->L->object.type, &type))
        return 0;
    return classify_type(r, type);
}

/* ---- maps over task arrays ---------------------------------------------------------------- */

static bool map_alloc(uint32_t **map, uint32_t *mask, uint32_t entries)
{
    uint32_t size = 16;
    while (size < entries * 2u && size < (1u << 30))
        size *= 2;
    if (*map == NULL || *mask + 1 < size) {
        uint32_t *m = realloc(*map, (size_t)size * sizeof(uint32_t));
        if (!m)
            return false;
        *map = m;
        *mask = size - 1;
    }
    memset(*map, 0xff, (size_t)(*mask + 1) * sizeof(uint32_t));
    return true;
}

static uint32_t map_lookup(const uint32_t *map, uint32_t mask, const async_task *tasks,
                           size_t stride, bool by_coro, uint64_t key)
{
    if (!map || !key)
        return ASYNC_NO_INDEX;
    for (uint32_t h = hash64(key) & mask, probe = 0; probe <= mask; probe++, h = (h + 1) & mask) {
        uint32_t i = map[h];
        if (i == ASYNC_NO_INDEX)
            return ASYNC_NO_INDEX;
        const async_task *t = (const async_task *)((const uint8_t *)tasks + (size_t)i * stride);
        if ((by_coro ? t->coro : t->id) == key)
            return i;
    }
    return ASYNC_NO_INDEX;
}

static void map_insert(uint32_t *map, uint32_t mask, uint64_t key, uint32_t index)
{
    if (!key)
        return;
    for (uint32_t h = hash64(key) & mask, probe = 0; probe <= mask; probe++, h = (h + 1) & mask) {
        if (map[h] == ASYNC_NO_INDEX) {
            map[h] = index;
            return;
        }
    }
}

uint32_t async_find_task(const async_snapshot *s, uint64_t id)
{
    return map_lookup(s->by_id_map, s->map_mask, s->tasks, sizeof(async_task), false, id);
}

uint32_t async_find_by_coro(const async_snapshot *s, uint64_t coro)
{
    return map_lookup(s->by_coro_map, s->map_mask, s->tasks, sizeof(async_task), true, coro);
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

/* ---- snapshot buffers --------------------------------------------------------------------- */

void async_snapshot_init(async_snapshot *s)
{
    memset(s, 0, sizeof(*s));
}

void async_snapshot_free(async_snapshot *s)
{
    free(s->tasks);
    free(s->frames);
    free(s->edges);
    free(s->by_id_map);
    free(s->by_coro_map);
    memset(s, 0, sizeof(*s));
}

static bool grow(void **p, uint32_t *cap, uint32_t need, size_t elem, uint32_t limit)
{
    if (need <= *cap)
        return true;
    if (need > limit)
        return false;
    uint64_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    if (ncap > limit)
        ncap = limit;
    void *n = realloc(*p, (size_t)ncap * elem);
    if (!n)
        return false;
    *p = n;
    *cap = (uint32_t)ncap;
    return true;
}

/* ---- reader ------------------------------------------------------------------------------- */

asyncio_reader *asyncio_reader_new(const asyncio_target *t)
{
    asyncio_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->t = *t;
    r->L = &t->rt->layout;
    r->c.m = t->m;
    r->c.L = r->L;
    r->minor = t->rt->minor;
    r->max_tasks = ASYNC_MAX_TASKS;
    r->pc_epoch = 1;
    return r;
}

void asyncio_reader_free(asyncio_reader *r)
{
    if (!r)
        return;
    free(r->recs);
    free(r->rec_map);
    free(r->work);
    free(r->order);
    free(r->pairs);
    free(r->sort_tmp);
    free(r->color);
    free(r->stack);
    free(r->stack_edge);
    free(r->names);
    for (uint32_t i = 0; i < PC_SLOTS; i++)
        free(r->pages[i]);
    free(r);
}

void asyncio_reader_set_max_tasks(asyncio_reader *r, uint32_t max_tasks)
{
    r->max_tasks = max_tasks == 0 ? 1 : max_tasks > ASYNC_TASK_LIMIT ? ASYNC_TASK_LIMIT : max_tasks;
}

/* ---- registries --------------------------------------------------------------------------- */

/* Look the task registries up through sys.modules -> asyncio.tasks. false when asyncio is not
 * imported (or sys.modules cannot be read). */
static bool refresh_registries(asyncio_reader *r)
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
            pyobj_getattr(&r->c, ws, "data", &data) >= 0 && (classify(r, data) & TC_SET))
            r->weak_data[i] = data;
    }
    uint64_t obj;
    if (pyobj_module_global(&r->c, mod, "_eager_tasks", &obj) >= 0 && (classify(r, obj) & TC_SET))
        r->eager_set = obj;
    if (pyobj_module_global(&r->c, mod, "_current_tasks", &obj) >= 0 &&
        (classify(r, obj) & TC_DICT))
        r->current = obj;
    r->have_registries = r->weak_data[0] || r->weak_data[1] || r->eager_set;
    return r->have_registries;
}

static bool registries_valid(asyncio_reader *r)
{
    for (int i = 0; i < 2; i++)
        if (r->weak_data[i] && !(classify(r, r->weak_data[i]) & TC_SET))
            return false;
    if (r->eager_set && !(classify(r, r->eager_set) & TC_SET))
        return false;
    if (r->current && !(classify(r, r->current) & TC_DICT))
        return false;
    return r->have_registries;
}

/* ---- collecting task addresses ------------------------------------------------------------ */

typedef struct collect_ctx {
    asyncio_reader *r;
    async_snapshot *out;
    bool weak; /* items are weakrefs to tasks */
} collect_ctx;

static bool rec_map_fit(asyncio_reader *r, uint32_t n)
{
    if (r->rec_map && (uint64_t)n * 2 <= r->rec_mask + 1ull)
        return true;
    if (!map_alloc(&r->rec_map, &r->rec_mask, n < 1024 ? 1024 : n * 2))
        return false;
    for (uint32_t i = 0; i < r->nrecs; i++)
        map_insert(r->rec_map, r->rec_mask, r->recs[i].t.id, i);
    return true;
}

static bool collect_cb(void *ud, uint64_t item)
{
    collect_ctx *cc = ud;
    asyncio_reader *r = cc->r;
    uint64_t task = item;
    if (cc->weak) {
        if (!(classify(r, item) & TC_WEAKREF) ||
            !rd_ptr(r, item + (uint64_t)r->L->weakref.object, &task))
            return true; /* torn or changing under us: skip the entry */
        if (!mem_ptr_ok(task, true) || (classify(r, task) & TC_NONE))
            return true; /* a dead reference */
    }
    if (!mem_ptr_ok(task, true))
        return true;
    if (r->nrecs && map_lookup(r->rec_map, r->rec_mask, (const async_task *)(void *)r->recs,
                               sizeof(task_rec), false, task) != ASYNC_NO_INDEX)
        return true;
    if (r->nrecs >= r->max_tasks) {
        cc->out->flags |= ASF_TASKS_TRUNCATED;
        return false;
    }
    if (!grow((void **)&r->recs, &r->cap_recs, r->nrecs + 1, sizeof(task_rec), ASYNC_TASK_LIMIT) ||
        !rec_map_fit(r, r->nrecs + 1)) {
        r->collect_failed = true;
        return false;
    }
    memset(&r->recs[r->nrecs], 0, sizeof(task_rec));
    r->recs[r->nrecs].t.id = task;
    map_insert(r->rec_map, r->rec_mask, task, r->nrecs);
    r->nrecs++;
    return true;
}

static int collect_tasks(asyncio_reader *r, async_snapshot *out)
{
    r->nrecs = 0;
    r->collect_failed = false;
    if (!rec_map_fit(r, 1))
        return -1;
    memset(r->rec_map, 0xff, (size_t)(r->rec_mask + 1) * sizeof(uint32_t));
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

static bool current_cb(void *ud, uint64_t key, uint64_t value)
{
    asyncio_reader *r = ud;
    if (r->ncur >= MAX_CURRENT)
        return false;
    r->cur[r->ncur++] = (current_pair){key, value};
    return true;
}

/* ---- threads ------------------------------------------------------------------------------ */

static thread_info *thread_by_ident(asyncio_reader *r, uint64_t ident)
{
    for (uint32_t i = 0; i < r->nthreads; i++)
        if (r->threads[i].thread_id == ident)
            return &r->threads[i];
    return NULL;
}

/* Threads from the sample (names, native ids) and from the thread states (3.13: which loop each
 * runs; 3.11+: native ids when there is no sample). */
static void read_threads(asyncio_reader *r, const aprof_sample *smp)
{
    r->nthreads = 0;
    for (uint32_t i = 0; smp && i < smp->nthreads && r->nthreads < MAX_THREADS; i++) {
        const aprof_thread_sample *t = &smp->threads[i];
        r->threads[r->nthreads++] = (thread_info){t->py_thread_id, t->tid, 0,
                                                  t->name ? t->name : "", t->is_main};
    }
    const py_layout *L = r->L;
    uint64_t interp = pyruntime_first_interp(r->t.rt, r->c.m), ts = 0;
    if (!interp || !rd_ptr(r, interp + (uint64_t)L->interp.threads_head, &ts))
        return;
    for (uint32_t guard = 0; ts && guard < MAX_THREADS; guard++) {
        uint64_t ident = 0, next = 0, loop = 0, native = 0;
        if (!mem_ptr_ok(ts, true) || !rd_ptr(r, ts + (uint64_t)L->tstate.thread_id, &ident) ||
            !rd_ptr(r, ts + (uint64_t)L->tstate.next, &next))
            break;
        if (L->tstate.native_thread_id != LAYOUT_ABSENT)
            rd_ptr(r, ts + (uint64_t)L->tstate.native_thread_id, &native);
        if (L->tstate.asyncio_running_loop != LAYOUT_ABSENT)
            rd_ptr(r, ts + (uint64_t)L->tstate.asyncio_running_loop, &loop);
        thread_info *ti = thread_by_ident(r, ident);
        if (!ti && r->nthreads < MAX_THREADS) {
            ti = &r->threads[r->nthreads++];
            *ti = (thread_info){ident, (pid_t)native, 0, "", false};
        }
        if (ti) {
            ti->running_loop = loop;
            if (!ti->tid)
                ti->tid = (pid_t)native;
        }
        ts = next;
    }
}

/* ---- reading one task --------------------------------------------------------------------- */

static const char *intern(asyncio_reader *r, const char *s)
{
    const char *p = strtab_intern_cstr(r->t.st, s);
    return p ? p : "?";
}

static const char *decode_task_name(asyncio_reader *r, uint64_t obj)
{
    uint32_t cls = classify(r, obj);
    if (cls & TC_STR) {
        const char *name;
        if (pyobj_str_intern(&r->c, obj, r->t.st, &name) >= 0 && name)
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
        fp = (fp ^ word) * 0x9e3779b97f4a7c15ull;
        fp ^= fp >> 29;
    }
    if (!names_fit(r))
        return decode_task_name(r, obj);
    uint32_t h = hash64(obj) & r->names_mask;
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
    return obj && !(classify(r, obj) & TC_NONE) ? obj : 0;
}

static bool py_attr(asyncio_reader *r, uint64_t obj, const char *name, uint64_t *value)
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

static void read_task(asyncio_reader *r, task_rec *rec)
{
    async_task *t = &rec->t;
    task_work *w = &rec->w;
    const py_layout *L = r->L;
    t->name = "";
    t->state = ATS_UNKNOWN;
    t->wait_kind = AWK_UNKNOWN;
    t->loop_index = ASYNC_NO_INDEX;
    uint32_t cls = classify(r, t->id);
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
        py_attr(r, t->id, "_loop", &t->loop);
        py_attr(r, t->id, "_fut_waiter", &w->waiter);
        py_attr(r, t->id, "_coro", &t->coro);
        py_attr(r, t->id, "_name", &name_obj);
        py_attr(r, t->id, "_callbacks", &w->cbs);
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

/* ---- loops -------------------------------------------------------------------------------- */

static uint32_t loop_index(async_snapshot *out, uint64_t loop)
{
    for (uint32_t i = 0; i < out->nloops; i++)
        if (out->loops[i].id == loop)
            return i;
    if (out->nloops >= ASYNC_MAX_LOOPS)
        return ASYNC_NO_INDEX;
    out->loops[out->nloops] = (async_loop){loop, 0, 0, "", ASYNC_NO_INDEX, 0};
    return out->nloops++;
}

/* The thread whose live stack contains frames of coroutine `coro`: *first gets the outermost
 * such frame. */
static const aprof_thread_sample *thread_running(const aprof_sample *smp, uint64_t coro,
                                                 uint32_t *first)
{
    for (uint32_t i = 0; smp && coro && i < smp->nthreads; i++) {
        const aprof_thread_sample *t = &smp->threads[i];
        if (t->flags & TSF_TORN)
            continue;
        for (uint32_t k = 0; k < t->nframes; k++) {
            if (t->owners[k] == coro) {
                *first = k;
                return t;
            }
        }
    }
    return NULL;
}

static void map_loop_threads(asyncio_reader *r, async_snapshot *out, const aprof_sample *smp)
{
    for (uint32_t li = 0; li < out->nloops; li++) {
        async_loop *l = &out->loops[li];
        uint64_t ident = 0;
        for (uint32_t i = 0; i < r->nthreads && !ident; i++)
            if (r->threads[i].running_loop == l->id)
                ident = r->threads[i].thread_id;
        if (!ident) {
            /* BaseEventLoop.run_forever keeps threading.get_ident() in loop._thread_id */
            uint64_t v;
            int64_t n;
            if (pyobj_getattr(&r->c, l->id, "_thread_id", &v) >= 0 && (classify(r, v) & TC_INT) &&
                pyobj_int_value(&r->c, v, &n) >= 0)
                ident = (uint64_t)n;
        }
        if (!ident) {
            /* a loop whose task runs now: the thread whose stack holds that task's frames */
            for (uint32_t i = 0; i < r->ncur && !ident; i++) {
                if (r->cur[i].loop != l->id)
                    continue;
                uint32_t k = r->nrecs;
                for (uint32_t j = 0; j < r->nrecs; j++)
                    if (r->recs[j].t.id == r->cur[i].task)
                        k = j;
                uint32_t first;
                const aprof_thread_sample *t =
                    k < r->nrecs ? thread_running(smp, r->recs[k].t.coro, &first) : NULL;
                if (t)
                    ident = t->py_thread_id;
            }
        }
        l->py_thread_id = ident;
        thread_info *ti = ident ? thread_by_ident(r, ident) : NULL;
        if (ti) {
            l->tid = ti->tid;
            l->thread_name = ti->name ? ti->name : "";
        }
    }
}

static bool loop_main(asyncio_reader *r, const async_loop *l)
{
    thread_info *ti = l->py_thread_id ? thread_by_ident(r, l->py_thread_id) : NULL;
    return ti && ti->is_main;
}

/* Main thread's loop first, then loops with a known thread by tid, then the rest by address. */
static int loop_order(const void *a, const void *b, void *ud)
{
    const async_loop *x = a, *y = b;
    bool mx = loop_main(ud, x), my = loop_main(ud, y);
    if (mx != my)
        return mx ? -1 : 1;
    if ((x->tid == 0) != (y->tid == 0))
        return x->tid ? -1 : 1;
    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* ---- coroutine chains (mirrors _PyGen_yf of each version) --------------------------------- */

/* What the chain walk needs of one generator/coroutine, read in one or two copies. */
typedef struct gen_view {
    uint64_t type;
    uint64_t frame;      /* 3.10: its PyFrameObject; 3.11+: the frame embedded in the object */
    int8_t state;        /* gi_frame_state (3.11+), f_state (3.10): < 0 not running, 0 running */
    uint64_t code;       /* the frame's code object */
    uint64_t instr;      /* 3.11+: prev_instr / instr_ptr */
    int32_t lasti;       /* 3.10: f_lasti */
    int32_t stacktop;    /* 3.10: f_stackdepth; 3.11+: stacktop (index into localsplus) */
    uint64_t valuestack; /* 3.10 */
} gen_view;

#define GEN_READ 320u

/* Read generator/coroutine g. false when it has no frame any more (it finished) or cannot be
 * read. The caller has checked that g is a generator or coroutine. */
static bool read_gen(asyncio_reader *r, uint64_t g, gen_view *v)
{
    const py_layout *L = r->L;
    uint8_t buf[GEN_READ];
    memset(v, 0, sizeof(*v));
    if (L->gen.iframe != LAYOUT_ABSENT) {
        loff hi = L->frame.code > L->frame.instr ? L->frame.code : L->frame.instr;
        hi = hi > L->frame.stacktop ? hi : L->frame.stacktop;
        size_t n = (size_t)L->gen.iframe + (size_t)hi + 8;
        if (n > sizeof buf || !rd(r, g, buf, n))
            return false;
        v->state = (int8_t)buf[L->gen.frame_state];
        if (v->state >= FS_COMPLETED)
            return false;
        const uint8_t *fb = buf + L->gen.iframe;
        v->frame = g + (uint64_t)L->gen.iframe;
        v->code = ld64(fb, L->frame.code);
        v->instr = ld64(fb, L->frame.instr);
        memcpy(&v->stacktop, fb + L->frame.stacktop, 4);
        return true;
    }
    /* 3.10: gi_frame, then the frame object */
    uint64_t frame;
    if (!rd_ptr(r, g + (uint64_t)L->gen.frame, &frame) || !mem_ptr_ok(frame, true))
        return false;
    loff hi = L->frame.code;
    loff fields[] = {L->frame.instr, L->frame.stacktop, L->frame.valuestack, L->frame.state};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        hi = fields[i] > hi ? fields[i] : hi;
    if ((size_t)hi + 8 > sizeof buf || !rd(r, frame, buf, (size_t)hi + 8))
        return false;
    v->frame = frame;
    v->code = ld64(buf, L->frame.code);
    memcpy(&v->lasti, buf + L->frame.instr, 4);
    memcpy(&v->stacktop, buf + L->frame.stacktop, 4);
    v->valuestack = ld64(buf, L->frame.valuestack);
    v->state = (int8_t)buf[L->frame.state]; /* f_state: the same values for these states */
    return true;
}

/* The object a suspended generator/coroutine is awaiting (`yield from` / `await`), 0 when none:
 * what CPython's _PyGen_yf returns on each version. */
static uint64_t gen_yf(asyncio_reader *r, const gen_view *v)
{
    const py_layout *L = r->L;
    uint64_t slot;
    if (v->stacktop <= 0 || v->stacktop > (1 << 20))
        return 0;
    if (r->minor == 10) {
        /* the next instruction is YIELD_FROM: the awaited object is on top of the stack */
        uint64_t co_code;
        uint8_t op;
        if (v->lasti < 0 || !rd_ptr(r, v->code + (uint64_t)L->code.code, &co_code) ||
            !rd(r, co_code + (uint64_t)L->bytes.sval + ((uint64_t)v->lasti + 1) * 2, &op, 1) ||
            op != OP_YIELD_FROM_310)
            return 0;
        slot = v->valuestack + (uint64_t)(v->stacktop - 1) * 8;
    } else {
        if (r->minor >= 13) {
            if (v->state != FS_SUSPENDED_YIELD_FROM_313)
                return 0;
        } else {
            /* 3.11/3.12: not started, or the next instruction is not RESUME with oparg >= 2 */
            uint8_t next[2];
            if (v->state >= FS_CLEARED || v->state == FS_CREATED_311 || !rd(r, v->instr + 2, next, 2))
                return 0;
            bool resume = r->minor == 11
                              ? next[0] == OP_RESUME_311 || next[0] == OP_RESUME_QUICK_311
                              : next[0] == OP_RESUME_312 || next[0] == OP_INSTRUMENTED_RESUME_312;
            if (!resume || next[1] < 2)
                return 0;
        }
        slot = v->frame + (uint64_t)L->frame.localsplus + (uint64_t)(v->stacktop - 1) * 8;
    }
    uint64_t yf;
    return rd_ptr(r, slot, &yf) && mem_ptr_ok(yf, true) ? yf : 0;
}

/* The locals and value stack of a generator's frame (at most cap slots). */
static uint32_t gen_slots(asyncio_reader *r, uint64_t g, uint64_t *out, uint32_t cap)
{
    const py_layout *L = r->L;
    gen_view v;
    if (!(classify(r, g) & (TC_CORO | TC_GEN)) || !read_gen(r, g, &v) || v.stacktop < 0 ||
        v.stacktop > (1 << 20))
        return 0;
    uint64_t first = v.frame + (uint64_t)L->frame.localsplus, n = (uint64_t)v.stacktop;
    if (r->minor == 10) {
        if (v.valuestack < first || v.valuestack - first > (1u << 20))
            return 0;
        n += (v.valuestack - first) / 8;
    }
    if (n > cap)
        n = cap;
    if (!n || !rd(r, first, out, (size_t)n * 8))
        return 0;
    return (uint32_t)n;
}

/* Decode a suspended generator's frame from its view: pystack_read_frame()'s decoding, without
 * its reads through the session's small cache, which thousands of coroutines scattered over the
 * heap would thrash. 1 with *out filled, -1 when unreadable. */
static int decode_gen_frame(asyncio_reader *r, const gen_view *v, aprof_frame *out)
{
    const py_layout *L = r->L;
    codecache *cc = r->t.cc;
    for (int attempt = 0; attempt < 2; attempt++) {
        code_info *ci = codecache_get(cc, r->c.m, v->code);
        if (!ci)
            return -1;
        uint64_t raw = L->instr_kind == INSTR_LASTI_INDEX ? (uint64_t)(uint32_t)v->lasti : v->instr;
        int64_t off;
        if (!code_info_offset(ci, L->instr_kind, raw, &off)) {
            codecache_invalidate(cc, v->code); /* freed and reused since it was cached? */
            continue;
        }
        *out = code_info_frame(ci, L->linetable_kind, off);
        return 1;
    }
    return -1;
}

static bool add_frame(async_snapshot *out, const aprof_frame *f)
{
    if (!grow((void **)&out->frames, &out->cap_frames, out->nframes + 1, sizeof(aprof_frame),
              ASYNC_MAX_FRAMES)) {
        out->flags |= ASF_FRAMES_TRUNCATED;
        return false;
    }
    out->frames[out->nframes++] = *f;
    return true;
}

/* Follow a task's coroutine down its await chain, appending one frame per coroutine. */
static void walk_chain(asyncio_reader *r, async_snapshot *out, async_task *t, task_work *w,
                       chain *ch)
{
    ch->n = 0;
    ch->end = 0;
    uint64_t g = t->coro;
    while (g) {
        uint32_t cls = classify(r, g);
        if (!(cls & (TC_CORO | TC_GEN))) {
            ch->end = g;
            return;
        }
        if (ch->n >= ASYNC_MAX_DEPTH) {
            t->flags |= ATF_STACK_TRUNCATED;
            return;
        }
        gen_view v;
        if (!read_gen(r, g, &v))
            return; /* finished: no frame, awaits nothing */
        if (ch->n == 0) {
            if (v.state == FS_EXECUTING && t->state != ATS_RUNNING)
                t->flags |= ATF_CHANGED; /* read as waiting, but its coroutine runs now */
            w->instr_addr = v.frame + (uint64_t)r->L->frame.instr;
            w->instr_len = r->L->instr_kind == INSTR_LASTI_INDEX ? 4 : 8;
            w->instr = r->L->instr_kind == INSTR_LASTI_INDEX ? (uint64_t)(uint32_t)v.lasti : v.instr;
        }
        ch->coro[ch->n] = g;
        ch->frame[ch->n] = ASYNC_NO_INDEX;
        aprof_frame f;
        int rc = decode_gen_frame(r, &v, &f);
        if (rc < 0) {
            t->flags |= ATF_PARTIAL;
            ch->n++;
            return;
        }
        if (rc > 0) {
            if (!add_frame(out, &f)) {
                t->flags |= ATF_STACK_TRUNCATED;
                ch->n++;
                return;
            }
            ch->frame[ch->n] = out->nframes - 1;
        }
        ch->n++;
        g = gen_yf(r, &v);
    }
}

/* ---- what a task waits on ----------------------------------------------------------------- */

static uint8_t asyncio_file_of(asyncio_reader *r, const char *file)
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
    bool need_qualname = r->minor < 11 && af == AF_LOCKS;
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
static uint8_t recognise_wait(asyncio_reader *r, const async_snapshot *out, const chain *ch,
                              uint32_t *which)
{
    uint8_t kind = AWK_NONE;
    for (uint32_t i = ch->n; i-- > 0;) {
        if (ch->frame[i] == ASYNC_NO_INDEX)
            break;
        const aprof_frame *f = &out->frames[ch->frame[i]];
        uint8_t af = asyncio_file_of(r, f->file);
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

static bool add_pair(asyncio_reader *r, uint32_t child, uint32_t parent)
{
    if (child == parent || child == ASYNC_NO_INDEX || parent == ASYNC_NO_INDEX)
        return true;
    if (!grow((void **)&r->pairs, &r->cap_pairs, r->npairs + 1, sizeof(kv), UINT32_MAX / 32))
        return false;
    r->pairs[r->npairs++] = (kv){(uint64_t)child << 32 | parent, 0};
    return true;
}

/* The done callbacks of a future: callback0 and the (callback, context) tuples of the list. */
static uint32_t future_callbacks(asyncio_reader *r, uint64_t cb0, uint64_t cbs, uint64_t *out,
                                 uint32_t cap)
{
    uint32_t n = 0;
    if (mem_ptr_ok(cb0, true) && n < cap)
        out[n++] = cb0;
    uint64_t size = 0;
    if (!mem_ptr_ok(cbs, true) || !(classify(r, cbs) & TC_LIST) ||
        pyobj_seq_size(&r->c, cbs, &size) < 0)
        return n;
    for (uint64_t i = 0; i < size && n < cap; i++) {
        uint64_t tup, cb;
        if (pyobj_seq_item(&r->c, cbs, i, &tup) < 0)
            break;
        if ((classify(r, tup) & TC_TUPLE) ? pyobj_seq_item(&r->c, tup, 0, &cb) >= 0 : (cb = tup, true))
            if (mem_ptr_ok(cb, true))
                out[n++] = cb;
    }
    return n;
}

static uint32_t callbacks_of(asyncio_reader *r, uint64_t fut, uint32_t cls, uint64_t *out,
                             uint32_t cap)
{
    uint64_t cb0 = 0, cbs = 0;
    if (cls & TC_CLAYOUT) {
        if (!rd_ptr(r, fut + (uint64_t)r->L->asyncio.fut_callback0, &cb0) ||
            !rd_ptr(r, fut + (uint64_t)r->L->asyncio.fut_callbacks, &cbs))
            return 0;
    } else {
        py_attr(r, fut, "_callbacks", &cbs);
    }
    return future_callbacks(r, cb0, cbs, out, cap);
}

/* A Python function's code is asyncio/tasks.py's shield.<locals>._outer_done_callback? */
static bool is_shield_callback(asyncio_reader *r, uint64_t func)
{
    uint64_t code;
    if (!rd_ptr(r, func + (uint64_t)r->L->func.code, &code))
        return false;
    code_info *ci = codecache_get(r->t.cc, r->c.m, code);
    if (!ci || asyncio_file_of(r, ci->file) != AF_TASKS)
        return false;
    size_t n = strlen(ci->name);
    static const char tail[] = "_outer_done_callback";
    return n >= sizeof tail - 1 && strcmp(ci->name + n - (sizeof tail - 1), tail) == 0;
}

typedef struct resolver {
    asyncio_reader *r;
    async_snapshot *out;
    uint32_t parent;
    bool shield;       /* went through a shield's outer future */
    bool failed;
} resolver;

static void resolve(resolver *rv, uint64_t obj, uint32_t depth);

static bool resolve_item_cb(void *ud, uint64_t item)
{
    resolver *rv = ud;
    resolve(rv, item, 1);
    return rv->r->resolve_budget > 0;
}

/* Add awaited-by edges from every task that `obj` (something the parent task awaits) stands for:
 * the task itself, the children of a gather, the inner task of a shield. */
static void resolve(resolver *rv, uint64_t obj, uint32_t depth)
{
    asyncio_reader *r = rv->r;
    if (depth > MAX_RESOLVE_DEPTH || !mem_ptr_ok(obj, true))
        return;
    if (!r->resolve_budget) {
        rv->failed = true;
        return;
    }
    r->resolve_budget--;
    uint32_t cls = classify(r, obj);
    if (cls & TC_TASK) {
        if (!add_pair(r, async_find_task(rv->out, obj), rv->parent))
            rv->failed = true;
        return;
    }
    if (cls & TC_GATHER) {
        uint64_t children, n = 0;
        if (pyobj_getattr(&r->c, obj, "_children", &children) < 0 ||
            !(classify(r, children) & TC_LIST) || pyobj_seq_size(&r->c, children, &n) < 0)
            return;
        for (uint64_t i = 0; i < n && r->resolve_budget; i++) {
            uint64_t child;
            if (pyobj_seq_item(&r->c, children, i, &child) < 0)
                break;
            resolve(rv, child, depth + 1);
        }
        return;
    }
    if (cls & TC_FUTURE) {
        /* shield(): outer's callback _outer_done_callback closes over `inner` */
        uint64_t cbs[16];
        uint32_t ncb = callbacks_of(r, obj, cls, cbs, 16);
        for (uint32_t i = 0; i < ncb; i++) {
            if (!(classify(r, cbs[i]) & TC_FUNC) || !is_shield_callback(r, cbs[i]))
                continue;
            uint64_t closure, cells[8];
            size_t nc = 0;
            if (pyobj_func_closure(&r->c, cbs[i], &closure) < 0 || !closure ||
                pyobj_seq_items(&r->c, closure, cells, 8, &nc) < 0)
                continue;
            for (size_t k = 0; k < nc; k++) {
                uint64_t inner;
                if (pyobj_cell_get(&r->c, cells[k], &inner) >= 0 && inner != obj &&
                    (classify(r, inner) & TC_FUTURE)) {
                    rv->shield = true;
                    resolve(rv, inner, depth + 1);
                }
            }
        }
    }
}

/* TaskGroup children: a done callback bound to the group, whose _parent_task awaits them. */
static void taskgroup_parent(asyncio_reader *r, async_snapshot *out, uint32_t child,
                             const task_work *w)
{
    uint64_t cbs[MAX_CALLBACKS];
    uint32_t n = future_callbacks(r, w->cb0, w->cbs, cbs, MAX_CALLBACKS);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t self, parent;
        if (!(classify(r, cbs[i]) & TC_METHOD) ||
            pyobj_method_parts(&r->c, cbs[i], NULL, &self) < 0 ||
            !(classify(r, self) & TC_TASKGROUP) || !py_attr(r, self, "_parent_task", &parent))
            continue;
        add_pair(r, child, async_find_task(out, parent));
    }
}

/* Stack, wait kind and awaited-by edges of task i. */
static void analyse_task(asyncio_reader *r, async_snapshot *out, uint32_t i,
                         const aprof_sample *smp)
{
    async_task *t = &out->tasks[i];
    task_work *w = &r->work[i];
    chain *ch = &r->ch;
    ch->n = 0;
    t->frame_start = out->nframes;
    t->wait_id = w->waiter;
    t->raw_waiter = w->raw_waiter;
    if (t->flags & ATF_UNREADABLE)
        return;
    uint32_t first;
    const aprof_thread_sample *th =
        t->state == ATS_RUNNING ? thread_running(smp, t->coro, &first) : NULL;
    if (th) {
        t->flags |= ATF_LIVE_STACK;
        for (uint32_t k = first; k < th->nframes; k++)
            if (!add_frame(out, &th->frames[k])) {
                t->flags |= ATF_STACK_TRUNCATED;
                break;
            }
    } else if (t->state == ATS_PENDING || t->state == ATS_RUNNING) {
        walk_chain(r, out, t, &r->work[i], ch);
    }
    t->nframes = out->nframes - t->frame_start;
    if (t->state != ATS_PENDING) {
        t->wait_kind = AWK_NONE;
    } else {
        uint32_t which = 0;
        uint8_t kind = recognise_wait(r, out, ch, &which);
        resolver rv = {r, out, i, false, false};
        if (w->waiter)
            resolve(&rv, w->waiter, 0);
        if (kind == AWK_WAIT_FOR || kind == AWK_WAIT) {
            /* wait_for (3.10/3.11) awaits a private future: the awaited one is a local of its
             * frame; wait's futures are the set `fs` of _wait's frame. */
            uint64_t slots[MAX_SLOTS];
            uint32_t n = gen_slots(r, ch->coro[which], slots, MAX_SLOTS);
            for (uint32_t k = 0; k < n; k++) {
                uint32_t cls = mem_ptr_ok(slots[k], true) ? classify(r, slots[k]) : 0;
                if (kind == AWK_WAIT_FOR && (cls & TC_FUTURE) && slots[k] != w->waiter)
                    resolve(&rv, slots[k], 0);
                else if (kind == AWK_WAIT && (cls & TC_SET))
                    pyobj_set_iter(&r->c, slots[k], resolve_item_cb, &rv);
            }
        }
        if (kind == AWK_NONE && w->waiter) {
            uint32_t cls = classify(r, w->waiter);
            kind = (cls & TC_TASK)     ? AWK_TASK
                   : (cls & TC_GATHER) ? AWK_GATHER
                   : rv.shield         ? AWK_SHIELD
                   : (cls & TC_FUTURE) ? AWK_FUTURE
                                       : AWK_OTHER;
        } else if (kind == AWK_NONE && ch->end) {
            kind = AWK_OTHER;
        }
        t->wait_kind = kind;
        if (rv.failed)
            t->flags |= ATF_PARTIAL;
    }
    if (t->state == ATS_PENDING || t->state == ATS_RUNNING)
        taskgroup_parent(r, out, i, w);
}

/* ---- recheck ------------------------------------------------------------------------------ */

/* Without --blocking the target runs while a snapshot reads it, and the reads of one task are
 * spread over the whole snapshot (the cache fills page groups as they are first needed). A task
 * that ran meanwhile can show a state, a wait and a stack from different moments. So after the
 * analysis the cache is dropped and every C task's fut_state and _fut_waiter and its coroutine's
 * instruction pointer are read again (fresh pages, in the same few big reads as the first pass,
 * since tasks are visited in address order): whatever changed is marked ATF_CHANGED. */
static void recheck_tasks(asyncio_reader *r, async_snapshot *out)
{
    const py_layout *L = r->L;
    r->pc_epoch++;
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

/* ---- edges and cycles --------------------------------------------------------------------- */

/* LSD radix sort of n records on the low `bits` bits of their keys, 8 bits a pass (passes where
 * every key has the same digit are skipped). tmp: n records of scratch. */
static void radix_sort(kv *a, kv *tmp, uint32_t n, unsigned bits)
{
    kv *src = a, *dst = tmp;
    for (unsigned shift = 0; shift < bits && n > 1; shift += 8) {
        uint32_t count[257] = {0};
        for (uint32_t i = 0; i < n; i++)
            count[((src[i].key >> shift) & 255) + 1]++;
        if (count[((src[0].key >> shift) & 255) + 1] == n)
            continue;
        for (int d = 0; d < 256; d++)
            count[d + 1] += count[d];
        for (uint32_t i = 0; i < n; i++)
            dst[count[(src[i].key >> shift) & 255]++] = src[i];
        kv *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, (size_t)n * sizeof(kv));
}

static unsigned bits_for(uint32_t n)
{
    unsigned b = 1;
    while (b < 32 && (n >> b))
        b++;
    return b;
}

static bool sort_scratch(asyncio_reader *r, uint32_t n)
{
    return grow((void **)&r->sort_tmp, &r->cap_sort_tmp, n, sizeof(kv), UINT32_MAX / 32);
}

/* Sort the (child, parent) pairs, drop duplicates, and lay them out as each task's awaited-by
 * list, then (sorted by parent) as each task's awaits list. */
static bool build_edges(asyncio_reader *r, async_snapshot *out)
{
    unsigned nb = bits_for(out->ntasks);
    if (!sort_scratch(r, r->npairs))
        return false;
    radix_sort(r->pairs, r->sort_tmp, r->npairs, 32 + nb);
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->npairs; i++)
        if (n == 0 || r->pairs[i].key != r->pairs[n - 1].key)
            r->pairs[n++] = r->pairs[i];
    r->npairs = n;
    if (!grow((void **)&out->edges, &out->cap_edges, 2 * n + out->ntasks + 1, sizeof(uint32_t),
              UINT32_MAX / 8))
        return false;
    out->nedges = 0;
    for (uint32_t i = 0; i < out->ntasks; i++) {
        out->tasks[i].by_start = out->tasks[i].awaits_start = 0;
        out->tasks[i].nby = out->tasks[i].nawaits = 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t child = (uint32_t)(r->pairs[i].key >> 32), parent = (uint32_t)r->pairs[i].key;
        async_task *c = &out->tasks[child];
        if (c->nby == 0)
            c->by_start = out->nedges;
        c->nby++;
        out->edges[out->nedges++] = parent;
        r->pairs[i].key = (uint64_t)parent << 32 | child;
    }
    radix_sort(r->pairs, r->sort_tmp, n, 32 + nb);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t parent = (uint32_t)(r->pairs[i].key >> 32), child = (uint32_t)r->pairs[i].key;
        async_task *p = &out->tasks[parent];
        if (p->nawaits == 0)
            p->awaits_start = out->nedges;
        p->nawaits++;
        out->edges[out->nedges++] = child;
    }
    return true;
}

/* Depth-first search over "awaits" edges; every edge back into the current path closes a cycle,
 * which is recorded (at most ASYNC_MAX_CYCLES) and not followed. */
static bool find_cycles(asyncio_reader *r, async_snapshot *out)
{
    uint32_t n = out->ntasks;
    if (n == 0)
        return true;
    if (!grow((void **)&r->color, &r->cap_dfs, n, 1, UINT32_MAX / 8))
        return false;
    uint32_t cap = r->cap_dfs;
    uint32_t *st = realloc(r->stack, (size_t)cap * sizeof(uint32_t));
    if (!st)
        return false;
    r->stack = st;
    uint32_t *se = realloc(r->stack_edge, (size_t)cap * sizeof(uint32_t));
    if (!se)
        return false;
    r->stack_edge = se;
    memset(r->color, 0, n);
    enum { WHITE = 0, GRAY = 1, BLACK = 2 };
    for (uint32_t root = 0; root < n; root++) {
        if (r->color[root] != WHITE)
            continue;
        uint32_t sp = 0;
        r->stack[sp] = root;
        r->stack_edge[sp++] = 0;
        r->color[root] = GRAY;
        while (sp) {
            uint32_t v = r->stack[sp - 1];
            const async_task *tv = &out->tasks[v];
            if (r->stack_edge[sp - 1] >= tv->nawaits) {
                r->color[v] = BLACK;
                sp--;
                continue;
            }
            uint32_t c = out->edges[tv->awaits_start + r->stack_edge[sp - 1]++];
            if (r->color[c] == WHITE) {
                r->color[c] = GRAY;
                r->stack[sp] = c;
                r->stack_edge[sp++] = 0;
            } else if (r->color[c] == GRAY && out->ncycles < ASYNC_MAX_CYCLES) {
                uint32_t k = sp;
                while (k > 0 && r->stack[k - 1] != c)
                    k--;
                if (k == 0)
                    continue;
                uint32_t len = sp - (k - 1);
                if (!grow((void **)&out->edges, &out->cap_edges, out->nedges + len,
                          sizeof(uint32_t), UINT32_MAX / 8))
                    return false;
                out->cycle_start[out->ncycles] = out->nedges;
                out->cycle_len[out->ncycles++] = len;
                for (uint32_t j = k - 1; j < sp; j++) {
                    out->edges[out->nedges++] = r->stack[j];
                    out->tasks[r->stack[j]].flags |= ATF_IN_CYCLE;
                }
            }
        }
    }
    return true;
}

uint32_t async_root_chain(const async_snapshot *s, uint32_t i, uint32_t *out, uint32_t cap)
{
    uint32_t n = 0;
    while (i < s->ntasks && n < cap) {
        for (uint32_t k = 0; k < n; k++)
            if (out[k] == i)
                return n; /* a cycle */
        out[n++] = i;
        const async_task *t = &s->tasks[i];
        i = t->nby ? s->edges[t->by_start] : ASYNC_NO_INDEX;
    }
    return n;
}

uint32_t async_task_of_thread(const async_snapshot *s, const aprof_thread_sample *t,
                              uint32_t *frame_index)
{
    for (uint32_t k = t->nframes; k-- > 0;) {
        if (!t->owners[k])
            continue;
        uint32_t i = async_find_by_coro(s, t->owners[k]);
        if (i != ASYNC_NO_INDEX) {
            if (frame_index)
                *frame_index = k;
            return i;
        }
    }
    return ASYNC_NO_INDEX;
}

uint32_t asyncio_chain_still_valid(void *ud, const async_snapshot *s, const uint32_t *links,
                                   uint32_t n)
{
    asyncio_reader *r = ud;
    const py_layout *L = r->L;
    enum { MAXN = 64 };
    if (n > MAXN)
        n = MAXN;
    loff offs[3] = {L->asyncio.task_coro, L->asyncio.task_name, L->asyncio.task_fut_waiter};
    loff lo = offs[0], hi = offs[0];
    for (int k = 1; k < 3; k++) {
        lo = offs[k] < lo ? offs[k] : lo;
        hi = offs[k] > hi ? offs[k] : hi;
    }
    size_t span = (size_t)(hi - lo) + 8;
    if (lo < 0 || span > 64)
        return 0;
    uint8_t buf[MAXN][64];
    uint64_t addrs[MAXN];
    void *dsts[MAXN];
    size_t lens[MAXN], m = 0;
    for (uint32_t k = 0; k < n; k++) {
        const async_task *t = &s->tasks[links[k]];
        if (t->flags & ATF_PY_TASK)
            continue; /* fields in its __dict__: not rechecked */
        addrs[m] = t->id + (uint64_t)lo;
        dsts[m] = buf[k];
        lens[m++] = span;
    }
    ssize_t got = m ? mem_readv(r->c.m, addrs, dsts, lens, m) : 0;
    size_t done = got > 0 ? (size_t)got / span : 0; /* ranges read whole, in order */
    size_t seen = 0;
    for (uint32_t k = 0; k < n; k++) {
        const async_task *t = &s->tasks[links[k]];
        if (t->flags & ATF_PY_TASK)
            continue;
        if (seen++ >= done)
            return k;
        const uint8_t *b = buf[k];
        if (ld64(b, offs[0] - lo) != t->coro || ld64(b, offs[1] - lo) != t->name_obj)
            return k;
        if (k > 0 && ld64(b, offs[2] - lo) != t->raw_waiter)
            return k;
    }
    return n;
}

/* ---- the snapshot ------------------------------------------------------------------------- */

static void reset_snapshot(async_snapshot *out)
{
    out->flags = 0;
    out->ntasks = out->nframes = out->nedges = out->nloops = out->ncycles = 0;
    out->unreadable = 0;
    out->cost_ns = 0;
}

int asyncio_snapshot(asyncio_reader *r, const aprof_sample *threads, async_snapshot *out)
{
    uint64_t t0 = aprof_now_ns();
    reset_snapshot(out);
    mem_begin_sample(r->c.m);
    r->pc_epoch++;
    if (!r->have_registries || t0 - r->refreshed_ns > REGISTRY_REFRESH_NS || !registries_valid(r)) {
        r->refreshed_ns = t0;
        if (!refresh_registries(r)) {
            out->flags |= ASF_NO_ASYNCIO;
            if (kill(r->t.pid, 0) != 0 && errno == ESRCH)
                return -1;
            out->cost_ns = aprof_now_ns() - t0;
            return 0;
        }
    }
    if (collect_tasks(r, out) != 0) {
        errno = ENOMEM;
        return -1;
    }
    if (kill(r->t.pid, 0) != 0 && errno == ESRCH)
        return -1;
    r->ncur = 0;
    if (r->current)
        pyobj_dict_iter(&r->c, r->current, current_cb, r);
    read_threads(r, threads);

    for (uint32_t i = 0; i < r->nrecs; i++) {
        read_task(r, &r->recs[i]);
        async_task *t = &r->recs[i].t;
        if (t->flags & ATF_UNREADABLE)
            continue;
        t->loop_index = loop_index(out, t->loop);
    }
    map_loop_threads(r, out, threads);
    /* order loops, then renumber the tasks' loop indices */
    uint64_t ids[ASYNC_MAX_LOOPS];
    for (uint32_t i = 0; i < out->nloops; i++)
        ids[i] = out->loops[i].id;
    if (out->nloops > 1)
        qsort_r(out->loops, out->nloops, sizeof(async_loop), loop_order, r);
    uint32_t remap[ASYNC_MAX_LOOPS];
    for (uint32_t i = 0; i < out->nloops; i++)
        for (uint32_t j = 0; j < out->nloops; j++)
            if (out->loops[j].id == ids[i])
                remap[i] = j;
    for (uint32_t i = 0; i < r->nrecs; i++) {
        async_task *t = &r->recs[i].t;
        if (t->loop_index != ASYNC_NO_INDEX) {
            t->loop_index = remap[t->loop_index];
            t->tid = out->loops[t->loop_index].tid;
            out->loops[t->loop_index].ntasks++;
        }
    }
    /* sort an index, not the records */
    if (!grow((void **)&r->order, &r->cap_order, r->nrecs, sizeof(kv), ASYNC_TASK_LIMIT)) {
        errno = ENOMEM;
        return -1;
    }
    for (uint32_t i = 0; i < r->nrecs; i++) {
        /* by loop (unknown last), then by address */
        uint64_t li = r->recs[i].t.loop_index < ASYNC_MAX_LOOPS ? r->recs[i].t.loop_index
                                                                : ASYNC_MAX_LOOPS;
        r->order[i] = (kv){li << 44 | (r->recs[i].t.id >> 3), i};
    }
    if (!sort_scratch(r, r->nrecs)) {
        errno = ENOMEM;
        return -1;
    }
    radix_sort(r->order, r->sort_tmp, r->nrecs, 44 + 9);

    /* publish tasks, build the lookup maps */
    if (!grow((void **)&out->tasks, &out->cap_tasks, r->nrecs, sizeof(async_task), ASYNC_TASK_LIMIT) ||
        !grow((void **)&r->work, &r->cap_work, r->nrecs, sizeof(task_work), ASYNC_TASK_LIMIT) ||
        !map_alloc(&out->by_id_map, &out->map_mask, r->nrecs)) {
        errno = ENOMEM;
        return -1;
    }
    free(out->by_coro_map);
    out->by_coro_map = malloc((size_t)(out->map_mask + 1) * sizeof(uint32_t));
    if (!out->by_coro_map) {
        errno = ENOMEM;
        return -1;
    }
    memset(out->by_coro_map, 0xff, (size_t)(out->map_mask + 1) * sizeof(uint32_t));
    out->ntasks = r->nrecs;
    for (uint32_t i = 0; i < r->nrecs; i++) {
        out->tasks[i] = r->recs[r->order[i].val].t;
        r->work[i] = r->recs[r->order[i].val].w;
        map_insert(out->by_id_map, out->map_mask, out->tasks[i].id, i);
        if (async_find_by_coro(out, out->tasks[i].coro) == ASYNC_NO_INDEX)
            map_insert(out->by_coro_map, out->map_mask, out->tasks[i].coro, i);
        if (out->tasks[i].flags & ATF_UNREADABLE)
            out->unreadable++;
    }
    for (uint32_t i = 0; i < r->ncur; i++) {
        uint32_t li = ASYNC_NO_INDEX;
        for (uint32_t j = 0; j < out->nloops; j++)
            if (out->loops[j].id == r->cur[i].loop)
                li = j;
        uint32_t ti = async_find_task(out, r->cur[i].task);
        if (li != ASYNC_NO_INDEX && ti != ASYNC_NO_INDEX && out->tasks[ti].state == ATS_RUNNING)
            out->loops[li].running_task = ti;
    }

    r->npairs = 0;
    /* Await edges cost about one visit per edge; a budget keeps pathological graphs (many
     * tasks each awaiting the same huge gather) linear. */
    r->resolve_budget = 16ull * out->ntasks + 100000;
    for (uint32_t i = 0; i < out->ntasks; i++)
        analyse_task(r, out, i, threads);
    recheck_tasks(r, out);
    if (!build_edges(r, out) || !find_cycles(r, out)) {
        errno = ENOMEM;
        return -1;
    }
    out->cost_ns = aprof_now_ns() - t0;
    return (int)out->ntasks;
}
