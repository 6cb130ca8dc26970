/* aprof dump: one look at every thread's stack and at the asyncio task tree. */
#include "asyncio_print.h"
#include "asyncio_reader.h"
#include "cli.h"
#include "core_file.h"
#include "exitcodes.h"
#include "freezer.h"
#include "json.h"
#include "loop_watch.h"
#include "options.h"
#include "proc.h"
#include "proc_tree.h"
#include "redact.h"
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char dump_usage[] =
    "usage: aprof dump --pid PID [--json] [--blocking | --nonblocking] [--no-async] [--native]\n"
    "                  [--redact] [--subprocesses] [--watch MS]\n"
    "       aprof dump --core FILE [--executable PATH] [--lib-search DIR]... [--json]\n"
    "                  [--no-async] [--native] [--redact]\n"
    "\n"
    "Print every thread of a running CPython process with its Python stack, innermost frame\n"
    "first (--json: outermost first), then every asyncio task of every event loop as a tree\n"
    "of who awaits whom, with each task's coroutine stack (docs/asyncio.md). With\n"
    "--subprocesses, the same for each of its descendants in turn. With --core, the same from\n"
    "a core file (gcore or the kernel's) of a CPython process (docs/dump.md#core-files).\n"
    "\n";

static const char *state_name(uint8_t st)
{
    switch (st) {
    case TS_RUNNING: return "running";
    case TS_SLEEPING: return "sleeping";
    case TS_DISK: return "disk wait";
    case TS_STOPPED: return "stopped";
    case TS_OTHER: return "other";
    default: return "unknown";
    }
}

/* Main thread first, then by tid. */
static int thread_order(const void *a, const void *b)
{
    const aprof_thread_sample *x = a, *y = b;
    if (x->is_main != y->is_main)
        return x->is_main ? -1 : 1;
    return (x->tid > y->tid) - (x->tid < y->tid);
}

#define MAX_LOOPS 64

typedef struct loop_view {
    const loop_state *loops;
    size_t n;
} loop_view;

static const loop_state *loop_of(const loop_view *lv, pid_t tid)
{
    for (size_t i = 0; i < lv->n; i++)
        if (lv->loops[i].tid == tid)
            return &lv->loops[i];
    return NULL;
}

static const char *loop_kind_name(uint8_t kind)
{
    return kind == LOOP_NATIVE ? "uvloop" : "asyncio";
}

static void print_loop_text(const loop_state *l, bool core)
{
    if (l->busy && core)
        printf("    event loop (%s): busy (running a callback when the core was written)\n",
               loop_kind_name(l->kind));
    else if (!l->busy)
        printf("    event loop (%s): idle, waiting in its selector\n", loop_kind_name(l->kind));
    else if (l->ended)
        printf("    event loop (%s): busy; back in its selector %.1f ms later\n",
               loop_kind_name(l->kind), (double)l->busy_for_ns / 1e6);
    else
        printf("    event loop (%s): busy for at least %.1f ms (still busy when aprof stopped "
               "watching)\n", loop_kind_name(l->kind), (double)l->busy_for_ns / 1e6);
}

static void print_text(const session *s, const aprof_sample *smp, const async_snapshot *as,
                       const loop_view *lv)
{
    if (s->src.core)
        printf("Core file %s of process %d: %s\n", core_path(s->src.core), (int)s->src.pid,
               s->cmdline);
    else
        printf("Process %d: %s\n", (int)s->src.pid, s->cmdline);
    printf("Python %s (%s%s)\n", s->rt.version, s->rt.binary, s->rt.stripped ? ", stripped" : "");
    for (uint32_t i = 0; i < smp->nthreads; i++) {
        const aprof_thread_sample *t = &smp->threads[i];
        printf("\nThread %d \"%s\"%s [%s]\n", (int)t->tid, t->name, t->is_main ? " (main)" : "",
               state_name(t->state));
        const loop_state *l = loop_of(lv, t->tid);
        if (l)
            print_loop_text(l, s->src.core != NULL);
        if (t->flags & TSF_TORN)
            printf("    (stack changed while it was read; incomplete)\n");
        if (t->nframes == 0)
            printf("    (no Python frames)\n");
        for (uint32_t k = t->nframes; k-- > 0;) {
            const aprof_frame *f = &t->frames[k];
            if ((f->kind == FRAME_NATIVE || f->kind == FRAME_MARK) && s->native && !f->line)
                printf(f->file[0] ? "    %s (%s)\n" : "    %s\n", f->name, f->file);
            else
                printf("    %s (%s:%d)\n", f->name, f->file, (int)f->line);
        }
        if (t->flags & TSF_TRUNCATED)
            printf("    ... (truncated)\n");
    }
    if (as)
        async_print_text(stdout, as);
}

/* One process as a JSON object (the whole output, or an element of "processes"). */
static void write_json(json_writer *wp, const session *s, const aprof_sample *smp,
                       const async_snapshot *as, const loop_view *lv)
{
#define w (*wp)
    json_begin_object(&w);
    json_kv_int(&w, "pid", s->src.pid);
    if (s->src.core)
        json_kv_string(&w, "core", core_path(s->src.core));
    json_kv_string(&w, "python_version", s->rt.version);
    json_kv_string(&w, "command", s->cmdline);
    json_kv_string(&w, "binary", s->rt.binary);
    json_kv_string(&w, "layout", s->rt.debug_offsets_used ? "_Py_DebugOffsets" : "built-in");
    json_key(&w, "threads");
    json_begin_array(&w);
    for (uint32_t i = 0; i < smp->nthreads; i++) {
        const aprof_thread_sample *t = &smp->threads[i];
        json_begin_object(&w);
        json_kv_int(&w, "tid", t->tid);
        json_kv_string(&w, "name", t->name);
        json_key(&w, "is_main");
        json_bool(&w, t->is_main);
        json_kv_string(&w, "state", state_name(t->state));
        json_key(&w, "complete");
        json_bool(&w, !(t->flags & (TSF_TORN | TSF_TRUNCATED)));
        const loop_state *l = loop_of(lv, t->tid);
        if (l) {
            json_key(&w, "event_loop");
            json_begin_object(&w);
            json_kv_string(&w, "kind", loop_kind_name(l->kind));
            json_kv_string(&w, "state", l->busy ? "busy" : "idle");
            if (l->busy) {
                json_key(&w, "busy_for_s");
                json_seconds_ns(&w, l->busy_for_ns);
                json_key(&w, "busy_ended");
                json_bool(&w, l->ended);
            }
            json_end_object(&w);
        }
        json_key(&w, "frames");
        json_begin_array(&w);
        for (uint32_t k = 0; k < t->nframes; k++) {
            const aprof_frame *f = &t->frames[k];
            json_begin_object(&w);
            json_kv_string(&w, "function", f->name);
            json_kv_string(&w, "file", f->file);
            json_kv_int(&w, "line", f->line);
            if (s->native && f->kind != FRAME_PYTHON)
                json_kv_string(&w, "kind", f->kind == FRAME_NATIVE ? "native" : "mark");
            json_end_object(&w);
        }
        json_end_array(&w);
        json_end_object(&w);
    }
    json_end_array(&w);
    if (as)
        async_print_json(&w, as);
    json_end_object(&w);
#undef w
}

static bool sample_torn(const aprof_sample *smp)
{
    for (uint32_t i = 0; i < smp->nthreads; i++)
        if (smp->threads[i].flags & TSF_TORN)
            return true;
    return false;
}

/* Stopping a torn thread on its own for a whole read (pystack_stopped.c), as record's default
 * mode does: a thread that keeps running Python code may tear every non-stopping read (3.10's
 * heap frames most of all: a healthy event loop was seen torn 20 times in a row about once in
 * 30 dumps). */
#define THREAD_STOP_TIMEOUT_NS 10000000ull
static int stop_one(void *ud, pid_t tid)
{
    return freezer_stop_thread(ud, tid, THREAD_STOP_TIMEOUT_NS);
}

static void resume_one(void *ud, pid_t tid)
{
    (void)tid;
    freezer_resume(ud);
}

/* A non-blocking read can catch a stack mid-change: try a few times for a clean one, then
 * (unless nonblocking) with torn threads stopped for their read. The asyncio snapshot (when ar
 * is set) is taken right after the clean (or last) thread sample, inside the same suspension
 * in blocking mode. */
static int take_clean_sample(session *s, aprof_sample *smp, bool blocking, bool nonblocking,
                             freezer *fz, asyncio_reader *ar, async_snapshot *as)
{
    enum { ATTEMPTS = 20, FREE_ATTEMPTS = 5 };
    int rc = -1;
    for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
        if (attempt == FREE_ATTEMPTS && !blocking && !nonblocking && !s->native)
            s->ps.stopper = (thread_stop_fn){stop_one, resume_one, fz};
        sample_reset(smp);
        if (blocking && freezer_stop(fz) < 0)
            return -2;
        rc = session_sample(s, smp);
        bool torn = rc >= 0 && sample_torn(smp);
        if (rc >= 0 && ar && (!torn || attempt + 1 == ATTEMPTS) && asyncio_snapshot(ar, smp, as) < 0)
            rc = -1;
        int read_errno = errno;
        if (blocking)
            freezer_resume(fz);
        freezer_settle(fz);
        errno = read_errno; /* the caller tells an exited target by it */
        if (rc < 0 || !torn)
            break;
    }
    s->ps.stopper = (thread_stop_fn){0};
    return rc < 0 ? -1 : rc;
}

#define MAX_LIB_SEARCH 16

typedef struct lib_search {
    const char *dirs[MAX_LIB_SEARCH];
    size_t n;
} lib_search;

typedef struct dump_opts {
    bool json, blocking, nonblocking, with_async, redact, native, subprocesses;
    const char *unwinder_name;
    double watch_ms;
    const char *core, *executable; /* --core, --executable */
    lib_search search;             /* --lib-search, in the order given */
} dump_opts;

static bool parse_lib_search(const char *arg, void *dest)
{
    lib_search *ls = dest;
    if (ls->n >= MAX_LIB_SEARCH || !arg[0])
        return false;
    ls->dirs[ls->n++] = arg;
    return true;
}

/* Dump one process: as text on stdout, or as a JSON object to w. APROF_OK, or a status with
 * its message in err (nothing printed then). */
static aprof_status dump_process(pid_t pid, const dump_opts *o, json_writer *w, aprof_error *err)
{
    session s;
    if (session_open(&s, pid, err) != APROF_OK)
        return err->status;
    if (o->redact)
        session_enable_redaction(&s);
    s.want_state = true;
    bool blocking = o->blocking;
    if (o->native) {
        if (session_enable_native(&s, o->unwinder_name, err) != APROF_OK) {
            session_close(&s);
            return err->status;
        }
        blocking = false; /* --native stops the target for the sample itself */
    }
    freezer fz;
    freezer_init(&fz, pid);
    aprof_sample smp;
    sample_init(&smp);
    async_snapshot as;
    async_snapshot_init(&as);
    asyncio_reader *ar = o->with_async ? session_asyncio_reader(&s) : NULL;
    aprof_status rc = APROF_OK;
    int n = o->with_async && !ar ? -3
                                 : take_clean_sample(&s, &smp, blocking, o->nonblocking, &fz, ar, &as);
    if (n == -3) {
        rc = aprof_error_set(err, APROF_E_INTERNAL, "out of memory");
    } else if (n == -2) {
        rc = fz.last_errno == ESRCH
                 ? aprof_error_set(err, APROF_E_NO_PROCESS, "process %d exited", (int)pid)
                 : aprof_error_set(err, APROF_E_PERMISSION,
                                   "cannot suspend process %d with ptrace: %s (see "
                                   "docs/troubleshooting.md)", (int)pid, strerror(fz.last_errno));
    } else if (n < 0) {
        rc = errno == ESRCH ? aprof_error_set(err, APROF_E_NO_PROCESS, "process %d exited", (int)pid)
                            : aprof_error_set(err, APROF_E_INTERNAL,
                                              "cannot read the threads of process %d", (int)pid);
    } else {
        if (smp.nthreads > 1) /* none: threads may be NULL, which qsort must not get */
            qsort(smp.threads, smp.nthreads, sizeof(*smp.threads), thread_order);
        const async_snapshot *asp = ar ? &as : NULL;
        loop_state loops[MAX_LOOPS];
        loop_view lv = {loops, loop_watch(&s, &smp, (uint64_t)(o->watch_ms * 1e6), loops, MAX_LOOPS)};
        if (w)
            write_json(w, &s, &smp, asp, &lv);
        else
            print_text(&s, &smp, asp, &lv);
    }
    async_snapshot_free(&as);
    asyncio_reader_free(ar);
    sample_free(&smp);
    freezer_free(&fz);
    session_close(&s);
    return rc;
}

static aprof_status core_error(core_status st, const char *msg, aprof_error *err)
{
    return aprof_error_set(err, st == CORE_NO_MEMORY ? APROF_E_INTERNAL : APROF_E_BAD_INPUT, "%s",
                           msg);
}

/* dump --core: one look at the process a core file holds. Nothing moves in a core: one sample,
 * no retries, no watching. */
static aprof_status dump_core(const dump_opts *o, json_writer *w, aprof_error *err)
{
    core_file *core;
    char msg[768];
    core_status cst = core_open(o->core, &core, msg, sizeof msg);
    if (cst != CORE_OK)
        return core_error(cst, msg, err);
    for (size_t i = 0; i < o->search.n; i++)
        if (core_add_lib_search(core, o->search.dirs[i]) != 0) {
            core_close(core);
            return aprof_error_set(err, APROF_E_INTERNAL, "out of memory");
        }
    if (o->executable && core_set_executable(core, o->executable) != 0) {
        core_close(core);
        return aprof_error_set(err, APROF_E_INTERNAL, "out of memory");
    }
    session s;
    if (session_open_core(&s, core, err) != APROF_OK) {
        core_close(core);
        return err->status;
    }
    if (o->redact)
        session_enable_redaction(&s);
    s.want_state = true;
    aprof_status rc = APROF_OK;
    if (o->native && session_enable_native(&s, o->unwinder_name, err) != APROF_OK) {
        session_close(&s);
        core_close(core);
        return err->status;
    }
    aprof_sample smp;
    sample_init(&smp);
    async_snapshot as;
    async_snapshot_init(&as);
    asyncio_reader *ar = o->with_async ? session_asyncio_reader(&s) : NULL;
    if (o->with_async && !ar)
        rc = aprof_error_set(err, APROF_E_INTERNAL, "out of memory");
    else if (session_sample(&s, &smp) < 0 || (ar && asyncio_snapshot(ar, &smp, &as) < 0))
        rc = aprof_error_set(err, APROF_E_BAD_INPUT, "cannot read the threads of the process in "
                             "core file %s (its interpreter state is not in the core)", o->core);
    if (rc == APROF_OK) {
        if (smp.nthreads > 1) /* none: threads may be NULL, which qsort must not get */
            qsort(smp.threads, smp.nthreads, sizeof(*smp.threads), thread_order);
        loop_state loops[MAX_LOOPS];
        loop_view lv = {loops, loop_watch(&s, &smp, 0, loops, MAX_LOOPS)};
        if (w)
            write_json(w, &s, &smp, ar ? &as : NULL, &lv);
        else
            print_text(&s, &smp, ar ? &as : NULL, &lv);
    }
    async_snapshot_free(&as);
    asyncio_reader_free(ar);
    sample_free(&smp);
    session_close(&s);
    core_close(core);
    return rc;
}

static int finish_output(json_writer *w)
{
    if (w && json_finish(w) != 0)
        return -1;
    if (w && fputc('\n', stdout) == EOF)
        return -1;
    return fflush(stdout) != 0 || ferror(stdout) ? -1 : 0;
}

/* Why a process of --subprocesses is not dumped, in a few words (the unsupported version's
 * message names it). */
static const char *skip_reason(const aprof_error *e)
{
    switch (e->status) {
    case APROF_E_NOT_PYTHON: return "not Python";
    case APROF_E_NOT_READY: return "its interpreter is not initialised yet";
    case APROF_E_PERMISSION: return "permission denied";
    case APROF_E_NO_PROCESS: return "exited";
    default: return e->msg;
    }
}

#define MAX_DUMPED 1024

/* --subprocesses: the root and its descendants, each dumped in turn; the processes that
 * cannot be are listed with the reason. Fails only when none could be dumped. */
static int dump_tree(pid_t root, const dump_opts *o)
{
    pid_t *pids = malloc(MAX_DUMPED * sizeof(*pids));
    if (!pids)
        return cli_fail(EXIT_INTERNAL, "out of memory");
    pids[0] = root;
    int nd = proc_descendants(root, pids + 1, MAX_DUMPED - 1);
    if (nd < 0) {
        free(pids);
        return cli_fail(EXIT_NO_PROCESS, "no process %d", (int)root);
    }
    size_t n = 1 + (size_t)(nd < MAX_DUMPED - 1 ? nd : MAX_DUMPED - 1);
    json_writer jw, *w = NULL;
    if (o->json) {
        w = &jw;
        json_init(w, stdout);
        json_begin_object(w);
        json_kv_int(w, "pid", root);
        json_key(w, "processes");
        json_begin_array(w);
    }
    aprof_error root_err = {0};
    size_t dumped = 0;
    struct skipped {
        pid_t pid;
        aprof_error err;
    } *skipped = calloc(n, sizeof(*skipped));
    size_t nskipped = 0;
    for (size_t i = 0; i < n; i++) {
        aprof_error err = {0};
        if (!o->json && dumped)
            printf("\n");
        if (dump_process(pids[i], o, w, &err) == APROF_OK) {
            dumped++;
            continue;
        }
        if (i == 0)
            root_err = err;
        if (skipped)
            skipped[nskipped++] = (struct skipped){pids[i], err};
    }
    if (w) {
        json_end_array(w);
        json_key(w, "skipped");
        json_begin_array(w);
    } else if (nskipped && dumped) {
        printf("\nNot dumped:\n");
    }
    for (size_t i = 0; i < nskipped && dumped; i++) {
        char cmd[512];
        proc_cmdline(skipped[i].pid, cmd, sizeof(cmd));
        if (o->redact)
            snprintf(cmd, sizeof(cmd), "%s", REDACT_COMMAND_LINE);
        if (w) {
            json_begin_object(w);
            json_kv_int(w, "pid", skipped[i].pid);
            json_kv_string(w, "command", cmd);
            json_kv_string(w, "reason", skip_reason(&skipped[i].err));
            json_end_object(w);
        } else {
            printf("  %d  %s  (%s)\n", (int)skipped[i].pid, cmd, skip_reason(&skipped[i].err));
        }
    }
    if (w) {
        json_end_array(w);
        json_end_object(w);
    }
    free(skipped);
    free(pids);
    if (!dumped) {
        /* nothing at all: the root's own error (not Python, permission...) */
        if (root_err.status == APROF_OK)
            aprof_error_set(&root_err, APROF_E_NOT_PYTHON, "no Python process found");
        aprof_error e;
        aprof_error_set(&e, root_err.status, "%s; none of its %zu subprocesses could be dumped either",
                        root_err.msg, n - 1);
        return cli_report(&e);
    }
    if (finish_output(w) != 0)
        return cli_fail(EXIT_OUTPUT, "cannot write the output: %s", strerror(errno));
    return EXIT_OK;
}

int cmd_dump(int argc, char **argv)
{
    dump_opts o = {.with_async = true, .unwinder_name = "libunwind", .watch_ms = 100};
    pid_t pid = 0;
    const cli_option opts[] = {
        CLI_OPT_PID(&pid, "process to inspect"),
        {.name = "core", .arg = "FILE", .kind = OPT_STRING, .dest = &o.core,
         .help = "read a core file (gcore PID, or the kernel's) instead of a live process"},
        {.name = "executable", .arg = "PATH", .kind = OPT_STRING, .dest = &o.executable,
         .help = "with --core: the program file, when not where the core says"},
        {.name = "lib-search", .arg = "DIR", .kind = OPT_CUSTOM, .dest = &o.search,
         .parse = parse_lib_search, .invalid = "cannot be added (at most 16, not empty)",
         .help = "with --core: look for the files the core maps in DIR first, as DIR/PATH\n"
                 "then DIR/NAME (repeatable; for cores moved off their machine)"},
        {.name = "json", .short_name = 'j', .kind = OPT_FLAG, .dest = &o.json,
         .help = "machine-readable output (docs/dump.md#json-output)"},
        CLI_OPT_BLOCKING(&o.blocking,
                         "suspend the target's threads while reading (exact, but pauses it)"),
        CLI_OPT_NONBLOCKING(&o.nonblocking),
        CLI_OPT_NO_ASYNC(&o.with_async, "leave out the asyncio tasks"),
        CLI_OPT_NATIVE(&o.native),
        CLI_OPT_UNWINDER(&o.unwinder_name),
        CLI_OPT_REDACT(&o.redact),
        CLI_OPT_SUBPROCESSES(&o.subprocesses),
        {.name = "watch", .arg = "MS", .kind = OPT_DOUBLE, .dest = &o.watch_ms, .min = 0,
         .max = 60000,
         .help = "a busy event loop is watched this long (default 100; 0: not at all)\n"
                 "to tell how long it stays busy",
         .invalid = "is not a number of milliseconds (0-60000)"},
    };
    const cli_command c = {"dump", dump_usage, opts, sizeof(opts) / sizeof(opts[0]), NULL, false};
    int first;
    int rc = cli_options_parse(&c, argc, argv, &first);
    if (rc >= 0)
        return rc;
    if (o.core && (pid || o.subprocesses || o.blocking || o.nonblocking))
        return cli_fail(EXIT_USAGE, "dump: --core reads a core file: it does not go with --pid, "
                        "--subprocesses, --blocking or --nonblocking");
    if (!o.core && (o.executable || o.search.n))
        return cli_fail(EXIT_USAGE, "dump: --executable and --lib-search go with --core");
    if (o.core) {
        json_writer jw;
        if (o.json)
            json_init(&jw, stdout);
        aprof_error err = {0};
        if (dump_core(&o, o.json ? &jw : NULL, &err) != APROF_OK)
            return cli_report(&err);
        if (finish_output(o.json ? &jw : NULL) != 0)
            return cli_fail(EXIT_OUTPUT, "cannot write the output: %s", strerror(errno));
        return EXIT_OK;
    }
    if (!pid)
        return cli_fail(EXIT_USAGE, "dump: --pid or --core is required (see aprof dump --help)");
    if (o.subprocesses)
        return dump_tree(pid, &o);
    json_writer jw;
    if (o.json)
        json_init(&jw, stdout);
    aprof_error err = {0};
    if (dump_process(pid, &o, o.json ? &jw : NULL, &err) != APROF_OK)
        return cli_report(&err);
    if (finish_output(o.json ? &jw : NULL) != 0)
        return cli_fail(EXIT_OUTPUT, "cannot write the output: %s", strerror(errno));
    return EXIT_OK;
}
