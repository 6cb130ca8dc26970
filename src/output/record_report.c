#include "record_report.h"

#include "stall_groups.h"
#include "task_stats_json.h"

#include "json.h"
#include "outfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Summary JSON members "tasks" and "await_sites". */
static void write_async_json(async_record *r, json_writer *w, size_t max_sites)
{
    task_stats_json(w, "tasks", async_record_task_stats(r), (int64_t)async_record_snapshots(r));
    json_key(w, "await_sites");
    json_begin_array(w);
    size_t n = async_record_site_count(r);
    for (size_t i = 0; i < n && i < max_sites; i++) {
        const async_await_site *s = async_record_site_at(r, i);
        json_begin_object(w);
        json_kv_string(w, "function", s->frame.name);
        json_kv_string(w, "file", s->frame.file);
        json_kv_int(w, "line", s->frame.line);
        json_key(w, "wait_s");
        json_seconds_ns(w, s->wait_ns);
        json_kv_uint(w, "waits", s->waits);
        json_end_object(w);
    }
    json_end_array(w);
}

/* The stderr summary lines of asyncio. */
static void print_async(async_record *r, FILE *out, size_t max_sites)
{
    const async_task_stats *st = async_record_task_stats(r);
    fprintf(out, "asyncio: %llu tasks seen (%llu created, %llu finished, %llu cancelled), at most "
            "%llu alive at once\n", (unsigned long long)st->seen, (unsigned long long)st->created,
            (unsigned long long)st->finished, (unsigned long long)st->cancelled,
            (unsigned long long)st->max_alive);
    size_t n = async_record_site_count(r);
    if (n)
        fprintf(out, "where tasks waited longest (task-seconds, distinct waits):\n");
    for (size_t i = 0; i < n && i < max_sites; i++) {
        const async_await_site *s = async_record_site_at(r, i);
        fprintf(out, "  %9.3fs  %6llu  %s (%s:%d)\n", (double)s->wait_ns / 1e9,
                (unsigned long long)s->waits, s->frame.name, s->frame.file, (int)s->frame.line);
    }
}

#define WORST_STALLS_SHOWN 5

static double seconds(uint64_t ns)
{
    return (double)ns / 1e9;
}

static void print_processes(const record_report *r, FILE *out);
static const char *proc_prefix(const record_report *r, pid_t pid, char *buf, size_t len);

static const char *impact_name(uint8_t impact)
{
    return impact == STALL_CRITICAL ? "critical" : "warning";
}

static const char *loop_kind_name(uint8_t kind)
{
    return kind == LOOP_NATIVE ? "uvloop" : "asyncio";
}

/* Indices of stalls, longest first. */
static size_t *stalls_by_duration(const stall_detector *d, size_t *n)
{
    *n = d ? stall_count(d) : 0;
    size_t *idx = malloc((*n ? *n : 1) * sizeof(*idx));
    if (!idx) {
        *n = 0;
        return NULL;
    }
    for (size_t i = 0; i < *n; i++)
        idx[i] = i;
    for (size_t i = 1; i < *n; i++) { /* insertion sort: stall lists are short */
        size_t k = idx[i], j = i;
        uint64_t dk = stall_at(d, k)->end_ns - stall_at(d, k)->start_ns;
        while (j > 0) {
            const stall_event *p = stall_at(d, idx[j - 1]);
            if (p->end_ns - p->start_ns >= dk)
                break;
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = k;
    }
    return idx;
}

void record_report_print(const record_report *r, FILE *out)
{
    const sampler_stats *st = r->st;
    double dur = seconds(st->t_end_ns - st->t_start_ns);
    size_t sampled = 0;
    for (size_t i = 0; r->procs && i < r->nprocs; i++)
        sampled += r->procs[i].sampled;
    char across[64] = "";
    if (r->procs)
        snprintf(across, sizeof(across), " across %zu processes", sampled);
    fprintf(out, "aprof: %llu samples in %.2f s (%.1f Hz%s), %zu threads; %llu stacks marked "
            "<unreadable> (%.1f%%), %llu dropped, %llu errors", (unsigned long long)st->samples,
            dur, dur > 0 ? (double)st->samples / dur : 0.0, across, agg_profile_count(r->a),
            (unsigned long long)r->marked,
            r->thread_samples ? 100.0 * (double)r->marked / (double)r->thread_samples : 0.0,
            (unsigned long long)r->torn, (unsigned long long)st->errors);
    if (r->cpu_only)
        fprintf(out, ", %llu idle thread samples skipped (cpu mode)",
                (unsigned long long)r->not_running);
    if (st->samples)
        fprintf(out, "; %.1f us per sample", (double)st->cost_ns_total / 1e3 / (double)st->samples);
    /* said only when it matters: profiles then show less time than the run took */
    double uncredited = seconds(st->uncredited_ns);
    if (dur > 0 && uncredited > 0.02 * dur)
        fprintf(out, "; %.2f s (%.0f%%) not credited to any sample (aprof was held up)",
                uncredited, 100.0 * uncredited / dur);
    fputc('\n', out);
    if (r->native)
        native_report_print(r->native, out);
    if (r->out_path && r->segments > 1)
        fprintf(out, "aprof: wrote %u segments (%s), %s ... %s; sampling paused at most "
                     "%.1f ms per segment\n", r->segments, r->format, r->first_segment,
                r->out_path, r->segment_pause_max_s * 1e3);
    else if (r->out_path && r->resolution_s > 0)
        fprintf(out, "aprof: wrote %s (%s, each thread's samples merged by stack within "
                     "%.3g s windows)\n", r->out_path, r->format, r->resolution_s);
    else if (r->out_path)
        fprintf(out, "aprof: wrote %s (%s)\n", r->out_path, r->format);

    agg_top_entry top[10];
    size_t n = agg_top_functions(r->a, top, 10);
    uint64_t total = 0;
    for (size_t i = 0; i < agg_profile_count(r->a); i++) {
        const agg_profile *p = agg_profile_at(r->a, i);
        if (p->tid)
            total += p->total_ns;
    }
    if (n && total) {
        fprintf(out, "top functions by own time (all threads, %s%s):\n", r->cpu_only ? "cpu" : "wall",
                r->segments > 1 ? ", last segment" : "");
        for (size_t i = 0; i < n; i++) {
            fprintf(out, "  %5.1f%%  %8.3fs  %s", 100.0 * (double)top[i].self_ns / (double)total,
                    seconds(top[i].self_ns), top[i].name);
            /* marks such as <unreadable> have no file */
            if (top[i].file && *top[i].file)
                fprintf(out, " (%s)", top[i].file);
            fputc('\n', out);
        }
    }

    if (r->gc_samples)
        fprintf(out, "garbage collection: %.3f s in %llu samples (%.1f%% of all thread time)\n",
                seconds(r->gc_ns), (unsigned long long)r->gc_samples,
                total ? 100.0 * (double)r->gc_ns / (double)total : 0.0);
    if (r->procs)
        print_processes(r, out);
    if (r->async && async_record_active(r->async))
        print_async(r->async, out, 5);
    if (!r->stalls)
        return;
    char pfx[48];
    for (size_t i = 0; i < stall_loop_count(r->stalls); i++) {
        loop_lag lag;
        stall_loop_lag(r->stalls, i, &lag);
        fprintf(out, "event loop in %sthread %d \"%s\" (%s): busy %.1f%% of the time, %llu busy "
                "stretches, lag p50 %.1f ms, p99 %.1f ms, max %.1f ms; %llu stalls >= %.0f ms\n",
                proc_prefix(r, lag.pid, pfx, sizeof(pfx)), (int)lag.tid,
                lag.thread_name ? lag.thread_name : "?", loop_kind_name(lag.kind),
                100 * lag.blocked_ratio, (unsigned long long)lag.count, lag.p50_s * 1e3,
                lag.p99_s * 1e3, lag.max_s * 1e3, (unsigned long long)lag.stalls,
                r->stall_threshold_s * 1e3);
    }
    stall_group *groups = NULL;
    size_t ng = stall_group_by_culprit(stall_events(r->stalls), NULL, stall_count(r->stalls),
                                       &groups);
    if (ng)
        fprintf(out, "event loop stalls by culprit line:\n"
                     "    count      total        max  worst     culprit\n");
    for (size_t i = 0; i < ng && i < WORST_STALLS_SHOWN; i++) {
        const stall_group *g = &groups[i];
        fprintf(out, "  %7u  %7.1f ms %7.1f ms  %-8s  %s (%s:%d)\n", g->count,
                seconds(g->total_ns) * 1e3, seconds(g->max_ns) * 1e3,
                impact_name(g->worst_impact), g->culprit.name, g->culprit.file,
                (int)g->culprit.line);
    }
    if (ng > WORST_STALLS_SHOWN)
        fprintf(out, "  ... %zu more lines (--summary FILE lists them all)\n",
                ng - WORST_STALLS_SHOWN);
    free(groups);
    size_t ns;
    size_t *idx = stalls_by_duration(r->stalls, &ns);
    if (ns)
        fprintf(out, "worst event loop stalls:\n");
    for (size_t i = 0; i < ns && i < WORST_STALLS_SHOWN; i++) {
        const stall_event *e = stall_at(r->stalls, idx[i]);
        char gc[64] = "";
        if (stall_mostly_gc(e))
            snprintf(gc, sizeof(gc), "; mostly garbage collection (%.0f%% of its samples)",
                     100.0 * e->gc_samples / e->samples);
        fprintf(out, "  %s%7.1f ms  %-8s  at %7.3f s  %s%s %s: %s (%s:%d)%s\n",
                e->clipped ? ">=" : "  ", seconds(e->end_ns - e->start_ns) * 1e3,
                impact_name(e->impact), seconds(e->start_ns - st->t_start_ns),
                proc_prefix(r, e->pid, pfx, sizeof(pfx)), e->task ? "task" : "callback",
                e->task ? e->task : (e->callback ? e->callback : "?"), e->culprit.name,
                e->culprit.file, (int)e->culprit.line, gc);
    }
    free(idx);
}

static void frame_object(json_writer *w, const aprof_frame *f)
{
    json_begin_object(w);
    json_kv_string(w, "function", f->name);
    json_kv_string(w, "file", f->file);
    json_kv_int(w, "line", f->line);
    json_end_object(w);
}

/* "stall_culprits": the stalls grouped by culprit line, most total time first. */
static void write_stall_culprits(json_writer *w, const record_report *r)
{
    stall_group *groups = NULL;
    size_t ng = r->stalls ? stall_group_by_culprit(stall_events(r->stalls), NULL,
                                                   stall_count(r->stalls), &groups)
                          : 0;
    json_key(w, "stall_culprits");
    json_begin_array(w);
    for (size_t i = 0; i < ng; i++) {
        const stall_group *g = &groups[i];
        const stall_event *longest = stall_at(r->stalls, g->longest);
        json_begin_object(w);
        json_key(w, "culprit");
        frame_object(w, &g->culprit);
        json_kv_int(w, "count", g->count);
        json_key(w, "total_s");
        json_seconds_ns(w, g->total_ns);
        json_key(w, "max_s");
        json_seconds_ns(w, g->max_ns);
        json_kv_string(w, "worst_impact", impact_name(g->worst_impact));
        json_kv_int(w, "clipped", g->clipped);
        json_key(w, "longest_start_s");
        json_seconds_ns(w, longest->start_ns - r->st->t_start_ns);
        json_end_object(w);
    }
    json_end_array(w);
    free(groups);
}

static void write_stalls(json_writer *w, const record_report *r)
{
    json_key(w, "stalls");
    json_begin_array(w);
    for (size_t i = 0; r->stalls && i < stall_count(r->stalls); i++) {
        const stall_event *e = stall_at(r->stalls, i);
        json_begin_object(w);
        json_key(w, "start_s");
        json_seconds_ns(w, e->start_ns - r->st->t_start_ns);
        json_key(w, "start_monotonic_s");
        json_seconds_ns(w, e->start_ns);
        json_key(w, "duration_s");
        json_seconds_ns(w, e->end_ns - e->start_ns);
        json_key(w, "uncertainty_s");
        json_seconds_ns(w, e->uncertainty_ns);
        if (r->procs)
            json_kv_int(w, "pid", e->pid);
        json_kv_int(w, "thread", e->tid);
        json_kv_string(w, "thread_name", e->thread_name);
        json_kv_string(w, "loop", loop_kind_name(e->loop));
        if (e->task)
            json_kv_string(w, "task", e->task);
        if (e->callback)
            json_kv_string(w, "callback", e->callback);
        json_kv_string(w, "impact", impact_name(e->impact));
        json_key(w, "clipped");
        json_bool(w, e->clipped);
        json_kv_uint(w, "samples", e->samples);
        json_kv_uint(w, "gc_samples", e->gc_samples);
        json_kv_double(w, "gc_share", e->samples ? (double)e->gc_samples / e->samples : 0.0);
        json_key(w, "mostly_gc");
        json_bool(w, stall_mostly_gc(e));
        json_key(w, "culprit");
        frame_object(w, &e->culprit);
        json_key(w, "stack");
        json_begin_array(w);
        for (uint32_t k = 0; k < e->nstack; k++)
            frame_object(w, &e->stack[k]);
        json_end_array(w);
        json_end_object(w);
    }
    json_end_array(w);
}

static void write_loops(json_writer *w, const record_report *r)
{
    json_key(w, "loops");
    json_begin_array(w);
    for (size_t i = 0; r->stalls && i < stall_loop_count(r->stalls); i++) {
        loop_lag lag;
        stall_loop_lag(r->stalls, i, &lag);
        json_begin_object(w);
        if (r->procs)
            json_kv_int(w, "pid", lag.pid);
        json_kv_int(w, "thread", lag.tid);
        json_kv_string(w, "thread_name", lag.thread_name);
        json_kv_string(w, "kind", loop_kind_name(lag.kind));
        json_key(w, "loop_lag");
        json_begin_object(w);
        json_kv_uint(w, "count", lag.count);
        const char *keys[] = {"min_s", "mean_s", "p50_s", "p95_s", "p99_s", "max_s", "blocked_ratio"};
        double vals[] = {lag.min_s, lag.mean_s, lag.p50_s, lag.p95_s, lag.p99_s, lag.max_s,
                         lag.blocked_ratio};
        for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
            json_key(w, keys[k]);
            json_double(w, vals[k]);
        }
        json_end_object(w);
        json_kv_uint(w, "stalls", lag.stalls);
        json_end_object(w);
    }
    json_end_array(w);
}

/* "processes": every process a --subprocesses recording met. */
static void write_processes(json_writer *w, const record_report *r)
{
    json_key(w, "processes");
    json_begin_array(w);
    for (size_t i = 0; i < r->nprocs; i++) {
        const record_proc_info *p = &r->procs[i];
        json_begin_object(w);
        json_kv_int(w, "pid", p->pid);
        json_kv_string(w, "command", p->command);
        json_kv_string(w, "status", p->sampled ? "sampled" : "skipped");
        if (!p->sampled) {
            json_kv_string(w, "reason", p->reason);
            json_end_object(w);
            continue;
        }
        json_kv_string(w, "python_version", p->python_version);
        json_kv_uint(w, "samples", p->samples);
        json_key(w, "joined_s");
        json_seconds_ns(w, p->joined_ns > r->st->t_start_ns ? p->joined_ns - r->st->t_start_ns : 0);
        if (p->left_ns) {
            json_key(w, "left_s");
            json_seconds_ns(w, p->left_ns - r->st->t_start_ns);
        }
        json_key(w, "exited");
        json_bool(w, p->exited);
        if (p->tasks_known)
            task_stats_json(w, "tasks", &p->tasks, -1);
        json_end_object(w);
    }
    json_end_array(w);
}

/* The stderr lines of a --subprocesses recording: one per process. */
static void print_processes(const record_report *r, FILE *out)
{
    size_t sampled = 0;
    for (size_t i = 0; i < r->nprocs; i++)
        sampled += r->procs[i].sampled;
    fprintf(out, "processes: %zu sampled, %zu skipped\n", sampled, r->nprocs - sampled);
    for (size_t i = 0; i < r->nprocs; i++) {
        const record_proc_info *p = &r->procs[i];
        if (!p->sampled) {
            fprintf(out, "  %7d  skipped: %s  %.60s\n", (int)p->pid, p->reason, p->command);
            continue;
        }
        fprintf(out, "  %7d  %-8s %8llu samples", (int)p->pid, p->python_version,
                (unsigned long long)p->samples);
        if (p->joined_ns > r->st->t_start_ns + 500000000ull)
            fprintf(out, ", from %.1f s", seconds(p->joined_ns - r->st->t_start_ns));
        if (p->left_ns)
            fprintf(out, ", %s at %.1f s", p->exited ? "exited" : "left (unreadable)",
                    seconds(p->left_ns - r->st->t_start_ns));
        if (p->tasks_known)
            fprintf(out, ", %llu tasks seen", (unsigned long long)p->tasks.seen);
        fprintf(out, "  %.60s\n", p->command);
    }
}

/* "process N " before a loop's thread, when a recording follows several processes. */
static const char *proc_prefix(const record_report *r, pid_t pid, char *buf, size_t len)
{
    if (!r->procs || !pid)
        return "";
    snprintf(buf, len, "process %d ", (int)pid);
    return buf;
}

int record_report_write_json(const record_report *r, const char *path)
{
    outfile of;
    if (outfile_open(&of, path) != 0)
        return -1;
    const sampler_stats *st = r->st;
    json_writer w;
    json_init(&w, outfile_stream(&of));
    uint64_t dur = st->t_end_ns - st->t_start_ns;
    json_begin_object(&w);
    json_key(&w, "target");
    json_begin_object(&w);
    json_kv_int(&w, "pid", r->pid);
    json_kv_string(&w, "command", r->command);
    json_kv_string(&w, "python_version", r->python_version);
    json_end_object(&w);
    if (r->procs)
        write_processes(&w, r);
    json_key(&w, "start_monotonic_s");
    json_seconds_ns(&w, st->t_start_ns);
    json_key(&w, "duration_s");
    json_seconds_ns(&w, dur);
    json_kv_uint(&w, "samples", st->samples);
    json_key(&w, "rate_hz");
    json_double(&w, dur ? (double)st->samples / seconds(dur) : 0.0);
    json_key(&w, "requested_rate_hz");
    json_double(&w, r->requested_rate);
    json_kv_uint(&w, "thread_samples", r->thread_samples);
    json_kv_uint(&w, "marked", r->marked);
    json_kv_uint(&w, "thread_stops", st->thread_stops);
    if (r->reads) { /* torn stacks read again: at once (no stop), then stopped */
        json_key(&w, "rereads");
        json_begin_object(&w);
        json_kv_uint(&w, "at_once", r->reads->fresh_reads);
        json_kv_uint(&w, "at_once_consistent", r->reads->fresh_ok);
        json_kv_uint(&w, "stopped", r->reads->stopped_reads);
        json_end_object(&w);
    }
    /* stopping modes: wall time during which threads of the target were held stopped (the
     * target's own clocks count it, a sampler cannot sample in it) */
    json_key(&w, "target_stopped_s");
    json_seconds_ns(&w, st->stopped_ns + (r->native ? native_report_stopped_ns(r->native) : 0));
    /* wall time no sample stands for (aprof held up at the end of the run, or falling behind) */
    json_key(&w, "uncredited_s");
    json_seconds_ns(&w, st->uncredited_ns);
    json_key(&w, "dropped");
    json_begin_object(&w);
    json_kv_uint(&w, "torn", r->torn);
    json_kv_uint(&w, "errors", st->errors);
    json_kv_uint(&w, "not_running", r->not_running);
    json_end_object(&w);
    json_key(&w, "gc");
    json_begin_object(&w);
    json_kv_uint(&w, "samples", r->gc_samples);
    json_key(&w, "seconds");
    json_seconds_ns(&w, r->gc_ns);
    json_end_object(&w);
    if (r->native)
        native_report_json(r->native, &w);
    if (r->async && async_record_active(r->async))
        write_async_json(r->async, &w, 100);
    if (r->stalls) {
        json_key(&w, "stall_threshold_s");
        json_double(&w, r->stall_threshold_s);
        write_stalls(&w, r);
        write_stall_culprits(&w, r);
        write_loops(&w, r);
    }
    json_end_object(&w);
    if (json_finish(&w) != 0 || fputc('\n', outfile_stream(&of)) == EOF) {
        int e = errno;
        outfile_abort(&of);
        errno = e;
        return -1;
    }
    return outfile_commit(&of);
}
