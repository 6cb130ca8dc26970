/* aprof dump: one look at every thread's stack and at the asyncio task tree. */
#include "asyncio_print.h"
#include "asyncio_reader.h"
#include "cli.h"
#include "exitcodes.h"
#include "freezer.h"
#include "json.h"
#include "loop_watch.h"
#include "options.h"
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char dump_usage[] =
    "usage: aprof dump --pid PID [--json] [--blocking] [--no-async] [--native] [--redact]\n"
    "                  [--watch MS]\n"
    "\n"
    "Print every thread of a running CPython process with its Python stack, innermost frame\n"
    "first (--json: outermost first), then every asyncio task of every event loop as a tree\n"
    "of who awaits whom, with each task's coroutine stack (docs/asyncio.md).\n"
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

static void print_loop_text(const loop_state *l)
{
    if (!l->busy)
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
    printf("Process %d: %s\n", (int)s->pid, s->cmdline);
    printf("Python %s (%s%s)\n", s->rt.version, s->rt.binary, s->rt.stripped ? ", stripped" : "");
    for (uint32_t i = 0; i < smp->nthreads; i++) {
        const aprof_thread_sample *t = &smp->threads[i];
        printf("\nThread %d \"%s\"%s [%s]\n", (int)t->tid, t->name, t->is_main ? " (main)" : "",
               state_name(t->state));
        const loop_state *l = loop_of(lv, t->tid);
        if (l)
            print_loop_text(l);
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

static int print_json(const session *s, const aprof_sample *smp, const async_snapshot *as,
                      const loop_view *lv)
{
    json_writer w;
    json_init(&w, stdout);
    json_begin_object(&w);
    json_kv_int(&w, "pid", s->pid);
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
    if (json_finish(&w) != 0)
        return -1;
    return fputc('\n', stdout) == EOF || fflush(stdout) != 0 ? -1 : 0;
}

static bool sample_torn(const aprof_sample *smp)
{
    for (uint32_t i = 0; i < smp->nthreads; i++)
        if (smp->threads[i].flags & TSF_TORN)
            return true;
    return false;
}

/* A non-blocking read can catch a stack mid-change: try a few times for a clean one. The asyncio
 * snapshot (when ar is set) is taken right after the clean (or last) thread sample, inside the
 * same suspension in blocking mode. */
static int take_clean_sample(session *s, aprof_sample *smp, bool blocking, freezer *fz,
                             asyncio_reader *ar, async_snapshot *as)
{
    enum { ATTEMPTS = 20 };
    int rc = -1;
    for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
        sample_reset(smp);
        if (blocking && freezer_stop(fz) < 0)
            return -2;
        rc = session_sample(s, smp);
        bool torn = rc >= 0 && sample_torn(smp);
        if (rc >= 0 && ar && (!torn || attempt + 1 == ATTEMPTS) && asyncio_snapshot(ar, smp, as) < 0)
            rc = -1;
        if (blocking)
            freezer_resume(fz);
        if (rc < 0)
            return -1;
        if (!torn)
            break;
    }
    return rc;
}

int cmd_dump(int argc, char **argv)
{
    bool native = false;
    const char *unwinder_name = "libunwind";
    pid_t pid = 0;
    bool json = false, blocking = false, with_async = true, redact = false;
    double watch_ms = 100;
    const cli_option opts[] = {
        CLI_OPT_PID(&pid, "process to inspect"),
        {.name = "json", .short_name = 'j', .kind = OPT_FLAG, .dest = &json,
         .help = "machine-readable output (docs/formats.md)"},
        CLI_OPT_BLOCKING(&blocking,
                         "suspend the target's threads while reading (exact, but pauses it)"),
        CLI_OPT_NO_ASYNC(&with_async, "leave out the asyncio tasks"),
        CLI_OPT_NATIVE(&native),
        CLI_OPT_UNWINDER(&unwinder_name),
        CLI_OPT_REDACT(&redact),
        {.name = "watch", .arg = "MS", .kind = OPT_DOUBLE, .dest = &watch_ms, .min = 0,
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
    if (!pid)
        return cli_fail(EXIT_USAGE, "dump: --pid is required (see aprof dump --help)");

    session s;
    aprof_error err = {0};
    if (session_open(&s, pid, &err) != APROF_OK)
        return cli_report(&err);
    if (redact)
        session_enable_redaction(&s);
    s.want_state = true;
    if (native) {
        if (session_enable_native(&s, unwinder_name, &err) != APROF_OK) {
            session_close(&s);
            return cli_report(&err);
        }
        blocking = false; /* --native stops the target for the sample itself */
    }
    freezer fz;
    freezer_init(&fz, pid);
    aprof_sample smp;
    sample_init(&smp);
    async_snapshot as;
    async_snapshot_init(&as);
    asyncio_reader *ar = with_async ? session_asyncio_reader(&s) : NULL;
    if (with_async && !ar) {
        freezer_free(&fz);
        session_close(&s);
        return cli_fail(EXIT_INTERNAL, "out of memory");
    }
    int n = take_clean_sample(&s, &smp, blocking, &fz, ar, &as);
    int exit_code = EXIT_OK;
    if (n == -2) {
        exit_code = fz.last_errno == ESRCH ? cli_fail(EXIT_NO_PROCESS, "process %d exited", (int)pid)
                  : cli_fail(EXIT_PERMISSION, "cannot suspend process %d with ptrace: %s (see "
                             "docs/troubleshooting.md)", (int)pid, strerror(fz.last_errno));
    } else if (n < 0) {
        exit_code = errno == ESRCH ? cli_fail(EXIT_NO_PROCESS, "process %d exited", (int)pid)
                                   : cli_fail(EXIT_INTERNAL, "cannot read the threads of process %d",
                                              (int)pid);
    } else {
        qsort(smp.threads, smp.nthreads, sizeof(*smp.threads), thread_order);
        const async_snapshot *asp = ar ? &as : NULL;
        loop_state loops[MAX_LOOPS];
        loop_view lv = {loops, loop_watch(&s, &smp, (uint64_t)(watch_ms * 1e6), loops, MAX_LOOPS)};
        int wrc = json ? print_json(&s, &smp, asp, &lv)
                       : (print_text(&s, &smp, asp, &lv), fflush(stdout));
        if (wrc != 0)
            exit_code = cli_fail(EXIT_OUTPUT, "cannot write the output: %s", strerror(errno));
    }
    async_snapshot_free(&as);
    asyncio_reader_free(ar);
    sample_free(&smp);
    freezer_free(&fz);
    session_close(&s);
    return exit_code;
}
