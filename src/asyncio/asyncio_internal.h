/* Private to src/asyncio: what the files of the asyncio reader share. The reader itself (its
 * caches and scratch), the internal types, the page-cache reads, and the functions one file of
 * the reader calls in another, grouped by the file that defines them:
 *   asyncio_reader.c    the reader, snapshot buffers, maps, threads, loops,
 *                       asyncio_snapshot()
 *   asyncio_types.c     type classification, wait kinds
 *   asyncio_registry.c  the task registries, collecting task addresses
 *   asyncio_tasks.c     reading one task, the recheck
 *   asyncio_chain.c     coroutine chains
 *   asyncio_graph.c     await analysis: who awaits whom, edges, cycles
 * Not part of the API (that is asyncio_reader.h); included only by those files. */
#ifndef APROF_ASYNCIO_INTERNAL_H
#define APROF_ASYNCIO_INTERNAL_H

#include "asyncio_reader.h"
#include "hash.h"
#include "hmap.h"
#include "pyobj.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TYPE_CACHE 512u                   /* power of two */
#define FILE_CACHE 64u
#define MAX_THREADS 4096u
#define MAX_CURRENT 4096u                 /* entries of _current_tasks */
#define ASYNC_TASK_LIMIT 1000000u         /* hard limit of asyncio_reader_set_max_tasks() */

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

/* The reader's own page cache (pagecache.h). A snapshot walks thousands of small objects
 * (tasks, coroutines, futures) spread over a few MiB; the session's 128-page cache would thrash
 * on them, so the reader keeps a larger one, filled PC_GROUP aligned pages per
 * process_vm_readv, and forgotten at the start of every snapshot. */
#define PC_SLOTS 4096u /* direct-mapped: 16 MiB at most */
#define PC_GROUP 4u    /* pages read per miss (aligned group) */

struct asyncio_reader {
    asyncio_target t;
    pagecache pc;
    pyobj_ctx c;
    const py_layout *L;    /* the runtime's layout, or own_layout once refined */
    py_layout own_layout;  /* 3.14+: with _asyncio's own offsets (asyncio_registry.c) */
    bool asyncio_offsets;  /* ... applied */
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
    /* Task names, in a table of their own (asyncio_reader.h: how long they live): a service
     * that names every task differently (Task-1234567) would otherwise grow aprof's memory
     * forever. names_old is the generation before names_cur. */
    strtab *names_cur, *names_old;
    uint64_t name_rotations;
    kind_entry kinds[KIND_CACHE];

    /* scratch, reused */
    task_rec *recs;
    uint32_t nrecs, cap_recs;
    hmap rec_by_id;      /* dedupe of task addresses while collecting */
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

/* Copy n bytes at addr from the cache (reading what is missing). */
static inline bool rd(asyncio_reader *r, uint64_t addr, void *dst, size_t n)
{
    if (!mem_ptr_ok(addr, false) || addr + n < addr)
        return false;
    const uint8_t *hit = pagecache_peek(&r->pc, addr, n);
    if (hit) {
        memcpy(dst, hit, n);
        return true;
    }
    return pagecache_read(&r->pc, addr, dst, n) == 0;
}

static inline bool rd_ptr(asyncio_reader *r, uint64_t addr, uint64_t *out)
{
    *out = 0;
    return rd(r, addr, out, 8);
}

static inline uint64_t ld64(const uint8_t *b, loff off)
{
    uint64_t v;
    memcpy(&v, b + off, 8);
    return v;
}


/* ---- shared between the files ------------------------------------------------------------- */

/* asyncio_reader.c */
/* grow_array (grow.h) for the reader's uint32_t capacities: false if it cannot. */
bool ar_grow(void **p, uint32_t *cap, uint32_t need, size_t elem, uint32_t limit);
/* The sampled thread whose live stack holds frames of coro; *first gets the outermost one. */
const aprof_thread_sample *ar_thread_running(const aprof_sample *smp, uint64_t coro,
                                             uint32_t *first);

/* asyncio_types.c */
/* The type_class bits of an object (0 when unreadable), cached by its type's address. */
uint32_t ar_classify(asyncio_reader *r, uint64_t obj);
/* Which asyncio source file (enum asyncio_file) an interned file name is, cached. */
uint8_t ar_asyncio_file_of(asyncio_reader *r, const char *file);
/* The wait kind named by the trailing asyncio coroutines of a chain (*which: its position). */
uint8_t ar_recognise_wait(asyncio_reader *r, const async_snapshot *out, const chain *ch,
                          uint32_t *which);

/* asyncio_registry.c */
/* Look the task registries up again through sys.modules; false when asyncio is not imported. */
bool ar_refresh_registries(asyncio_reader *r);
/* Do the registries found before still have the types they had? */
bool ar_registries_valid(asyncio_reader *r);
/* Every registered task's address into r->recs (deduplicated, capped); -1 out of memory. */
int ar_collect_tasks(asyncio_reader *r, async_snapshot *out);
/* pyobj_dict_iter() callback over _current_tasks: appends (loop, task) to r->cur. */
bool ar_current_cb(void *ud, uint64_t key, uint64_t value);

/* asyncio_tasks.c */
/* An attribute of a Python object, None as 0; false when it cannot be read. */
bool ar_py_attr(asyncio_reader *r, uint64_t obj, const char *name, uint64_t *value);
/* Read the task at rec->t.id into rec (ATF_UNREADABLE when it is not a readable task). */
void ar_read_task(asyncio_reader *r, task_rec *rec);
/* Read each C task's state, waiter and coroutine position again: ATF_CHANGED where changed. */
void ar_recheck_tasks(asyncio_reader *r, async_snapshot *out);

/* asyncio_chain.c */
/* The locals and value stack of generator g's frame (at most cap slots); how many. */
uint32_t ar_gen_slots(asyncio_reader *r, uint64_t g, uint64_t *out, uint32_t cap);
/* Append a frame to the snapshot; false (ASF_FRAMES_TRUNCATED) when it is full. */
bool ar_add_frame(async_snapshot *out, const aprof_frame *f);
/* Follow t's coroutine down its await chain into ch, one snapshot frame per coroutine. */
void ar_walk_chain(asyncio_reader *r, async_snapshot *out, async_task *t, task_work *w,
                   chain *ch);

/* asyncio_graph.c */
/* Stack, wait kind and awaited-by pairs (into r->pairs) of snapshot task i. */
void ar_analyse_task(asyncio_reader *r, async_snapshot *out, uint32_t i,
                     const aprof_sample *smp);
/* LSD radix sort of n records on the low `bits` bits of their keys (tmp: n records). */
void ar_radix_sort(kv *a, kv *tmp, uint32_t n, unsigned bits);
/* Make the radix sorts' scratch (r->sort_tmp) hold n records. */
bool ar_sort_scratch(asyncio_reader *r, uint32_t n);
/* r->pairs as each task's awaited-by and awaits lists in out->edges (duplicates dropped). */
bool ar_build_edges(asyncio_reader *r, async_snapshot *out);
/* Record the await cycles of out (at most ASYNC_MAX_CYCLES), flagging their tasks. */
bool ar_find_cycles(asyncio_reader *r, async_snapshot *out);

#endif
