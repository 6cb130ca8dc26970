/* aprof record: sample a process for a while and write a profile. */
#include "aggregate.h"
#include "async_record.h"
#include "cli.h"
#include "exitcodes.h"
#include "json.h"
#include "launch.h"
#include "native_report.h"
#include "outfile.h"
#include "record_report.h"
#include "sampler.h"
#include "session.h"
#include "stalls.h"
#include "threadstate.h"
#include "unwinder.h"
#include "writers.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char record_usage[] =
    "usage: aprof record --pid PID [options]\n"
    "       aprof record [options] -- CMD [ARGS...]\n"
    "\n"
    "Sample a CPython process until --duration ends, the target exits, or Ctrl-C, then write\n"
    "the profile and print a summary.\n"
    "\n"
    "  -p, --pid PID          attach to a running process\n"
    "  -o, --output FILE      output file (default aprof-PID.json, or .txt for collapsed;\n"
    "                         '-' for standard output)\n"
    "  -f, --format FMT       speedscope (default) or collapsed (folded stacks)\n"
    "  -r, --rate HZ          samples per second on average, at random moments (default 1000)\n"
    "  -d, --duration SECS    stop after this long (default: until the target exits or Ctrl-C)\n"
    "  -m, --mode MODE        wall (default): every sample; cpu: only samples of threads that\n"
    "                         were running on a CPU (per /proc)\n"
    "  -t, --threads SPEC     only these threads: comma-separated tids, thread names, or 'main'\n"
    "  -b, --blocking         suspend running threads for each sample (exact stacks, pauses the\n"
    "                         target briefly; needs ptrace permission)\n"
    "  -n, --native           also native (C) frames, merged with the Python frames in call\n"
    "                         order; stops the target briefly for each sample (ptrace;\n"
    "                         docs/native.md)\n"
    "      --unwinder NAME    native unwinder: libunwind (default) or dw\n"
    "  -g, --gil              keep only samples of threads holding the GIL\n"
    "                         (--native and --gil root every stack in a state frame such as\n"
    "                         <running, GIL> or <sleeping>)\n"
    "  -s, --summary FILE     also write a machine-readable JSON summary (docs/formats.md)\n"
    "      --no-async         do not read asyncio tasks (no task-stitched stacks, no awaiting\n"
    "                         profile, no task summary)\n"
    "      --await-rate HZ    task snapshots per second for the 'asyncio: awaiting' profile and\n"
    "                         the task summary (default 10)\n"
    "      --stall-threshold MS  a callback that keeps its event loop from polling this long\n"
    "                         is a stall (default 100, like asyncio's slow_callback_duration)\n"
    "  -q, --quiet            no progress line and no summary on stderr\n"
    "  -h, --help             this help\n"
    "\n"
    "In launch mode aprof exits with the command's exit code. Exit codes: docs/exit-codes.md.\n";

typedef enum out_format { FMT_SPEEDSCOPE, FMT_COLLAPSED } out_format;

#define MAX_FILTERS 64

typedef struct thread_filter {
    size_t n;
    bool main;
    pid_t tids[MAX_FILTERS];
    const char *names[MAX_FILTERS]; /* points into argv */
    size_t nnames;
} thread_filter;

typedef struct record_ctx {
    agg *a;
    stall_detector *stalls;
    async_record *async;     /* NULL with --no-async */
    aprof_frame *stitched;   /* scratch: a task-stitched stack */
    bool cpu_only;
    const thread_filter *filter;
    uint64_t thread_samples; /* thread stacks added */
    uint64_t torn;           /* thread stacks dropped: changed while read, nothing verified */
    uint64_t marked;         /* thread stacks kept in part: verified outer frames, <unreadable> */
    uint64_t idle_skipped;   /* cpu mode: thread stacks dropped because not running */
    bool gil_only;           /* --gil */
    uint64_t not_gil;        /* --gil: thread stacks dropped because not holding the GIL */
    bool count_states;       /* --native / --gil: count run states and GIL holders */
    threadstate_counts states;
    uint64_t oom;
} record_ctx;

static bool parse_threads(char *spec, thread_filter *f)
{
    memset(f, 0, sizeof(*f));
    for (char *tok = strtok(spec, ","); tok; tok = strtok(NULL, ",")) {
        if (!*tok)
            continue;
        pid_t tid;
        if (strcmp(tok, "main") == 0)
            f->main = true;
        else if (cli_parse_pid(tok, &tid) && f->n < MAX_FILTERS)
            f->tids[f->n++] = tid;
        else if (f->nnames < MAX_FILTERS)
            f->names[f->nnames++] = tok;
        else
            return false;
    }
    return f->main || f->n || f->nnames;
}

static bool filter_match(const thread_filter *f, const aprof_thread_sample *t)
{
    if (!f)
        return true;
    if (f->main && t->is_main)
        return true;
    for (size_t i = 0; i < f->n; i++)
        if (f->tids[i] == t->tid)
            return true;
    for (size_t i = 0; i < f->nnames; i++)
        if (t->name && strcmp(f->names[i], t->name) == 0)
            return true;
    return false;
}

static bool consume(void *ud, const aprof_sample *s, const sampler_stats *st)
{
    (void)st;
    record_ctx *r = ud;
    if (r->async)
        async_record_observe(r->async, s);
    if (r->stalls)
        stall_detector_feed(r->stalls, s);
    for (uint32_t i = 0; i < s->nthreads; i++) {
        const aprof_thread_sample *t = &s->threads[i];
        if (!filter_match(r->filter, t))
            continue;
        if ((t->flags & TSF_TORN) && !(t->flags & TSF_PARTIAL)) {
            r->torn++;
            continue;
        }
        if (r->cpu_only && t->state != TS_RUNNING) {
            r->idle_skipped++;
            continue;
        }
        if (r->count_states)
            threadstate_count(&r->states, t);
        if (r->gil_only && t->holds_gil != 1) {
            r->not_gil++;
            continue;
        }
        agg_profile *p = agg_thread_profile(r->a, t->tid, t->name);
        uint32_t n = r->async ? async_record_stitch(r->async, t, r->stitched, APROF_MAX_FRAMES) : 0;
        const aprof_frame *frames = n ? r->stitched : t->frames;
        if (!n)
            n = t->nframes;
        if (!p || agg_profile_add(r->a, p, frames, n, s->t_ns, s->weight_ns) != 0) {
            r->oom++;
            continue;
        }
        r->thread_samples++;
        r->marked += (t->flags & TSF_PARTIAL) != 0;
    }
    return true;
}

/* The "event loop stalls" profile: each stall's representative stack, weighted by its
 * duration, so the blocking code is one flame graph. */
static void add_stall_profile(record_ctx *r)
{
    if (stall_count(r->stalls) == 0)
        return;
    agg_profile *p = agg_profile_get(r->a, "event loop stalls", 0);
    for (size_t i = 0; p && i < stall_count(r->stalls); i++) {
        const stall_event *e = stall_at(r->stalls, i);
        agg_profile_add(r->a, p, e->stack, e->nstack, e->start_ns, e->end_ns - e->start_ns);
    }
}

/* The live progress line on stderr (a terminal), wiped at the end. */
static void progress_line(void *ud, const sampler_stats *st, uint64_t now, bool done)
{
    (void)ud;
    if (done) {
        fputs("\r\033[K", stderr);
        return;
    }
    double el = (double)(now - st->t_start_ns) / 1e9;
    fprintf(stderr, "\raprof: %.1f s, %llu samples (%.0f Hz), %llu errors   ", el,
            (unsigned long long)st->samples, el > 0 ? (double)st->samples / el : 0.0,
            (unsigned long long)st->errors);
}

static int write_profile(const agg *a, out_format fmt, const writer_meta *meta, outfile *of)
{
    FILE *fp = outfile_stream(of);
    int rc = fmt == FMT_SPEEDSCOPE ? write_speedscope(a, meta, fp) : write_collapsed(a, fp);
    if (rc != 0) {
        int e = errno;
        outfile_abort(of);
        errno = e;
        return -1;
    }
    return outfile_commit(of);
}

int cmd_record(int argc, char **argv)
{
    static const struct option opts[] = {
        {"pid", required_argument, NULL, 'p'},      {"output", required_argument, NULL, 'o'},
        {"format", required_argument, NULL, 'f'},   {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'}, {"mode", required_argument, NULL, 'm'},
        {"threads", required_argument, NULL, 't'},  {"blocking", no_argument, NULL, 'b'},
        {"summary", required_argument, NULL, 's'},  {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},           {"stall-threshold", required_argument, NULL, 'T'},
        {"no-async", no_argument, NULL, 'A'},       {"await-rate", required_argument, NULL, 'W'},
        {"native", no_argument, NULL, 'n'},         {"unwinder", required_argument, NULL, 'U'},
        {"gil", no_argument, NULL, 'g'},            {NULL, 0, NULL, 0},
    };
    bool native = false, gil_only = false;
    const char *unwinder_name = "libunwind";
    unwinder_kind unwinder_checked;
    pid_t pid = 0;
    const char *out_path = NULL, *summary_path = NULL;
    out_format fmt = FMT_SPEEDSCOPE;
    double rate = 1000, duration = 0, stall_ms = 100, await_hz = ASYNC_RECORD_DEFAULT_AWAIT_HZ;
    bool async_aware = true;
    bool cpu_only = false, blocking = false, quiet = false;
    thread_filter filter;
    bool have_filter = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+p:o:f:r:d:m:t:bs:qnU:gh", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (!cli_parse_pid(optarg, &pid))
                return cli_fail(EXIT_USAGE, "--pid: '%s' is not a process id", optarg);
            break;
        case 'o': out_path = optarg; break;
        case 'f':
            if (strcmp(optarg, "speedscope") == 0)
                fmt = FMT_SPEEDSCOPE;
            else if (strcmp(optarg, "collapsed") == 0 || strcmp(optarg, "folded") == 0)
                fmt = FMT_COLLAPSED;
            else
                return cli_fail(EXIT_USAGE, "--format: '%s' is not one of speedscope, collapsed", optarg);
            break;
        case 'r':
            if (!cli_parse_double(optarg, 0.1, 1e6, &rate))
                return cli_fail(EXIT_USAGE, "--rate: '%s' is not a rate between 0.1 and 1000000 Hz", optarg);
            break;
        case 'd':
            if (!cli_parse_double(optarg, 0.001, 1e7, &duration))
                return cli_fail(EXIT_USAGE, "--duration: '%s' is not a positive number of seconds", optarg);
            break;
        case 'm':
            if (strcmp(optarg, "cpu") == 0)
                cpu_only = true;
            else if (strcmp(optarg, "wall") == 0)
                cpu_only = false;
            else
                return cli_fail(EXIT_USAGE, "--mode: '%s' is not one of wall, cpu", optarg);
            break;
        case 't':
            if (!parse_threads(optarg, &filter))
                return cli_fail(EXIT_USAGE, "--threads: '%s' names no thread", optarg);
            have_filter = true;
            break;
        case 'b': blocking = true; break;
        case 'A': async_aware = false; break;
        case 'W':
            if (!cli_parse_double(optarg, 0.1, 1000, &await_hz))
                return cli_fail(EXIT_USAGE, "--await-rate: '%s' is not a rate between 0.1 and 1000 Hz", optarg);
            break;
        case 'T':
            if (!cli_parse_double(optarg, 0.1, 1e7, &stall_ms))
                return cli_fail(EXIT_USAGE, "--stall-threshold: '%s' is not a positive number of milliseconds", optarg);
            break;
        case 's': summary_path = optarg; break;
        case 'q': quiet = true; break;
        case 'n': native = true; break;
        case 'g': gil_only = true; break;
        case 'U':
            if (!unwinder_parse_kind(optarg, &unwinder_checked))
                return cli_fail(EXIT_USAGE, "--unwinder: '%s' is not one of libunwind, dw", optarg);
            unwinder_name = optarg;
            break;
        case 'h': fputs(record_usage, stdout); return EXIT_OK;
        default:
            return cli_fail(EXIT_USAGE, "record: unknown or incomplete option '%s' (see aprof record --help)",
                            argv[optind - 1]);
        }
    }
    char **cmd = optind < argc ? argv + optind : NULL;
    if (cmd && optind > 0 && strcmp(argv[optind - 1], "--") != 0)
        return cli_fail(EXIT_USAGE, "record: unexpected argument '%s' (put the command after --)", *cmd);
    if (!pid && !cmd)
        return cli_fail(EXIT_USAGE, "record: give --pid PID or a command after -- (see aprof record --help)");
    if (pid && cmd)
        return cli_fail(EXIT_USAGE, "record: --pid and a command are mutually exclusive");

    cli_install_stop_signals();
    pid_t child = 0;
    session s;
    if (cmd) {
        child = launch_spawn(cmd);
        if (child < 0)
            return cli_fail(EXIT_LAUNCH, "cannot run '%s': %s", cmd[0], strerror(errno));
        int exited = 0, status = 0;
        aprof_error err = {0};
        aprof_status rc = launch_wait_ready(child, &s, 30.0, &exited, &status, &err);
        if (exited) {
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            return cli_fail(EXIT_NO_PROCESS, "the command exited (status %d) before it could be sampled", code);
        }
        if (rc != APROF_OK) {
            launch_terminate(child, 1.0);
            return cli_report(&err);
        }
        pid = child;
    } else {
        aprof_error err = {0};
        if (session_open(&s, pid, &err) != APROF_OK)
            return cli_report(&err);
    }
    s.want_state = cpu_only;
    aprof_error err = {0};
    if ((native && session_enable_native(&s, unwinder_name, &err) != APROF_OK) ||
        ((native || gil_only) && session_enable_marks(&s, &err) != APROF_OK)) {
        session_close(&s);
        if (child)
            launch_terminate(child, 1.0);
        return cli_report(&err);
    }

    char default_out[64];
    if (!out_path) {
        snprintf(default_out, sizeof(default_out), "aprof-%d.%s", (int)pid,
                 fmt == FMT_SPEEDSCOPE ? "json" : "txt");
        out_path = default_out;
    }
    /* Open the output now, so that an unwritable path fails before any sampling. */
    outfile of;
    if (outfile_open(&of, out_path) != 0) {
        int e = errno;
        session_close(&s);
        if (child)
            launch_terminate(child, 1.0);
        return cli_fail(EXIT_OUTPUT, "cannot write %s: %s", out_path, strerror(e));
    }

    record_ctx r = {0};
    r.a = agg_new(s.st);
    r.cpu_only = cpu_only;
    r.filter = have_filter ? &filter : NULL;
    r.gil_only = gil_only;
    r.count_states = native || gil_only;
    r.stalls = stall_detector_new((uint64_t)(stall_ms * 1e6), s.st);
    if (async_aware && r.a) {
        r.async = async_record_new(&s, r.a, await_hz);
        r.stitched = malloc(APROF_MAX_FRAMES * sizeof(*r.stitched));
        if (r.async && r.stalls)
            stall_detector_set_task_resolver(r.stalls, async_record_task_name, r.async);
    }
    if (!r.a || !r.stalls || (async_aware && (!r.async || !r.stitched))) {
        outfile_abort(&of);
        session_close(&s);
        return cli_fail(EXIT_INTERNAL, "out of memory");
    }
    sampler_opts so = {.rate_hz = rate, .duration_s = duration, .blocking = blocking,
                       .child = child,
                       .progress = !quiet && isatty(STDERR_FILENO) ? progress_line : NULL};
    sampler_stats st;
    sampler_run(&s, &so, consume, &r, &st);
    stall_detector_finish(r.stalls, st.t_end_ns);
    add_stall_profile(&r);

    int exit_code = EXIT_OK;
    if (blocking && st.freeze_errno)
        cli_note("could not suspend the target with ptrace (%s); samples were taken without "
                 "suspending it (see docs/troubleshooting.md)", strerror(st.freeze_errno));
    char meta_name[1200];
    snprintf(meta_name, sizeof(meta_name), "aprof: %s (pid %d)", s.cmdline, (int)pid);
    writer_meta meta = {meta_name, "aprof@" APROF_VERSION};
    if (write_profile(r.a, fmt, &meta, &of) != 0) {
        exit_code = cli_fail(EXIT_OUTPUT, "cannot write %s: %s", out_path, strerror(errno));
        out_path = NULL;
    }
    native_report nrep = {&s, r.count_states ? &r.states : NULL, gil_only, r.not_gil};
    record_report rep = {
        .s = &s, .st = &st, .a = r.a, .stalls = r.stalls, .async = r.async, .native = &nrep,
        .requested_rate = rate,
        .stall_threshold_s = stall_ms / 1e3, .cpu_only = cpu_only,
        .thread_samples = r.thread_samples, .torn = r.torn, .marked = r.marked, .not_running = r.idle_skipped,
        .out_path = out_path, .format = fmt == FMT_SPEEDSCOPE ? "speedscope" : "collapsed",
    };
    if (summary_path && record_report_write_json(&rep, summary_path) != 0)
        exit_code = cli_fail(EXIT_OUTPUT, "cannot write %s: %s", summary_path, strerror(errno));
    if (!quiet)
        record_report_print(&rep, stderr);
    if (st.samples == 0 && aprof_stop_requested && exit_code == EXIT_OK && !child)
        exit_code = EXIT_INTERRUPTED;

    if (child) {
        int status = st.child_status;
        if (!st.child_reaped) {
            if (aprof_stop_requested) {
                /* Ctrl-C reached the whole foreground group; give the target time to finish. */
                launch_terminate(child, 5.0);
                status = 0;
                st.child_reaped = false;
            } else {
                waitpid(child, &status, 0);
                st.child_reaped = true;
            }
        }
        if (st.child_reaped) {
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            if (!quiet)
                fprintf(stderr, "aprof: the command exited with status %d\n", code);
            if (exit_code == EXIT_OK)
                exit_code = code;
        }
    } else if (st.target_exited && !quiet) {
        fprintf(stderr, "aprof: process %d exited\n", (int)pid);
    }
    stall_detector_free(r.stalls);
    async_record_free(r.async);
    free(r.stitched);
    agg_free(r.a);
    session_close(&s);
    return exit_code;
}
