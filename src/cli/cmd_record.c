/* aprof record: sample a process for a while and write a profile. */
#include "aggregate.h"
#include "async_record.h"
#include "cli.h"
#include "clock.h"
#include "exitcodes.h"
#include "grow.h"
#include "html_report.h"
#include "json.h"
#include "launch.h"
#include "native_report.h"
#include "options.h"
#include "outfile.h"
#include "record_report.h"
#include "record_segments.h"
#include "proc.h"
#include "procset.h"
#include "redact.h"
#include "pyroscope_push.h"
#include "sampler.h"
#include "session.h"
#include "stalls.h"
#include "threadstate.h"
#include "timeline.h"
#include "unwinder.h"
#include "writers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char record_usage[] =
    "usage: aprof record --pid PID [options]\n"
    "       aprof record [options] -- CMD [ARGS...]\n"
    "\n"
    "Sample a CPython process until --duration ends, the target exits, or Ctrl-C, then write\n"
    "the profile and print a summary.\n"
    "\n";

static const char record_tail[] =
    "\n"
    "In launch mode aprof exits with the command's exit code. Exit codes: docs/exit-codes.md.\n";

/* the order of format_names: "folded" is another name for collapsed */
/* Past 10 minutes a time-ordered view at the sample rate is unreadable and its file huge: the
 * speedscope output merges each thread's samples of one stack within 1 s (bench/long_run.py). */
#define AUTO_RESOLUTION_AFTER_NS (600ull * 1000000000ull)
#define AUTO_RESOLUTION_NS 1000000000ull
#define AUTO_RESOLUTION_TEXT "1 s"
#define DEFAULT_PUSH_SEGMENT_S 10.0 /* as Pyroscope's own agents upload */
#define PUSH_GRACE_S 5.0            /* at the end, how long unsent segments may still take */

typedef enum out_format {
    FMT_SPEEDSCOPE, FMT_COLLAPSED, FMT_FOLDED, FMT_PPROF, FMT_TRACE, FMT_HTML
} out_format;
enum { MODE_WALL, MODE_CPU };
static const char *const format_names[] = {"speedscope", "collapsed", "folded", "pprof", "trace",
                                            "html", NULL};
/* what the summary calls each format, and the default output file's extension */
static const char *const format_labels[] = {"speedscope", "collapsed", "collapsed", "pprof", "trace",
                                             "html"};
static const char *const format_exts[] = {"json", "txt", "txt", "pb.gz", "trace.json", "html"};
static const char *const mode_names[] = {"wall", "cpu", NULL};

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
    task_timeline *timeline; /* -f trace and html: loops' busy stretches and tasks' segments */
    agg *cpu_a;              /* -f html: the samples of threads on a CPU (its cpu view) */
    aprof_frame *stitched;   /* scratch: a task-stitched stack */
    bool cpu_only;
    const thread_filter *filter;
    uint64_t thread_samples; /* thread stacks added */
    uint64_t torn;           /* thread stacks dropped: changed while read, nothing verified */
    uint64_t marked;         /* thread stacks kept in part: verified outer frames, <unreadable> */
    uint64_t gc_samples, gc_ns; /* thread stacks of the cyclic GC running, and their weight */
    uint64_t idle_skipped;   /* cpu mode: thread stacks dropped because not running */
    bool gil_only;           /* --gil */
    uint64_t not_gil;        /* --gil: thread stacks dropped because not holding the GIL */
    bool count_states;       /* --native / --gil: count run states and GIL holders */
    threadstate_counts states;
    uint64_t oom;
    /* writing profiles (all of them, or one per --segment) */
    strtab *st;
    int fmt;
    double time_resolution;  /* the option: -1 automatic */
    char meta_name[1200];
    const char *program;     /* the target's command line */
    int64_t pid;
    double rate;
    int64_t wall_minus_mono; /* CLOCK_REALTIME - CLOCK_MONOTONIC, ns */
    size_t stalls_added;     /* stall events already in a profile */
    /* --segment */
    uint64_t seg_ns, seg_start_ns;
    const char *seg_template;
    unsigned segments, segments_failed;
    char first_segment[4096], last_segment[4096];
    uint64_t last_resolution_ns;
    bool segment_files;      /* --segment writes files (with --push: only when -o is given) */
    pyroscope_push *push;    /* --push */
    unsigned segments_pushed;
    uint64_t seg_write_max_ns;  /* the longest pause of sampling to end a segment */
    const char *push_url;
    bool push_warned;
    /* --subprocesses */
    procset *procs;          /* the processes followed (NULL: one target) */
    const struct record_opts *ro;
    double await_hz;
    bool exact_task_names;
    record_proc_info *pinfo; /* every process met */
    size_t npinfo, cap_pinfo;
    bool finishing;          /* the recording has ended: processes leave with it */
    strtab *own_st;          /* the strings of every process (one target: its session's) */
    char root_cmd[1024];
    aprof_status skip_status; /* why the root could not be sampled (APROF_OK: it was) */
    char skip_msg[768];
} record_ctx;

/* A followed process's part of the recording (procset_proc.user). */
typedef struct proc_unit {
    async_record *async;     /* NULL with --no-async */
    size_t info;             /* index in record_ctx.pinfo */
} proc_unit;

/* --threads: dest is a thread_filter; the spec (in argv) is cut into its names. */
static bool parse_threads(const char *arg, void *dest)
{
    thread_filter *f = dest;
    char *spec = (char *)arg;
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

/* --segment / --push: write (or queue) the segment that ends at end_ns and start the next one
 * with an empty aggregator. A file that cannot be written is reported and counted; sampling
 * goes on. Writing happens in the sampling thread: the target is not sampled meanwhile (tens
 * of milliseconds for a minute of samples). */
static void roll_segment(record_ctx *r, uint64_t end_ns, bool last);

/* --subprocesses: a process's label in profile names (its command line, shortened). */
#define LABEL_MAX 60
static void process_label(const session *s, char *buf, size_t len)
{
    proc_cmdline_label(s->cmdline, LABEL_MAX, buf, len);
}

/* Name its thread profiles and its awaiting profile after the process (in r->a). */
static void label_process(record_ctx *r, procset_proc *p)
{
    char label[80], prefix[128];
    process_label(p->s, label, sizeof(label));
    agg_process_label(r->a, p->s->src.pid, label);
    if (r->cpu_a)
        agg_process_label(r->cpu_a, p->s->src.pid, label);
    proc_unit *u = p->user;
    if (u && u->async) {
        async_record_set_timeline(u->async, r->timeline);
        async_record_set_agg(u->async, r->a);
        snprintf(prefix, sizeof(prefix), "Process %d \"%s\": ", (int)p->s->src.pid, label);
        async_record_set_profile_prefix(u->async, prefix);
    }
}

static record_proc_info *new_info(record_ctx *r, pid_t pid)
{
    if (!grow_array((void **)&r->pinfo, &r->cap_pinfo, r->npinfo + 1, sizeof(*r->pinfo), 16,
                    SIZE_MAX))
        return NULL;
    record_proc_info *i = &r->pinfo[r->npinfo++];
    memset(i, 0, sizeof(*i));
    i->pid = pid;
    return i;
}

/* procset hooks: a Python process joined; turn on what the options ask for. */
static bool proc_joined(void *ud, procset_proc *p, char *why, size_t whylen);
static void proc_left(void *ud, procset_proc *p);
static void proc_skipped(void *ud, pid_t pid, const char *cmdline, aprof_status st,
                         const char *msg);

static bool consume(void *ud, const aprof_sample *s, const sampler_stats *st)
{
    (void)st;
    record_ctx *r = ud;
    async_record *async = r->async;
    if (r->procs) {
        procset_proc *pp = procset_find(r->procs, s->pid);
        proc_unit *u = pp ? pp->user : NULL;
        async = u ? u->async : NULL;
    }
    if (async)
        async_record_observe(async, s);
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
        agg_profile *p = agg_thread_profile(r->a, s->pid, t->tid, t->name);
        uint32_t n = async ? async_record_stitch(async, t, r->stitched, APROF_MAX_FRAMES) : 0;
        const aprof_frame *frames = n ? r->stitched : t->frames;
        if (!n)
            n = t->nframes;
        if (!p || agg_profile_add(r->a, p, frames, n, s->t_ns, s->weight_ns) != 0) {
            r->oom++;
            continue;
        }
        r->thread_samples++;
        r->marked += (t->flags & TSF_MARKED) != 0;
        if (r->cpu_a && t->state == TS_RUNNING) {
            agg_profile *cp = agg_thread_profile(r->cpu_a, s->pid, t->tid, t->name);
            if (!cp || agg_profile_add(r->cpu_a, cp, frames, n, s->t_ns, s->weight_ns) != 0)
                r->oom++;
        }
        if (t->flags & TSF_GC) {
            r->gc_samples++;
            r->gc_ns += s->weight_ns;
        }
    }
    if (r->seg_ns && s->t_ns >= r->seg_start_ns + r->seg_ns)
        roll_segment(r, s->t_ns, false);
    return true;
}

/* The "event loop stalls" profile: each stall's representative stack, weighted by its
 * duration, so the blocking code is one flame graph. */
static void add_stall_profile(record_ctx *r)
{
    if (stall_count(r->stalls) <= r->stalls_added)
        return;
    agg_profile *p = agg_profile_get(r->a, "event loop stalls", 0);
    for (size_t i = r->stalls_added; p && i < stall_count(r->stalls); i++) {
        const stall_event *e = stall_at(r->stalls, i);
        agg_profile_add(r->a, p, e->stack, e->nstack, e->start_ns, e->end_ns - e->start_ns);
    }
    r->stalls_added = stall_count(r->stalls); /* with --segment: in the segment they ended in */
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

static int write_profile(const record_ctx *r, int fmt, const writer_meta *meta,
                         const pprof_meta *pm, const trace_meta *tm, outfile *of)
{
    FILE *fp = outfile_stream(of);
    int rc = fmt == FMT_SPEEDSCOPE ? write_speedscope(r->a, meta, fp)
             : fmt == FMT_PPROF    ? write_pprof(r->a, pm, fp)
             : fmt == FMT_TRACE    ? write_trace(r->a, r->timeline, r->stalls, tm, fp)
                                   : write_collapsed(r->a, fp);
    if (rc != 0) {
        int e = errno;
        outfile_abort(of);
        errno = e;
        return -1;
    }
    return outfile_commit(of);
}

/* The writers' metadata of a recording sampled over [start_ns, end_ns] (CLOCK_MONOTONIC). */
static void recording_meta(const record_ctx *r, uint64_t start_ns, uint64_t end_ns,
                           writer_meta *meta, pprof_meta *pm)
{
    uint64_t recorded_ns = end_ns > start_ns ? end_ns - start_ns : 0;
    *meta = (writer_meta){r->meta_name, "aprof@" APROF_VERSION, 0};
    if (r->time_resolution >= 0)
        meta->resolution_ns = (uint64_t)(r->time_resolution * 1e9);
    else if (recorded_ns > AUTO_RESOLUTION_AFTER_NS)
        meta->resolution_ns = AUTO_RESOLUTION_NS;
    int64_t wall = (int64_t)start_ns + r->wall_minus_mono;
    *pm = (pprof_meta){
        .pid = r->pid, .program = r->program, .cpu = r->cpu_only,
        .time_nanos = wall > 0 ? (uint64_t)wall : 0, .duration_nanos = recorded_ns,
        .period_nanos = r->rate > 0 ? (uint64_t)(1e9 / r->rate) : 0,
    };
}

/* Write what r->a holds, sampled over [start_ns, end_ns], to an open outfile as format fmt.
 * 0, or -1 (errno; the outfile is aborted). */
static int write_recording(record_ctx *r, int fmt, outfile *of, uint64_t start_ns, uint64_t end_ns)
{
    writer_meta meta;
    pprof_meta pm;
    recording_meta(r, start_ns, end_ns, &meta, &pm);
    if (fmt == r->fmt)
        r->last_resolution_ns = fmt == FMT_SPEEDSCOPE ? meta.resolution_ns : 0;
    trace_meta tm = {.name = r->meta_name, .exporter = "aprof@" APROF_VERSION,
                     .process_name = r->program, .pid = r->pid, .start_ns = start_ns,
                     .end_ns = end_ns, .rate = r->rate};
    return write_profile(r, fmt, &meta, &pm, &tm, of);
}

/* --push: queue the segment [start_ns, end_ns] as pprof for the sending thread. */
static void push_segment(record_ctx *r, uint64_t start_ns, uint64_t end_ns)
{
    writer_meta meta;
    pprof_meta pm;
    recording_meta(r, start_ns, end_ns, &meta, &pm);
    char *body = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&body, &len);
    if (!mf)
        return;
    int rc = write_pprof(r->a, &pm, mf);
    if (fclose(mf) != 0 || rc != 0) {
        free(body);
        return;
    }
    uint64_t from = pm.time_nanos / 1000000000ull;
    uint64_t until = (pm.time_nanos + pm.duration_nanos + 999999999ull) / 1000000000ull;
    pyroscope_push_enqueue(r->push, body, len, from, until > from ? until : from + 1);
    r->segments_pushed++;
    push_stats ps;
    pyroscope_push_stats(r->push, &ps);
    if (ps.failures && !r->push_warned) {
        r->push_warned = true;
        cli_note("cannot push to %s: %s (retrying in the background; recording goes on)",
                 r->push_url, ps.last_error);
    }
}

/* --segment: the segment's file, named after its start. A failure is reported once. */
static void write_segment_file(record_ctx *r, uint64_t end_ns)
{
    char path[4096];
    int64_t wall = (int64_t)r->seg_start_ns + r->wall_minus_mono;
    outfile of;
    bool named = segment_path(path, sizeof(path), r->seg_template, format_exts[r->fmt],
                              wall > 0 ? (uint64_t)wall : 0);
    if (!named)
        errno = ENAMETOOLONG;
    if (!named || outfile_open(&of, path) != 0 ||
        write_recording(r, r->fmt, &of, r->seg_start_ns, end_ns) != 0) {
        if (r->segments_failed++ == 0)
            cli_note("cannot write segment %s: %s (sampling goes on)", path, strerror(errno));
        return;
    }
    if (r->segments++ == 0)
        snprintf(r->first_segment, sizeof(r->first_segment), "%s", path);
    snprintf(r->last_segment, sizeof(r->last_segment), "%s", path);
}

static void roll_segment(record_ctx *r, uint64_t end_ns, bool last)
{
    uint64_t t0 = aprof_now_ns();
    add_stall_profile(r);
    if (r->push)
        push_segment(r, r->seg_start_ns, end_ns);
    if (r->segment_files)
        write_segment_file(r, end_ns);
    uint64_t took = aprof_now_ns() - t0;
    if (took > r->seg_write_max_ns)
        r->seg_write_max_ns = took;
    if (last)
        return; /* the summary's top functions: those of the last segment */
    agg *next = agg_new(r->st);
    if (next) {
        agg_free(r->a);
        r->a = next;
        if (r->async)
            async_record_set_agg(r->async, next);
        for (size_t i = 0; r->procs && i < r->procs->n; i++)
            label_process(r, r->procs->procs[i]);
    } /* else: out of memory; the next segment also holds this one's samples */
    r->seg_start_ns = end_ns;
}

/* Everything the command line asks for. */
typedef struct record_opts {
    pid_t pid;
    char **cmd; /* launch mode: the command after --, NULL otherwise */
    const char *out_path, *summary_path, *folded_path, *unwinder_name, *push_url, *push_name;
    int fmt, mode;
    double rate, duration, stall_ms, await_hz, time_resolution, segment_s;
    bool async_aware, blocking, nonblocking, quiet, native, gil_only, exact_task_names, redact;
    bool subprocesses;
    thread_filter filter; /* used when filter.n || filter.nnames || filter.main */
} record_opts;

/* -1 to go on, or the exit code. */
static int parse_options(int argc, char **argv, record_opts *ro)
{
    *ro = (record_opts){.unwinder_name = "libunwind", .rate = 1000, .stall_ms = 100,
                        .await_hz = ASYNC_RECORD_DEFAULT_AWAIT_HZ, .async_aware = true,
                        .time_resolution = -1};
    const cli_option opts[] = {
        CLI_OPT_PID(&ro->pid, "attach to a running process"),
        {.name = "output", .short_name = 'o', .arg = "FILE", .kind = OPT_STRING,
         .dest = &ro->out_path,
         .help = "output file (default aprof-PID.json; .txt for collapsed, .pb.gz for\n"
                 "pprof, .trace.json for trace, .html for html; '-' for standard output)"},
        {.name = "format", .short_name = 'f', .arg = "FMT", .kind = OPT_CHOICE,
         .dest = &ro->fmt, .choices = format_names,
         .help = "speedscope (default), collapsed (folded stacks), pprof\n"
                 "(gzipped profile.proto, for go tool pprof and Pyroscope), trace\n"
                 "(Chrome trace events: loop, task and thread timelines for Perfetto) or\n"
                 "html (a self-contained report: flame graphs, stalls, loops, tasks)",
         .invalid = "is not one of speedscope, collapsed, pprof, trace, html"},
        CLI_OPT_RATE(&ro->rate),
        {.name = "duration", .short_name = 'd', .arg = "SECS", .kind = OPT_DOUBLE,
         .dest = &ro->duration, .min = 0.001, .max = 1e7,
         .help = "stop after this long (default: until the target exits or Ctrl-C)",
         .invalid = "is not a positive number of seconds"},
        {.name = "mode", .short_name = 'm', .arg = "MODE", .kind = OPT_CHOICE, .dest = &ro->mode,
         .choices = mode_names,
         .help = "wall (default): every sample; cpu: only samples of threads that\n"
                 "were running on a CPU (per /proc)",
         .invalid = "is not one of wall, cpu"},
        {.name = "threads", .short_name = 't', .arg = "SPEC", .kind = OPT_CUSTOM,
         .dest = &ro->filter, .parse = parse_threads,
         .help = "only these threads: comma-separated tids, thread names, or 'main'",
         .invalid = "names no thread"},
        CLI_OPT_BLOCKING(&ro->blocking,
                         "suspend running threads for each sample (exact stacks, pauses the\n"
                         "target briefly; needs ptrace permission)"),
        CLI_OPT_NONBLOCKING(&ro->nonblocking),
        CLI_OPT_NATIVE(&ro->native),
        CLI_OPT_UNWINDER(&ro->unwinder_name),
        {.name = "gil", .short_name = 'g', .kind = OPT_FLAG, .dest = &ro->gil_only,
         .help = "keep only samples of threads holding the GIL\n"
                 "(--native and --gil root every stack in a state frame such as\n"
                 "<running, GIL> or <sleeping>)"},
        {.name = "summary", .short_name = 's', .arg = "FILE", .kind = OPT_STRING,
         .dest = &ro->summary_path,
         .help = "also write a machine-readable JSON summary (docs/formats.md)"},
        {.name = "folded", .arg = "FILE", .kind = OPT_STRING, .dest = &ro->folded_path,
         .help = "also write the same recording as folded stacks (collapsed) to FILE"},
        CLI_OPT_NO_ASYNC(&ro->async_aware,
                         "do not read asyncio tasks (no task-stitched stacks, no awaiting\n"
                         "profile, no task summary)"),
        {.name = "await-rate", .arg = "HZ", .kind = OPT_DOUBLE, .dest = &ro->await_hz,
         .min = 0.1, .max = 1000,
         .help = "task snapshots per second for the 'asyncio: awaiting' profile and\n"
                 "the task summary (default 10)",
         .invalid = "is not a rate between 0.1 and 1000 Hz"},
        CLI_OPT_EXACT_TASK_NAMES(&ro->exact_task_names),
        CLI_OPT_REDACT(&ro->redact),
        CLI_OPT_SUBPROCESSES(&ro->subprocesses),
        {.name = "segment", .arg = "SECS", .kind = OPT_DOUBLE, .dest = &ro->segment_s,
         .min = 1, .max = 86400,
         .help = "write a complete profile every SECS seconds until stopped, each\n"
                 "named after its start time: -o out.json gives out-20261206T012345Z.json",
         .invalid = "is not a number of seconds between 1 and 86400"},
        {.name = "push", .arg = "URL", .kind = OPT_STRING, .dest = &ro->push_url,
         .help = "send every segment (--segment, default 10 s) as pprof to a Grafana\n"
                 "Pyroscope server's /ingest API at URL (http://HOST:PORT); files are\n"
                 "written too only with -o"},
        {.name = "push-name", .arg = "NAME", .kind = OPT_STRING, .dest = &ro->push_name,
         .help = "the application name for --push (default aprof); labels pid and\n"
                 "hostname are added"},
        {.name = "time-resolution", .arg = "SECS", .kind = OPT_DOUBLE,
         .dest = &ro->time_resolution, .min = 0, .max = 3600,
         .help = "speedscope: merge each thread's samples of one stack within windows\n"
                 "this long (0: keep every sample; default: 0 up to 10 minutes of\n"
                 "recording, " AUTO_RESOLUTION_TEXT " beyond, which keeps an hour under 100 MB)",
         .invalid = "is not a number of seconds between 0 and 3600"},
        CLI_OPT_STALL_THRESHOLD(&ro->stall_ms),
        {.name = "quiet", .short_name = 'q', .kind = OPT_FLAG, .dest = &ro->quiet,
         .help = "no progress line and no summary on stderr"},
    };
    const cli_command c = {"record", record_usage, opts, sizeof(opts) / sizeof(opts[0]),
                           record_tail, true};
    int first;
    int rc = cli_options_parse(&c, argc, argv, &first);
    if (rc >= 0)
        return rc;
    ro->cmd = first < argc ? argv + first : NULL;
    if (!ro->pid && !ro->cmd)
        return cli_fail(EXIT_USAGE, "record: give --pid PID or a command after -- (see aprof record --help)");
    if (ro->pid && ro->cmd)
        return cli_fail(EXIT_USAGE, "record: --pid and a command are mutually exclusive");
    if (ro->fmt == FMT_FOLDED)
        ro->fmt = FMT_COLLAPSED;
    if (ro->segment_s > 0 && ro->out_path && strcmp(ro->out_path, "-") == 0)
        return cli_fail(EXIT_USAGE, "record: --segment writes files: it cannot write to standard output (-o -)");
    char why[512];
    if (ro->push_url && !pyroscope_push_check_url(ro->push_url, why, sizeof(why)))
        return cli_fail(EXIT_USAGE, "record: %s", why);
    if (ro->push_url && ro->segment_s == 0)
        ro->segment_s = DEFAULT_PUSH_SEGMENT_S;
    if ((ro->fmt == FMT_TRACE || ro->fmt == FMT_HTML) && (ro->segment_s > 0 || ro->push_url))
        return cli_fail(EXIT_USAGE, "record: -f %s is one file for the whole recording: it cannot be combined with --segment or --push",
                        format_names[ro->fmt]);
    if (ro->segment_s > 0 && ro->folded_path)
        return cli_fail(EXIT_USAGE, "record: --folded cannot be combined with --segment (use -f collapsed)");
    if (ro->subprocesses && ro->native)
        return cli_fail(EXIT_USAGE, "record: --native cannot be combined with --subprocesses yet (docs/limits.md)");
    return -1;
}

/* ---- --subprocesses: the processes of a recording ------------------------------------------- */

static const char *skip_reason(aprof_status st)
{
    switch (st) {
    case APROF_E_NOT_PYTHON: return "not Python";
    case APROF_E_NOT_READY: return "its interpreter never started";
    case APROF_E_UNSUPPORTED: return "unsupported Python";
    case APROF_E_PERMISSION: return "permission denied";
    default: return "unreadable";
    }
}

static void proc_skipped(void *ud, pid_t pid, const char *cmdline, aprof_status st,
                         const char *msg)
{
    record_ctx *r = ud;
    /* A process followed that left alive (it exec'd) before it gave a single sample, and is now
     * another program: it is listed once, as what it became. (A fork that execs at once, like
     * subprocess's, can be found while it is still a copy of its Python parent.) */
    record_proc_info *info = NULL;
    for (size_t i = r->npinfo; i-- > 0;) {
        record_proc_info *o = &r->pinfo[i];
        if (o->pid != pid)
            continue;
        if (o->sampled && o->left_ns && !o->exited && o->samples == 0)
            info = o;
        break;
    }
    if (info)
        memset(info, 0, sizeof(*info)), info->pid = pid;
    else if (!(info = new_info(r, pid)))
        return;
    snprintf(info->command, sizeof(info->command), "%s",
             r->ro->redact ? REDACT_COMMAND_LINE : cmdline);
    /* the unsupported version's message names it; the others say the same for every process */
    snprintf(info->reason, sizeof(info->reason), "%s",
             st == APROF_E_UNSUPPORTED || st == APROF_E_INTERNAL ? msg : skip_reason(st));
}

static bool proc_joined(void *ud, procset_proc *p, char *why, size_t whylen)
{
    record_ctx *r = ud;
    const record_opts *ro = r->ro;
    session *s = p->s;
    aprof_error err = {0};
    if (ro->redact)
        session_enable_redaction(s);
    s->want_state = ro->mode == MODE_CPU || ro->fmt == FMT_HTML; /* html: its cpu view */
    if (ro->gil_only && session_enable_marks(s, &err) != APROF_OK) {
        snprintf(why, whylen, "%s", err.msg);
        return false;
    }
    proc_unit *u = calloc(1, sizeof(*u));
    if (u && ro->async_aware)
        u->async = async_record_new(s, r->a, ro->await_hz, ro->exact_task_names);
    record_proc_info *info = u && (u->async || !ro->async_aware) ? new_info(r, s->src.pid) : NULL;
    if (!info) {
        if (u)
            async_record_free(u->async);
        free(u);
        snprintf(why, whylen, "out of memory");
        return false;
    }
    snprintf(info->command, sizeof(info->command), "%s", s->cmdline);
    snprintf(info->python_version, sizeof(info->python_version), "%s", s->rt.version);
    info->sampled = true;
    info->joined_ns = aprof_now_ns();
    u->info = r->npinfo - 1;
    p->user = u;
    label_process(r, p);
    return true;
}

static void proc_left(void *ud, procset_proc *p)
{
    record_ctx *r = ud;
    proc_unit *u = p->user;
    if (!u)
        return;
    record_proc_info *info = &r->pinfo[u->info];
    info->samples = p->samples;
    if (!r->finishing) {
        info->left_ns = aprof_now_ns();
        info->exited = p->exited;
    }
    if (u->async && async_record_active(u->async)) {
        info->tasks_known = true;
        info->tasks = *async_record_task_stats(u->async);
    }
    async_record_free(u->async);
    free(u);
    p->user = NULL;
}

/* The task of a stalled callback, from its process's task snapshot. */
static const char *proc_task_name(void *ud, pid_t pid, uint64_t coro)
{
    record_ctx *r = ud;
    procset_proc *p = procset_find(r->procs, pid);
    proc_unit *u = p ? p->user : NULL;
    return u && u->async ? async_record_task_name(u->async, pid, coro) : NULL;
}

/* Open the session: launch the command and wait for its interpreter, or attach; then turn on
 * what the options ask for. -1 to go on (s open, *child set in launch mode), or the exit code
 * (nothing left open, a launched command stopped). */
static int open_target(record_opts *ro, session *s, pid_t *child)
{
    aprof_error err = {0};
    *child = 0;
    if (ro->subprocesses) {
        /* the processes are opened as they are found (procset.h), the root too */
        if (ro->cmd) {
            *child = launch_spawn(ro->cmd);
            if (*child < 0)
                return cli_fail(EXIT_LAUNCH, "cannot run '%s': %s", ro->cmd[0], strerror(errno));
            ro->pid = *child;
        } else if (!proc_alive(ro->pid)) {
            return cli_fail(EXIT_NO_PROCESS, "no process %d", (int)ro->pid);
        }
        return -1;
    }
    if (ro->cmd) {
        *child = launch_spawn(ro->cmd);
        if (*child < 0)
            return cli_fail(EXIT_LAUNCH, "cannot run '%s': %s", ro->cmd[0], strerror(errno));
        int exited = 0, status = 0;
        aprof_status rc = launch_wait_ready(*child, s, 30.0, &exited, &status, &err);
        if (exited) {
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            return cli_fail(EXIT_NO_PROCESS, "the command exited (status %d) before it could be sampled", code);
        }
        if (rc != APROF_OK) {
            launch_terminate(*child, 1.0);
            return cli_report(&err);
        }
        ro->pid = *child;
    } else if (session_open(s, ro->pid, &err) != APROF_OK) {
        return cli_report(&err);
    }
    if (ro->redact)
        session_enable_redaction(s);
    s->want_state = ro->mode == MODE_CPU || ro->fmt == FMT_HTML; /* html: its cpu view */
    if ((ro->native && session_enable_native(s, ro->unwinder_name, &err) != APROF_OK) ||
        ((ro->native || ro->gil_only) && session_enable_marks(s, &err) != APROF_OK)) {
        session_close(s);
        if (*child)
            launch_terminate(*child, 1.0);
        return cli_report(&err);
    }
    return -1;
}

/* What consume() feeds. false when out of memory (what was made is freed by free_ctx). */
static bool make_ctx(record_ctx *r, session *s, const record_opts *ro)
{
    bool filtered = ro->filter.n || ro->filter.nnames || ro->filter.main;
    *r = (record_ctx){.cpu_only = ro->mode == MODE_CPU, .filter = filtered ? &ro->filter : NULL,
                      .gil_only = ro->gil_only, .count_states = ro->native || ro->gil_only,
                      .st = s->st, .fmt = ro->fmt, .time_resolution = ro->time_resolution,
                      .program = s->cmdline, .pid = ro->pid, .rate = ro->rate, .ro = ro};
    if (ro->subprocesses) {
        r->st = r->own_st = strtab_new();
        if (!r->st)
            return false;
        if (ro->redact)
            snprintf(r->root_cmd, sizeof(r->root_cmd), "%s", REDACT_COMMAND_LINE);
        else
            proc_cmdline(ro->pid, r->root_cmd, sizeof(r->root_cmd));
        r->program = r->root_cmd;
        snprintf(r->meta_name, sizeof(r->meta_name), "aprof: %s (pid %d and its subprocesses)",
                 r->root_cmd, (int)ro->pid);
    } else {
        snprintf(r->meta_name, sizeof(r->meta_name), "aprof: %s (pid %d)", s->cmdline,
                 (int)ro->pid);
    }
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    uint64_t mono = aprof_now_ns();
    r->wall_minus_mono = (int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec - (int64_t)mono;
    r->a = agg_new(r->st);
    r->stalls = stall_detector_new((uint64_t)(ro->stall_ms * 1e6), r->st);
    if (ro->fmt == FMT_TRACE || ro->fmt == FMT_HTML) {
        r->timeline = timeline_new(r->st);
        if (!r->timeline)
            return false;
        if (r->stalls)
            stall_detector_set_stretch_sink(r->stalls, timeline_loop_busy, r->timeline);
    }
    /* html's cpu view: in --mode cpu every sample is one already */
    if (ro->fmt == FMT_HTML && ro->mode != MODE_CPU && !(r->cpu_a = agg_new(r->st)))
        return false;
    if (ro->subprocesses) {
        /* each process's asyncio part is made when it joins (proc_joined) */
        r->stitched = malloc(APROF_MAX_FRAMES * sizeof(*r->stitched));
        if (r->stalls)
            stall_detector_set_task_resolver(r->stalls, proc_task_name, r);
        return r->a && r->stalls && r->stitched;
    }
    if (ro->async_aware && r->a) {
        r->async = async_record_new(s, r->a, ro->await_hz, ro->exact_task_names);
        r->stitched = malloc(APROF_MAX_FRAMES * sizeof(*r->stitched));
        if (r->async)
            async_record_set_timeline(r->async, r->timeline);
        if (r->async && r->stalls)
            stall_detector_set_task_resolver(r->stalls, async_record_task_name, r->async);
    }
    return r->a && r->stalls && (!ro->async_aware || (r->async && r->stitched));
}

static void free_ctx(record_ctx *r)
{
    pyroscope_push_finish(r->push, 0, NULL);
    stall_detector_free(r->stalls);
    async_record_free(r->async);
    timeline_free(r->timeline);
    agg_free(r->cpu_a);
    free(r->stitched);
    agg_free(r->a);
    free(r->pinfo);
    strtab_free(r->own_st);
}

/* Launch mode: wait for the command (or stop it after Ctrl-C) and take its exit code when
 * ours is still 0. */
static int finish_child(pid_t child, sampler_stats *st, bool quiet, int exit_code)
{
    int status = st->child_status;
    if (!st->child_reaped) {
        if (aprof_stop_requested) {
            /* Ctrl-C reached the whole foreground group; give the target time to finish. */
            launch_terminate(child, 5.0);
            return exit_code;
        }
        waitpid(child, &status, 0);
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (!quiet)
        fprintf(stderr, "aprof: the command exited with status %d\n", code);
    return exit_code == EXIT_OK ? code : exit_code;
}

int cmd_record(int argc, char **argv)
{
    record_opts ro;
    int rc = parse_options(argc, argv, &ro);
    if (rc >= 0)
        return rc;
    cli_install_stop_signals();
    session s;
    memset(&s, 0, sizeof(s)); /* --subprocesses: no session of its own (session_close: none) */
    pid_t child;
    if ((rc = open_target(&ro, &s, &child)) >= 0)
        return rc;
    pyroscope_push *push = NULL;
    if (ro.push_url) {
        /* NAME{pid=PID,hostname=HOST}: how Pyroscope takes labels */
        char host[256] = "unknown", name[600], why[512];
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = 0;
        snprintf(name, sizeof(name), "%s{pid=%d,hostname=%s}",
                 ro.push_name ? ro.push_name : "aprof", (int)ro.pid, host);
        push = pyroscope_push_start(ro.push_url, name, ro.rate, why, sizeof(why));
        if (!push) {
            session_close(&s);
            if (child)
                launch_terminate(child, 1.0);
            return cli_fail(EXIT_INTERNAL, "%s", why);
        }
    }

    char default_out[64];
    const char *out_path = ro.out_path;
    if (!out_path) {
        snprintf(default_out, sizeof(default_out), "aprof-%d.%s", (int)ro.pid,
                 format_exts[ro.fmt]);
        out_path = default_out;
    }
    /* Open the output now, so that an unwritable path fails before any sampling (with
     * --segment: a file of the same name pattern, removed again). */
    outfile of, folded;
    record_ctx r;
    int exit_code = EXIT_OK;
    char probe[4096];
    bool files = !(ro.push_url && !ro.out_path); /* --push alone writes no file */
    if (!files)
        ;
    else if (ro.segment_s > 0 &&
        !segment_path(probe, sizeof(probe), out_path, format_exts[ro.fmt], 0))
        exit_code = cli_fail(EXIT_OUTPUT, "cannot write %s: %s", out_path, strerror(ENAMETOOLONG));
    else if (outfile_open(&of, ro.segment_s > 0 ? probe : out_path) != 0) {
        exit_code = cli_fail(EXIT_OUTPUT, "cannot write %s: %s",
                             ro.segment_s > 0 ? probe : out_path, strerror(errno));
    } else if (ro.segment_s > 0) {
        outfile_abort(&of);
    } else if (ro.folded_path && outfile_open(&folded, ro.folded_path) != 0) {
        exit_code = cli_fail(EXIT_OUTPUT, "cannot write %s: %s", ro.folded_path, strerror(errno));
        outfile_abort(&of);
    }
    if (exit_code == EXIT_OK && !make_ctx(&r, &s, &ro)) {
        if (!ro.segment_s && files)
            outfile_abort(&of);
        if (ro.folded_path)
            outfile_abort(&folded);
        free_ctx(&r);
        exit_code = cli_fail(EXIT_INTERNAL, "out of memory");
    }
    if (exit_code != EXIT_OK) {
        pyroscope_push_finish(push, 0, NULL);
        session_close(&s);
        if (child)
            launch_terminate(child, 1.0);
        return exit_code;
    }
    if (ro.segment_s > 0) {
        r.seg_ns = (uint64_t)(ro.segment_s * 1e9);
        r.seg_template = out_path;
        r.seg_start_ns = aprof_now_ns();
        r.segment_files = files;
        r.push = push;
        r.push_url = ro.push_url;
    }

    sampler_opts so = {.rate_hz = ro.rate, .duration_s = ro.duration, .blocking = ro.blocking,
                       .nonblocking = ro.nonblocking, .child = child,
                       .progress = !ro.quiet && isatty(STDERR_FILENO) ? progress_line : NULL};
    sampler_stats st;
    procset procs;
    if (ro.subprocesses) {
        procset_hooks hooks = {proc_joined, proc_left, proc_skipped, &r};
        procset_init(&procs, ro.pid, true, r.st, &hooks);
        r.procs = &procs;
        sampler_run_set(&procs, &so, consume, &r, &st);
    } else {
        sampler_run(&s, &so, consume, &r, &st);
    }
    stall_detector_finish(r.stalls, st.t_end_ns);
    add_stall_profile(&r);
    if (r.procs) {
        r.skip_status = procs.root_status;
        snprintf(r.skip_msg, sizeof(r.skip_msg), "%s", procs.root_msg);
        r.finishing = true;
        procset_free(&procs); /* each process's figures go to r.pinfo */
    }

    if (!ro.nonblocking && !ro.blocking && !ro.native && s.ps.stats.stop_failures &&
        !s.ps.stats.stopped_reads)
        cli_note("could not stop running threads with ptrace (another tracer attached?): busy "
                 "stacks were kept as with --nonblocking (see docs/troubleshooting.md)");
    if (ro.blocking && st.freeze_errno)
        cli_note("could not suspend the target with ptrace (%s); samples were taken without "
                 "suspending it (see docs/troubleshooting.md)", strerror(st.freeze_errno));
    if (r.seg_ns) {
        roll_segment(&r, st.t_end_ns > r.seg_start_ns ? st.t_end_ns : r.seg_start_ns, true);
        if (r.segments_failed)
            exit_code = cli_fail(EXIT_OUTPUT, "%u of %u segments could not be written",
                                 r.segments_failed, r.segments + r.segments_failed);
        out_path = r.segments ? r.last_segment : NULL;
        if (r.push) {
            push_stats ps;
            unsigned queued = r.segments_pushed;
            pyroscope_push_finish(r.push, PUSH_GRACE_S, &ps);
            r.push = NULL;
            if (!ro.quiet || ps.dropped || ps.rejected)
                fprintf(stderr, "aprof: pushed %llu of %u segments to %s%s%s\n",
                        (unsigned long long)ps.sent, queued, ro.push_url,
                        ps.sent < queued ? ", last error: " : "",
                        ps.sent < queued ? ps.last_error : "");
            if (ps.sent < queued && !files)
                exit_code = EXIT_OUTPUT; /* segments that exist nowhere */
        }
    } else if (ro.fmt != FMT_HTML) { /* html: below, with the run's facts */
        if (write_recording(&r, ro.fmt, &of, st.t_start_ns, st.t_end_ns) != 0) {
            exit_code = cli_fail(EXIT_OUTPUT, "cannot write %s: %s", out_path, strerror(errno));
            out_path = NULL;
        }
        if (ro.folded_path && write_recording(&r, FMT_COLLAPSED, &folded, st.t_start_ns,
                                              st.t_end_ns) != 0)
            exit_code = cli_fail(EXIT_OUTPUT, "cannot write %s: %s", ro.folded_path,
                                 strerror(errno));
    } else if (ro.folded_path && write_recording(&r, FMT_COLLAPSED, &folded, st.t_start_ns,
                                                 st.t_end_ns) != 0) {
        exit_code = cli_fail(EXIT_OUTPUT, "cannot write %s: %s", ro.folded_path, strerror(errno));
    }
    native_report nrep = {r.procs ? NULL : &s, r.count_states ? &r.states : NULL, ro.gil_only,
                          r.not_gil};
    const char *root_version = "";
    for (size_t i = 0; i < r.npinfo; i++)
        if (r.pinfo[i].pid == ro.pid && r.pinfo[i].sampled)
            root_version = r.pinfo[i].python_version;
    record_report rep = {
        .pid = ro.pid, .command = r.procs ? r.root_cmd : s.cmdline,
        .python_version = r.procs ? root_version : s.rt.version,
        .procs = r.procs ? r.pinfo : NULL, .nprocs = r.npinfo, .st = &st, .a = r.a, .stalls = r.stalls, .async = r.async, .native = &nrep,
        .requested_rate = ro.rate,
        .stall_threshold_s = ro.stall_ms / 1e3, .cpu_only = r.cpu_only,
        .thread_samples = r.thread_samples, .torn = r.torn, .marked = r.marked, .not_running = r.idle_skipped,
        .gc_samples = r.gc_samples, .gc_ns = r.gc_ns,
        .reads = r.procs ? NULL : &s.ps.stats,
        .out_path = out_path, .format = format_labels[ro.fmt],
        .resolution_s = (double)r.last_resolution_ns / 1e9,
        .segments = r.segments, .first_segment = r.first_segment,
        .segment_pause_max_s = (double)r.seg_write_max_ns / 1e9,
        .start_unix_ns = (uint64_t)((int64_t)st.t_start_ns + r.wall_minus_mono),
    };
    if (ro.fmt == FMT_HTML && !r.seg_ns) {
        html_report hr = {.facts = &rep, .wall = r.a, .cpu = r.cpu_a, .stalls = r.stalls,
                          .async = r.async, .tl = r.timeline,
                          .exact_task_names = ro.exact_task_names};
        int rc_html = write_html(&hr, outfile_stream(&of));
        if (rc_html != 0) {
            int e = errno;
            outfile_abort(&of);
            errno = e;
        }
        if (rc_html != 0 || outfile_commit(&of) != 0) {
            exit_code = cli_fail(EXIT_OUTPUT, "cannot write %s: %s", out_path, strerror(errno));
            rep.out_path = NULL;
        }
    }
    if (ro.summary_path && record_report_write_json(&rep, ro.summary_path) != 0)
        exit_code = cli_fail(EXIT_OUTPUT, "cannot write %s: %s", ro.summary_path, strerror(errno));
    if (!ro.quiet)
        record_report_print(&rep, stderr);
    if (st.samples == 0 && aprof_stop_requested && exit_code == EXIT_OK && !child)
        exit_code = EXIT_INTERRUPTED;
    else if (r.procs && st.samples == 0 && exit_code == EXIT_OK && r.skip_status != APROF_OK) {
        /* nothing to sample: the root is not a Python aprof reads, and no descendant was */
        aprof_error err;
        aprof_error_set(&err, r.skip_status, "%s; none of its subprocesses was sampled either",
                        r.skip_msg);
        exit_code = cli_report(&err);
    }
    if (child)
        exit_code = finish_child(child, &st, ro.quiet, exit_code);
    else if (st.target_exited && !ro.quiet)
        fprintf(stderr, "aprof: process %d exited\n", (int)ro.pid);
    free_ctx(&r);
    session_close(&s);
    return exit_code;
}
