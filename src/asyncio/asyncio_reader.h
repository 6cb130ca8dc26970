/* The asyncio picture of a target: every task of every event loop, its coroutine stack, what it
 * awaits, and who awaits whom (CPython 3.10-3.13, C `_asyncio.Task` and pure-Python Tasks).
 *
 * Tasks are found through the module objects (sys.modules -> asyncio.tasks -> `_all_tasks` on
 * 3.10/3.11, `_scheduled_tasks` + `_eager_tasks` on 3.12/3.13, `_current_tasks` for the running
 * task of each loop), never through C statics, so stripped interpreters work. Suspended
 * coroutines are followed down their await chain the way CPython's `_PyGen_yf` does for that
 * version. Who awaits whom is derived from what each task awaits (`task._fut_waiter`: a task, a
 * gather, a shield, the locals of `wait_for`/`wait`) and from the callbacks of each task
 * (TaskGroup children). docs/asyncio.md has the mechanics and the limits.
 *
 * Cost: one snapshot is O(tasks): every loop is bounded (ASYNC_MAX_TASKS tasks, ASYNC_MAX_DEPTH
 * coroutines per await chain, ASYNC_MAX_FRAMES frames in all); buffers are reused from one
 * snapshot to the next. A task that cannot be read is kept with ATF_UNREADABLE, never fatal.
 *
 * Usage:
 *     asyncio_reader *r = session_asyncio_reader(&session);   // or asyncio_reader_new(&target)
 *     async_snapshot snap; async_snapshot_init(&snap);
 *     session_sample(&session, &smp);            // optional, but gives threads and live stacks
 *     asyncio_snapshot(r, &smp, &snap);
 *     ... snap.tasks[i] ...
 *     async_snapshot_free(&snap); asyncio_reader_free(r);
 * The snapshot reads the target without stopping it: take the thread sample right before it (in
 * blocking mode: both while the target is stopped).
 */
#ifndef APROF_ASYNCIO_READER_H
#define APROF_ASYNCIO_READER_H

#include "codecache.h"
#include "hmap.h"
#include "memory.h"
#include "pyruntime.h"
#include "sample.h"
#include "strtab.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define ASYNC_MAX_TASKS 100000u   /* default cap on tasks per snapshot */
/* Task names are kept in the reader's own table, not the target's string table: a program
 * that names every task differently would otherwise grow aprof forever. Once that table holds
 * this many names, the next snapshot starts a new one and the one before goes: a task name
 * of a snapshot stays valid until the second such rotation after it was taken. A consumer
 * that keeps a name longer (a stall report, a screen row) copies or interns it. */
#define ASYNC_NAMES_ROTATE 4096u
#define ASYNC_MAX_DEPTH 64u       /* coroutines followed per await chain */
#define ASYNC_MAX_FRAMES 2000000u /* frames per snapshot, all tasks together */
#define ASYNC_MAX_LOOPS 256u
#define ASYNC_MAX_CYCLES 64u

typedef enum async_task_state {
    ATS_PENDING = 0,   /* not done, not running: suspended or scheduled */
    ATS_RUNNING = 1,   /* the current task of its loop (`asyncio.current_task(loop)`) */
    ATS_DONE = 2,      /* finished with a result or an exception */
    ATS_CANCELLED = 3,
    ATS_UNKNOWN = 4,   /* unreadable */
} async_task_state;

/* What a task is waiting on (docs/asyncio.md: how each is recognised). */
typedef enum async_wait_kind {
    AWK_NONE = 0,      /* nothing: done, running, or scheduled to resume */
    AWK_TASK,          /* `await task` */
    AWK_GATHER,        /* asyncio.gather(...) (a _GatheringFuture) */
    AWK_SHIELD,        /* asyncio.shield(...) (its outer future) */
    AWK_WAIT_FOR,      /* asyncio.wait_for(...) */
    AWK_WAIT,          /* asyncio.wait(...) */
    AWK_TASKGROUP,     /* TaskGroup.__aexit__: waiting for the group's tasks */
    AWK_SLEEP,         /* asyncio.sleep(...) */
    AWK_LOCK,          /* asyncio.Lock.acquire */
    AWK_SEMAPHORE,     /* asyncio.Semaphore / BoundedSemaphore .acquire */
    AWK_EVENT,         /* asyncio.Event.wait */
    AWK_CONDITION,     /* asyncio.Condition.wait / wait_for */
    AWK_BARRIER,       /* asyncio.Barrier (3.11+) */
    AWK_QUEUE,         /* asyncio.Queue get / put / join */
    AWK_STREAM,        /* asyncio streams: reading or draining */
    AWK_FUTURE,        /* any other future */
    AWK_OTHER,         /* the await chain ends in something that is not a future */
    AWK_UNKNOWN,       /* unreadable */
    AWK_COUNT_
} async_wait_kind;

/* "task", "gather", ... (the JSON `awaiting.kind` values). */
const char *async_wait_kind_name(uint8_t kind);
/* "pending", "running", "done", "cancelled", "unknown". */
const char *async_task_state_name(uint8_t state);

enum async_task_flags {
    ATF_UNREADABLE = 1u << 0,   /* the task object could not be read (garbage or freed) */
    ATF_PARTIAL = 1u << 1,      /* some of it could not be read: stack or edges incomplete */
    ATF_STACK_TRUNCATED = 1u << 2, /* await chain longer than ASYNC_MAX_DEPTH, or frame cap */
    ATF_PY_TASK = 1u << 3,      /* a pure-Python Task (asyncio.tasks._PyTask) */
    ATF_LIVE_STACK = 1u << 4,   /* running: its stack was taken from its thread's live stack */
    ATF_IN_CYCLE = 1u << 5,     /* part of an await cycle */
    ATF_CHANGED = 1u << 6,      /* it ran while it was read (a busy loop read without --blocking):
                                 * its state, wait and stack may not belong together */
};

#define ASYNC_NO_INDEX UINT32_MAX

typedef struct async_task {
    uint64_t id;            /* address of the task object == Python's id(task) */
    uint64_t coro;          /* address of its coroutine object (0 unknown): maps a thread's
                             * aprof_thread_sample.owners[] to the task */
    uint64_t loop;          /* address of its event loop */
    const char *name;       /* interned task name ("Task-7" for unnamed tasks); never NULL */
    uint8_t state;          /* async_task_state */
    uint8_t wait_kind;      /* async_wait_kind */
    uint16_t flags;         /* async_task_flags */
    pid_t tid;              /* thread running its loop, 0 when unknown */
    uint32_t loop_index;    /* into snapshot.loops, ASYNC_NO_INDEX when unknown */
    uint64_t wait_id;       /* id of the object it awaits (task._fut_waiter), 0 when none */
    uint64_t raw_waiter;    /* task._fut_waiter and task._name as read (C tasks), for */
    uint64_t name_obj;      /* asyncio_chain_still_valid */
    uint32_t frame_start;   /* coroutine stack: snapshot.frames[frame_start .. +nframes), */
    uint32_t nframes;       /*   outermost first (the task's coroutine first) */
    uint32_t by_start;      /* awaited-by: snapshot.edges[by_start .. +nby) are task indices */
    uint32_t nby;
    uint32_t awaits_start;  /* the reverse: tasks this one awaits, snapshot.edges[...] */
    uint32_t nawaits;
} async_task;

typedef struct async_loop {
    uint64_t id;            /* address of the loop object */
    uint64_t py_thread_id;  /* threading.get_ident() of the thread running it, 0 unknown */
    pid_t tid;              /* native thread id, 0 unknown */
    const char *thread_name;/* interned, "" when unknown */
    uint32_t running_task;  /* task index of asyncio.current_task(loop), ASYNC_NO_INDEX if none */
    uint32_t ntasks;
} async_loop;

enum async_snapshot_flags {
    ASF_NO_ASYNCIO = 1u << 0,     /* asyncio.tasks is not imported in the target */
    ASF_TASKS_TRUNCATED = 1u << 1,/* more tasks than the cap: the rest are left out */
    ASF_FRAMES_TRUNCATED = 1u << 2,
    ASF_REGISTRY_ERROR = 1u << 3, /* a task registry could not be (fully) read */
    ASF_UNSUPPORTED = 1u << 4,    /* this Python keeps its tasks where aprof cannot find them
                                   * (3.14+ without a valid .AsyncioDebug): no task is listed */
};

typedef struct async_snapshot {
    uint32_t flags;           /* async_snapshot_flags */
    uint32_t ntasks, cap_tasks;
    async_task *tasks;        /* sorted by loop index, then by id */
    uint32_t nframes, cap_frames;
    aprof_frame *frames;
    uint32_t nedges, cap_edges;
    uint32_t *edges;          /* task indices, see async_task.by_start / awaits_start */
    uint32_t nloops;
    async_loop loops[ASYNC_MAX_LOOPS];
    uint32_t ncycles;         /* await cycles: cycle k is edges[cycle_start[k] .. +cycle_len[k]) */
    uint32_t cycle_start[ASYNC_MAX_CYCLES], cycle_len[ASYNC_MAX_CYCLES];
    uint32_t unreadable;      /* tasks with ATF_UNREADABLE */
    uint64_t cost_ns;         /* how long the snapshot took */
    /* lookup tables, rebuilt per snapshot: task id / coroutine -> index in tasks */
    hmap by_id, by_coro;
} async_snapshot;

void async_snapshot_init(async_snapshot *s);
void async_snapshot_free(async_snapshot *s);

typedef struct asyncio_reader asyncio_reader;

/* What a reader reads through: the target's memory, its runtime, the string table code and
 * thread names go to (task names: see ASYNC_NAMES_ROTATE), and the stack reader's code cache (shared: a code object is decoded once). All must
 * outlive the reader. */
typedef struct asyncio_target {
    pid_t pid;
    struct core_file *core; /* set when the target is a core file (target_src.h) */
    mem *m;
    const pyruntime *rt;
    strtab *st;
    codecache *cc;
    bool redact;    /* --redact: task names as placeholders (redact.h) */
} asyncio_target;

/* A reader of one target. NULL when out of memory. */
asyncio_reader *asyncio_reader_new(const asyncio_target *t);
void asyncio_reader_free(asyncio_reader *r);
/* How many times the task-name table was started over (ASYNC_NAMES_ROTATE). */
uint64_t asyncio_reader_name_rotations(const asyncio_reader *r);
/* Change the task cap (default ASYNC_MAX_TASKS, at least 1). */
void asyncio_reader_set_max_tasks(asyncio_reader *r, uint32_t max_tasks);

/* Read every task of every loop into out (its previous content is replaced).
 * threads: a sample of the target's threads taken just before (may be NULL): it gives the
 * native thread of each loop and the live stack of running tasks.
 * Returns the number of tasks (0 with ASF_NO_ASYNCIO when asyncio is not in use), or -1 when the
 * target cannot be read at all (errno ESRCH: it exited; ENOMEM). */
int asyncio_snapshot(asyncio_reader *r, const aprof_sample *threads, async_snapshot *out);

/* Index of the task with this id (task object address) or this coroutine address, or
 * ASYNC_NO_INDEX. O(1). */
uint32_t async_find_task(const async_snapshot *s, uint64_t id);
uint32_t async_find_by_coro(const async_snapshot *s, uint64_t coro);

/* The task a thread is running right now: the outermost frame of the thread whose owner is the
 * coroutine of a task of the snapshot. *frame_index (optional) gets that frame's index in
 * t->frames. ASYNC_NO_INDEX when none. */
uint32_t async_task_of_thread(const async_snapshot *s, const aprof_thread_sample *t,
                              uint32_t *frame_index);

/* From task i up the awaited-by chain (first awaiter at each step) to a root: out[0] = i,
 * out[n-1] = the root. Stops before repeating a task (cycles) and at cap. Returns n (0 when i is
 * not a task index). */
uint32_t async_root_chain(const async_snapshot *s, uint32_t i, uint32_t *out, uint32_t cap);

/* How a task that has left asyncio's task lists ended (3.14+ unlinks a task as soon as it is
 * done): read from the object itself, trusted only while it is still a task holding the same
 * coroutine. ATS_DONE or ATS_CANCELLED, else ATS_UNKNOWN (freed, reused, unreadable, or still
 * pending). */
uint8_t asyncio_task_outcome(asyncio_reader *r, uint64_t id, uint64_t coro);

/* Does a chain from an older snapshot (chain[0] the task a thread runs now, chain[k] awaiting
 * chain[k-1]) still hold? One read of the task objects: each must still hold the same coroutine
 * and name, and each awaiter must still wait on the same future (it has not resumed since).
 * Returns how many leading entries hold (n when all do). Pure-Python tasks are taken as they
 * are. `r` is an asyncio_reader (void * to fit async_chain_check). */
uint32_t asyncio_chain_still_valid(void *r, const async_snapshot *s, const uint32_t *chain,
                                   uint32_t n);

#endif
