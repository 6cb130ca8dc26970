/* The HTML report: the page compiled in from src/output/report/report.html (scripts/embed.cmake)
 * with the recording's data in a JSON script element where the page has its data marker.
 * The data's shape is in docs/formats.md#html; the page draws everything from it. */
#include "html_report.h"

#include "grow.h"
#include "hash.h"
#include "hmap.h"
#include "json.h"
#include "redact.h"
#include "stall_groups.h"
#include "task_stats_json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

extern const unsigned char report_page[];
extern const size_t report_page_len;

#define DATA_MARKER "<!--APROF-DATA-->"
#define MAX_STACK_SHOWN 80
#define LAG_HIST_BINS 40      /* 0.1 ms to 10 s, 8 bins a decade */
#define LAG_HIST_MIN_MS 0.1

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

/* ---- flame graph data ------------------------------------------------------------------------- */

static void write_tree(json_writer *w, const agg *a)
{
    size_t nf = agg_frame_count(a), nn = agg_node_count(a);
    json_begin_object(w);
    json_key(w, "frames"); /* [name, file, line, kind] */
    json_begin_array(w);
    for (uint32_t i = 0; i < nf; i++) {
        const aprof_frame *f = agg_frame_at(a, i);
        json_begin_array(w);
        json_string(w, f->name);
        json_string(w, f->file);
        json_int(w, f->line);
        json_uint(w, f->kind);
        json_end_array(w);
    }
    json_end_array(w);
    json_key(w, "nodes"); /* parent (-1: a root), frame; flat pairs */
    json_begin_array(w);
    for (uint32_t i = 0; i < nn; i++) {
        const agg_node *n = agg_node_at(a, i);
        json_int(w, n->parent == AGG_ROOT ? -1 : (int64_t)n->parent);
        json_uint(w, n->frame);
    }
    json_end_array(w);
    json_key(w, "profiles");
    json_begin_array(w);
    uint64_t *count = malloc((nn + 1) * sizeof(*count));
    uint64_t *weight = malloc((nn + 1) * sizeof(*weight));
    for (size_t i = 0; count && weight && i < agg_profile_count(a); i++) {
        const agg_profile *p = agg_profile_at(a, i);
        if (!p->nsamples || agg_profile_leaf_totals(a, p, count, weight) != 0)
            continue;
        json_begin_object(w);
        json_kv_string(w, "name", p->name);
        json_kv_int(w, "tid", p->tid);
        json_kv_int(w, "pid", p->pid);
        const char *tn = agg_profile_thread_name(p);
        if (tn)
            json_kv_string(w, "thread_name", tn);
        json_key(w, "leaves"); /* node, microseconds, samples; flat triples */
        json_begin_array(w);
        for (uint32_t k = 0; k < nn; k++) {
            if (!count[k] && !weight[k])
                continue;
            json_uint(w, k);
            json_uint(w, (weight[k] + 500) / 1000);
            json_uint(w, count[k]);
        }
        json_end_array(w);
        json_end_object(w);
    }
    free(count);
    free(weight);
    json_end_array(w);
    json_end_object(w);
}

/* ---- facts ------------------------------------------------------------------------------------ */

static void write_facts(json_writer *w, const record_report *f, uint64_t start_unix_ns)
{
    const sampler_stats *st = f->st;
    uint64_t dur = st->t_end_ns > st->t_start_ns ? st->t_end_ns - st->t_start_ns : 0;
    json_begin_object(w);
    json_kv_int(w, "pid", f->pid);
    json_kv_string(w, "command", f->command);
    json_kv_string(w, "python_version", f->python_version);
    json_kv_uint(w, "start_unix_ms", start_unix_ns / 1000000u);
    json_kv_double(w, "duration_s", secs(dur));
    json_kv_uint(w, "samples", st->samples);
    json_kv_double(w, "rate_hz", dur ? (double)st->samples / secs(dur) : 0.0);
    json_kv_double(w, "requested_rate_hz", f->requested_rate);
    json_kv_uint(w, "thread_samples", f->thread_samples);
    json_kv_uint(w, "marked", f->marked);
    json_kv_uint(w, "dropped_torn", f->torn);
    json_kv_uint(w, "errors", st->errors);
    json_kv_double(w, "cost_us_per_sample",
                   st->samples ? (double)st->cost_ns_total / 1e3 / (double)st->samples : 0.0);
    json_kv_double(w, "target_stopped_s", secs(st->stopped_ns));
    json_kv_uint(w, "gc_samples", f->gc_samples);
    json_kv_double(w, "gc_s", secs(f->gc_ns));
    json_kv_string(w, "mode", f->cpu_only ? "cpu" : "wall");
    json_kv_double(w, "stall_threshold_s", f->stall_threshold_s);
    json_kv_string(w, "exporter", "aprof@" APROF_VERSION);
    json_end_object(w);
}

/* ---- stalls ----------------------------------------------------------------------------------- */

static const char *impact_name(uint8_t impact)
{
    return impact == STALL_CRITICAL ? "critical" : "warning";
}

static void write_frame_obj(json_writer *w, const aprof_frame *f)
{
    json_begin_array(w);
    json_string(w, f->name);
    json_string(w, f->file);
    json_int(w, f->line);
    json_end_array(w);
}

static void write_stack(json_writer *w, const stall_event *e)
{
    json_begin_array(w);
    uint32_t from = e->nstack > MAX_STACK_SHOWN ? e->nstack - MAX_STACK_SHOWN : 0;
    for (uint32_t k = from; k < e->nstack; k++)
        write_frame_obj(w, &e->stack[k]);
    json_end_array(w);
}

static void write_stalls(json_writer *w, const stall_detector *d, uint64_t t0)
{
    size_t n = d ? stall_count(d) : 0;
    json_key(w, "stalls"); /* in time order, the first HTML_MAX_STALLS */
    json_begin_array(w);
    for (size_t i = 0; i < n && i < HTML_MAX_STALLS; i++) {
        const stall_event *e = stall_at(d, i);
        json_begin_object(w);
        json_kv_double(w, "start_s", e->start_ns > t0 ? secs(e->start_ns - t0) : 0.0);
        json_kv_double(w, "duration_s", secs(e->end_ns - e->start_ns));
        json_kv_double(w, "uncertainty_s", secs(e->uncertainty_ns));
        json_kv_int(w, "tid", e->tid);
        json_kv_string(w, "impact", impact_name(e->impact));
        if (e->task)
            json_kv_string(w, "task", e->task);
        json_kv_double(w, "gc_share", e->samples ? (double)e->gc_samples / e->samples : 0.0);
        json_key(w, "culprit");
        write_frame_obj(w, &e->culprit);
        json_end_object(w);
    }
    json_end_array(w);
    json_key(w, "stall_groups");
    json_begin_array(w);
    stall_group *g = NULL;
    size_t ng = n ? stall_group_by_culprit(stall_events(d), NULL, n, &g) : 0;
    for (size_t i = 0; i < ng; i++) {
        const stall_event *longest = stall_at(d, g[i].longest);
        uint64_t gc = 0, all = 0;
        for (size_t k = 0; k < n; k++) {
            const stall_event *e = stall_at(d, k);
            if (e->culprit.name == g[i].culprit.name && e->culprit.file == g[i].culprit.file &&
                e->culprit.line == g[i].culprit.line) {
                gc += e->gc_samples;
                all += e->samples;
            }
        }
        json_begin_object(w);
        json_key(w, "culprit");
        write_frame_obj(w, &g[i].culprit);
        json_kv_uint(w, "count", g[i].count);
        json_kv_double(w, "total_s", secs(g[i].total_ns));
        json_kv_double(w, "max_s", secs(g[i].max_ns));
        json_kv_string(w, "worst_impact", impact_name(g[i].worst_impact));
        json_kv_double(w, "gc_share", all ? (double)gc / (double)all : 0.0);
        json_kv_double(w, "longest_start_s",
                       longest->start_ns > t0 ? secs(longest->start_ns - t0) : 0.0);
        json_key(w, "stack");
        write_stack(w, longest);
        json_end_object(w);
    }
    free(g);
    json_end_array(w);
}

/* ---- loops: lag histogram and lag over time ----------------------------------------------------- */

static int hist_bin(uint64_t ns)
{
    double ms = (double)ns / 1e6;
    if (ms <= LAG_HIST_MIN_MS)
        return 0;
    int b = (int)floor(log10(ms / LAG_HIST_MIN_MS) * 8.0);
    return b < 0 ? 0 : b >= LAG_HIST_BINS ? LAG_HIST_BINS - 1 : b;
}

static void write_loop(json_writer *w, const html_report *r, const loop_lag *lag, uint64_t t0,
                       uint64_t t1)
{
    uint32_t hist[LAG_HIST_BINS] = {0};
    double maxlag[HTML_LAG_TIME_BINS] = {0}, busy[HTML_LAG_TIME_BINS] = {0};
    uint64_t span = t1 > t0 ? t1 - t0 : 1;
    double bin_ns = (double)span / HTML_LAG_TIME_BINS;
    size_t nb = r->tl ? timeline_busy_count(r->tl) : 0;
    for (size_t i = 0; i < nb; i++) {
        const tl_busy *b = timeline_busy_at(r->tl, i);
        if (b->tid != lag->tid || (lag->pid && b->pid && b->pid != lag->pid))
            continue;
        uint64_t d = b->end_ns - b->start_ns;
        hist[hist_bin(d)]++;
        uint64_t e = b->end_ns < t0 ? t0 : b->end_ns > t1 ? t1 : b->end_ns;
        int k = (int)((double)(e - t0) / bin_ns);
        if (k >= HTML_LAG_TIME_BINS)
            k = HTML_LAG_TIME_BINS - 1;
        if ((double)d / 1e6 > maxlag[k])
            maxlag[k] = (double)d / 1e6;
        /* busy time spread over the bins it covers */
        uint64_t s = b->start_ns < t0 ? t0 : b->start_ns;
        for (uint64_t x = s; x < e;) {
            int j = (int)((double)(x - t0) / bin_ns);
            if (j >= HTML_LAG_TIME_BINS)
                break;
            uint64_t bin_end = t0 + (uint64_t)((double)(j + 1) * bin_ns);
            if (bin_end <= x)
                bin_end = x + 1;
            uint64_t y = e < bin_end ? e : bin_end;
            busy[j] += (double)(y - x);
            x = y;
        }
    }
    json_begin_object(w);
    json_kv_int(w, "tid", lag->tid);
    json_kv_int(w, "pid", lag->pid);
    json_kv_string(w, "thread_name", lag->thread_name);
    json_kv_string(w, "kind", lag->kind == LOOP_NATIVE ? "uvloop" : "asyncio");
    json_kv_double(w, "busy_ratio", lag->blocked_ratio);
    json_kv_uint(w, "stretches", lag->count);
    json_kv_uint(w, "stalls", lag->stalls);
    const char *keys[] = {"p50_s", "p95_s", "p99_s", "max_s", "mean_s"};
    double vals[] = {lag->p50_s, lag->p95_s, lag->p99_s, lag->max_s, lag->mean_s};
    for (int k = 0; k < 5; k++)
        json_kv_double(w, keys[k], vals[k]);
    json_kv_double(w, "hist_min_ms", LAG_HIST_MIN_MS);
    json_kv_int(w, "hist_bins_per_decade", 8);
    json_key(w, "hist");
    json_begin_array(w);
    for (int k = 0; k < LAG_HIST_BINS; k++)
        json_uint(w, hist[k]);
    json_end_array(w);
    json_kv_double(w, "bin_s", bin_ns / 1e9);
    json_key(w, "max_lag_ms");
    json_begin_array(w);
    for (int k = 0; k < HTML_LAG_TIME_BINS; k++)
        json_double(w, round(maxlag[k] * 1000) / 1000);
    json_end_array(w);
    json_key(w, "busy_share");
    json_begin_array(w);
    for (int k = 0; k < HTML_LAG_TIME_BINS; k++)
        json_double(w, round(busy[k] / bin_ns * 1000) / 1000);
    json_end_array(w);
    json_end_object(w);
}

/* ---- tasks ------------------------------------------------------------------------------------ */

/* The tree groups tasks by name as the stitched stacks do: names that differ only in a
 * trailing counter are one group, NAME-*, unless every name is kept (--exact-task-names). */
static void group_name(const char *name, bool exact, char *buf, size_t len)
{
    size_t keep = exact ? 0 : task_name_group_len(name);
    if (keep)
        snprintf(buf, len, "%.*s*", (int)(keep < 280 ? keep : 280), name);
    else
        snprintf(buf, len, "%s", name);
}

static const char *seg_kind_name(uint8_t kind)
{
    switch (kind) {
    case TL_RUN: return "run";
    case TL_AWAIT: return "await";
    case TL_READY: return "ready";
    default: return "suspended";
    }
}

static const char *end_name(uint8_t end)
{
    switch (end) {
    case TL_DONE: return "done";
    case TL_CANCELLED: return "cancelled";
    case TL_GONE: return "finished";
    default: return "alive";
    }
}

/* One merged segment of the timeline: [kind, start_s, end_s, label (await only)]. */
static size_t write_seg(json_writer *w, const tl_seg *g, uint64_t start, uint64_t end,
                        uint64_t t0)
{
    json_begin_array(w);
    json_string(w, seg_kind_name(g->kind));
    json_double(w, start > t0 ? secs(start - t0) : 0.0);
    json_double(w, end > t0 ? secs(end - t0) : 0.0);
    if (g->kind == TL_AWAIT) {
        char label[400];
        snprintf(label, sizeof(label), "%s: %s (%s:%d)", async_wait_kind_name(g->wait_kind),
                 g->site_name ? g->site_name : "?", g->site_file ? g->site_file : "",
                 (int)g->site_line);
        json_string(w, label);
    }
    json_end_array(w);
    return 1;
}

static const task_timeline *sort_tl;

/* most run time first, then longest life */
static int by_run_desc(const void *a, const void *b)
{
    const tl_task *x = timeline_task_at(sort_tl, *(const uint32_t *)a);
    const tl_task *y = timeline_task_at(sort_tl, *(const uint32_t *)b);
    if (x->run_ns != y->run_ns)
        return x->run_ns < y->run_ns ? 1 : -1;
    uint64_t lx = x->last_seen_ns - x->first_ns, ly = y->last_seen_ns - y->first_ns;
    return (lx < ly) - (lx > ly);
}

/* Every task counted in its group (name) and by the group of the task awaiting it: one row
 * per (group, awaiting group), however many tasks came and went (600,000 in 10 minutes of
 * busy_loop.py). */
typedef struct group_row {
    char *name, *parent;          /* parent NULL: awaited by no task */
    uint64_t n, ends[4], created; /* ends by tl_end */
    double run_s;
} group_row;

typedef struct group_query {
    const group_row *rows;
    const char *name, *parent;
} group_query;

static bool group_is(const void *ctx, uint32_t i)
{
    const group_query *q = ctx;
    const group_row *g = &q->rows[i];
    return strcmp(g->name, q->name) == 0 &&
           (g->parent && q->parent ? strcmp(g->parent, q->parent) == 0 : g->parent == q->parent);
}

static void write_task_groups(json_writer *w, const html_report *r)
{
    const task_timeline *tl = r->tl;
    size_t n = timeline_task_count(tl), nrows = 0, cap = 0;
    group_row *rows = NULL;
    hmap map = {0};
    char gname[300], pname[300];
    bool ok = hmap_init(&map, 256) == 0;
    for (size_t i = 0; ok && i < n; i++) {
        const tl_task *t = timeline_task_at(tl, i);
        group_name(t->name, r->exact_task_names, gname, sizeof(gname));
        const char *parent = NULL;
        if (t->parent != TIMELINE_NONE) {
            group_name(timeline_task_at(tl, t->parent)->name, r->exact_task_names, pname,
                       sizeof(pname));
            parent = pname;
        }
        group_query q = {rows, gname, parent};
        uint64_t h = hash_bytes(gname, strlen(gname));
        h = hash_combine(h, parent ? hash_bytes(parent, strlen(parent)) : 0);
        uint32_t k = hmap_find(&map, hash32(h), group_is, &q);
        if (k == HMAP_NONE) {
            if (!grow_array((void **)&rows, &cap, nrows + 1, sizeof(*rows), 64, SIZE_MAX)) {
                ok = false;
                break;
            }
            char *nm = strdup(gname), *pa = parent ? strdup(parent) : NULL;
            if (!nm || (parent && !pa) || hmap_insert(&map, hash32(h), (uint32_t)nrows) < 0) {
                free(nm);
                free(pa);
                ok = false;
                break;
            }
            rows[nrows] = (group_row){.name = nm, .parent = pa};
            k = (uint32_t)nrows++;
        }
        group_row *g = &rows[k];
        g->n++;
        g->ends[t->end < 4 ? t->end : TL_GONE]++;
        g->created += t->created;
        g->run_s += secs(t->run_ns);
    }
    json_key(w, "groups"); /* [name, awaiting group or "", tasks, alive, done, cancelled,
                              finished, created while recorded, run seconds] */
    json_begin_array(w);
    for (size_t i = 0; i < nrows; i++) {
        const group_row *g = &rows[i];
        json_begin_array(w);
        json_string(w, g->name);
        json_string(w, g->parent ? g->parent : "");
        json_uint(w, g->n);
        for (int e = 0; e < 4; e++)
            json_uint(w, g->ends[e]);
        json_uint(w, g->created);
        json_double(w, round(g->run_s * 1e6) / 1e6);
        json_end_array(w);
    }
    json_end_array(w);
    json_kv_uint(w, "ntasks", n);
    for (size_t i = 0; i < nrows; i++) {
        free(rows[i].name);
        free(rows[i].parent);
    }
    free(rows);
    hmap_free(&map);
}

static void write_task_rows(json_writer *w, const html_report *r, uint64_t t0, uint64_t t1)
{
    const task_timeline *tl = r->tl;
    size_t n = timeline_task_count(tl);
    write_task_groups(w, r);
    /* the timeline: the tasks that ran longest, their segments merged below a resolution */
    uint32_t *order = malloc((n ? n : 1) * sizeof(*order));
    json_key(w, "timeline");
    json_begin_array(w);
    if (order) {
        for (size_t i = 0; i < n; i++)
            order[i] = (uint32_t)i;
        sort_tl = tl;
        qsort(order, n, sizeof(*order), by_run_desc);
        uint64_t res = (t1 > t0 ? t1 - t0 : 1) / 4000;
        size_t emitted = 0;
        for (size_t rank = 0; rank < n && rank < HTML_MAX_TIMELINE_TASKS && emitted < HTML_MAX_TIMELINE_SEGS;
             rank++) {
            const tl_task *t = timeline_task_at(tl, order[rank]);
            uint64_t end = t->end != TL_ALIVE ? t->end_ns : t1;
            json_begin_object(w);
            json_kv_string(w, "name", t->name);
            json_kv_double(w, "start_s", t->first_ns > t0 ? secs(t->first_ns - t0) : 0.0);
            json_kv_double(w, "end_s", end > t0 ? secs(end - t0) : 0.0);
            json_kv_string(w, "end", end_name(t->end));
            json_kv_double(w, "run_s", secs(t->run_ns));
            json_key(w, "segs"); /* [kind, start_s, end_s, label] */
            json_begin_array(w);
            const tl_seg *open = NULL;
            uint64_t os = 0, oe = 0;
            for (uint32_t k = t->head; k != TIMELINE_NONE; k = timeline_seg_at(tl, k)->next) {
                const tl_seg *g = timeline_seg_at(tl, k);
                if (open && g->kind == open->kind && g->start_ns <= oe + res &&
                    (g->kind != TL_AWAIT || (g->site_name == open->site_name &&
                                             g->site_line == open->site_line))) {
                    oe = g->end_ns > oe ? g->end_ns : oe; /* merged with the one before */
                    continue;
                }
                /* a wait shorter than the resolution between two runs: the gap shows it */
                if (open && (oe - os >= res || open->kind == TL_RUN))
                    emitted += write_seg(w, open, os, oe, t0);
                open = g;
                os = g->start_ns;
                oe = g->end_ns;
            }
            if (open)
                emitted += write_seg(w, open, os, oe, t0);
            json_end_array(w);
            json_end_object(w);
        }
        free(order);
    }
    json_end_array(w);
}

static void write_tasks(json_writer *w, const html_report *r, uint64_t t0, uint64_t t1)
{
    json_begin_object(w);
    json_key(w, "active");
    json_bool(w, r->async && async_record_active(r->async));
    if (r->async && async_record_active(r->async)) {
        task_stats_json(w, "stats", async_record_task_stats(r->async), -1);
        json_key(w, "sites");
        json_begin_array(w);
        for (size_t i = 0; i < async_record_site_count(r->async) && i < 100; i++) {
            const async_await_site *site = async_record_site_at(r->async, i);
            if (!site)
                break;
            json_begin_object(w);
            json_key(w, "frame");
            write_frame_obj(w, &site->frame);
            json_kv_double(w, "wait_s", secs(site->wait_ns));
            json_kv_uint(w, "waits", site->waits);
            json_end_object(w);
        }
        json_end_array(w);
    }
    if (r->tl)
        write_task_rows(w, r, t0, t1);
    json_end_object(w);
}

/* ---- the file --------------------------------------------------------------------------------- */

static int write_data(const void *ud, FILE *out)
{
    const html_report *r = ud;
    const sampler_stats *st = r->facts->st;
    uint64_t t0 = st->t_start_ns, t1 = st->t_end_ns > t0 ? st->t_end_ns : t0;
    json_writer *w = malloc(sizeof(*w));
    if (!w)
        return -1;
    json_init(w, out);
    json_begin_object(w);
    json_kv_string(w, "kind", "recording");
    json_key(w, "facts");
    write_facts(w, r->facts, r->facts->start_unix_ns);
    json_key(w, "wall");
    write_tree(w, r->wall);
    if (r->cpu) {
        json_key(w, "cpu");
        write_tree(w, r->cpu);
    }
    write_stalls(w, r->stalls, t0);
    json_key(w, "loops");
    json_begin_array(w);
    for (size_t i = 0; r->stalls && i < stall_loop_count(r->stalls); i++) {
        loop_lag lag;
        stall_loop_lag(r->stalls, i, &lag);
        write_loop(w, r, &lag, t0, t1);
    }
    json_end_array(w);
    json_key(w, "async");
    write_tasks(w, r, t0, t1);
    json_end_object(w);
    int rc = json_finish(w);
    free(w);
    return rc;
}

/* Copy JSON into the page's script element: every '<' (only ever inside a string) as \u003c,
 * so that no "</script>" or "<!--" in a name ends or changes the element. */
static int put_escaped(const char *s, size_t n, FILE *out)
{
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '<')
            continue;
        if ((i > from && fwrite(s + from, 1, i - from, out) != i - from) ||
            fputs("\\u003c", out) == EOF)
            return -1;
        from = i + 1;
    }
    return n > from && fwrite(s + from, 1, n - from, out) != n - from ? -1 : 0;
}

/* The page with the JSON that data() writes in place of its marker. */
static int write_page(int (*data)(const void *ud, FILE *out), const void *ud, FILE *out)
{
    const char *page = (const char *)report_page;
    const char *mark = memmem(page, report_page_len, DATA_MARKER, strlen(DATA_MARKER));
    if (!mark) {
        errno = EINVAL;
        return -1;
    }
    char *json = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&json, &len);
    if (!mf)
        return -1;
    int rc = data(ud, mf);
    if (fclose(mf) != 0)
        rc = -1;
    if (rc != 0) {
        free(json);
        errno = errno ? errno : ENOMEM;
        return -1;
    }
    size_t head = (size_t)(mark - page), tail_at = head + strlen(DATA_MARKER);
    rc = fwrite(page, 1, head, out) == head &&
                 fputs("<script id=\"aprof-data\" type=\"application/json\">", out) != EOF &&
                 put_escaped(json, len, out) == 0 && fputs("</script>", out) != EOF &&
                 fwrite(page + tail_at, 1, report_page_len - tail_at, out) ==
                     report_page_len - tail_at
             ? 0
             : -1;
    free(json);
    if (rc == 0 && ferror(out)) {
        errno = EIO;
        rc = -1;
    }
    return rc;
}

int write_html(const html_report *r, FILE *out)
{
    if (!r || !r->facts || !r->wall || !out) {
        errno = EINVAL;
        return -1;
    }
    return write_page(write_data, r, out);
}

/* ---- the differential flame graph (aprof diff --html) ------------------------------------------ */

/* Both recordings' stack trees merged by call path of functions (name and file). */
typedef struct merged {
    const recording *side[2];
    const rec_diff *d;
    const diff_verdict *v;
    size_t nv;
    const char **fname, **ffile;  /* merged functions */
    size_t nf, cap_f;
    hmap fmap;
    uint32_t *npar, *nfn;         /* merged nodes: parent (UINT32_MAX root), function */
    double *w[2][2];              /* [side][total, self] per merged node */
    size_t nn, cap_n;
    hmap nmap;
    bool oom;
} merged;

typedef struct mf_query {
    const merged *m;
    const char *name, *file;
} mf_query;

static bool mf_is(const void *ctx, uint32_t i)
{
    const mf_query *q = ctx;
    return strcmp(q->m->fname[i], q->name) == 0 && strcmp(q->m->ffile[i], q->file) == 0;
}

static uint32_t merged_fn(merged *m, const char *name, const char *file)
{
    mf_query q = {m, name ? name : "", file ? file : ""};
    uint32_t h = hash32(hash_combine(hash_bytes(q.name, strlen(q.name)),
                                     hash_bytes(q.file, strlen(q.file))));
    uint32_t i = hmap_find(&m->fmap, h, mf_is, &q);
    if (i != HMAP_NONE)
        return i;
    if (m->nf == m->cap_f) {
        size_t nc = m->cap_f ? m->cap_f * 2 : 256;
        const char **a = realloc(m->fname, nc * sizeof(*a)), **b;
        if (a)
            m->fname = a;
        b = a ? realloc(m->ffile, nc * sizeof(*b)) : NULL;
        if (!a || !b) {
            m->oom = true;
            return UINT32_MAX;
        }
        m->ffile = b;
        m->cap_f = nc;
    }
    if (hmap_insert(&m->fmap, h, (uint32_t)m->nf) < 0) {
        m->oom = true;
        return UINT32_MAX;
    }
    m->fname[m->nf] = q.name;
    m->ffile[m->nf] = q.file;
    return (uint32_t)m->nf++;
}

typedef struct mn_query {
    const merged *m;
    uint32_t parent, fn;
} mn_query;

static bool mn_is(const void *ctx, uint32_t i)
{
    const mn_query *q = ctx;
    return q->m->npar[i] == q->parent && q->m->nfn[i] == q->fn;
}

static uint32_t merged_node(merged *m, uint32_t parent, uint32_t fn)
{
    mn_query q = {m, parent, fn};
    uint32_t h = hash32(hash_combine(parent, fn));
    uint32_t i = hmap_find(&m->nmap, h, mn_is, &q);
    if (i != HMAP_NONE)
        return i;
    if (m->nn == m->cap_n) {
        size_t nc = m->cap_n ? m->cap_n * 2 : 1024;
        void *p[6] = {realloc(m->npar, nc * sizeof(uint32_t)), NULL, NULL, NULL, NULL, NULL};
        if (p[0])
            m->npar = p[0];
        p[1] = p[0] ? realloc(m->nfn, nc * sizeof(uint32_t)) : NULL;
        if (p[1])
            m->nfn = p[1];
        for (int k = 0; k < 4 && p[k + 1]; k++) {
            double **dst = &m->w[k / 2][k % 2];
            p[k + 2] = realloc(*dst, nc * sizeof(double));
            if (p[k + 2])
                *dst = p[k + 2];
        }
        if (!p[5]) {
            m->oom = true;
            return UINT32_MAX;
        }
        m->cap_n = nc;
    }
    if (hmap_insert(&m->nmap, h, (uint32_t)m->nn) < 0) {
        m->oom = true;
        return UINT32_MAX;
    }
    m->npar[m->nn] = parent;
    m->nfn[m->nn] = fn;
    for (int k = 0; k < 4; k++)
        m->w[k / 2][k % 2][m->nn] = 0;
    return (uint32_t)m->nn++;
}

static void merge_side(merged *m, int side)
{
    const recording *r = m->side[side];
    uint32_t *to = malloc((r->nnodes ? r->nnodes : 1) * sizeof(*to));
    if (!to) {
        m->oom = true;
        return;
    }
    for (size_t i = 0; i < r->nnodes && !m->oom; i++) { /* parents come first */
        const rec_node *n = &r->nodes[i];
        uint32_t par = n->parent == REC_ROOT ? UINT32_MAX : to[n->parent];
        uint32_t fn = merged_fn(m, r->functions[n->fn].name, r->functions[n->fn].file);
        uint32_t k = fn == UINT32_MAX ? UINT32_MAX : merged_node(m, par, fn);
        if (k == UINT32_MAX)
            break;
        to[i] = k;
        m->w[side][0][k] += n->total_s;
        m->w[side][1][k] += n->self_s;
    }
    free(to);
}

static void write_us(json_writer *w, const double *v, size_t n)
{
    json_begin_array(w);
    for (size_t i = 0; i < n; i++)
        json_uint(w, (uint64_t)(v[i] * 1e6 + 0.5));
    json_end_array(w);
}

static int write_diff_data(const void *ud, FILE *out)
{
    const merged *m = ud;
    json_writer *w = malloc(sizeof(*w));
    if (!w)
        return -1;
    json_init(w, out);
    json_begin_object(w);
    json_kv_string(w, "kind", "diff");
    json_key(w, "report"); /* what diff --json says */
    diff_report_json(w, m->side[0], m->side[1], m->d, 200, m->v, m->nv);
    json_key(w, "tree");
    json_begin_object(w);
    json_key(w, "frames");
    json_begin_array(w);
    for (size_t i = 0; i < m->nf; i++) {
        json_begin_array(w);
        json_string(w, m->fname[i]);
        json_string(w, m->ffile[i]);
        json_int(w, 0);
        json_int(w, 0);
        json_end_array(w);
    }
    json_end_array(w);
    json_key(w, "nodes");
    json_begin_array(w);
    for (size_t i = 0; i < m->nn; i++) {
        json_int(w, m->npar[i] == UINT32_MAX ? -1 : (int64_t)m->npar[i]);
        json_uint(w, m->nfn[i]);
    }
    json_end_array(w);
    const char *keys[2][2] = {{"before", "before_self"}, {"after", "after_self"}};
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 2; k++) {
            json_key(w, keys[s][k]);
            write_us(w, m->w[s][k], m->nn);
        }
    json_key(w, "truncated");
    json_bool(w, m->side[0]->tree_truncated || m->side[1]->tree_truncated);
    json_end_object(w);
    json_end_object(w);
    int rc = json_finish(w);
    free(w);
    return rc;
}

int write_diff_html(const recording *before, const recording *after, const rec_diff *d,
                    const diff_verdict *v, size_t nv, FILE *out)
{
    merged m = {.side = {before, after}, .d = d, .v = v, .nv = nv};
    int rc = -1;
    if (hmap_init(&m.fmap, 1024) == 0 && hmap_init(&m.nmap, 4096) == 0) {
        merge_side(&m, 0);
        merge_side(&m, 1);
        if (!m.oom)
            rc = write_page(write_diff_data, &m, out);
        else
            errno = ENOMEM;
    }
    int e = errno;
    free(m.fname);
    free(m.ffile);
    free(m.npar);
    free(m.nfn);
    for (int k = 0; k < 4; k++)
        free(m.w[k / 2][k % 2]);
    hmap_free(&m.fmap);
    hmap_free(&m.nmap);
    errno = e;
    return rc;
}
