/* speedscope JSON writer (schema: https://www.speedscope.app/file-format-schema.json).
 *
 * One "sampled" profile per agg profile that has samples, thread profiles first; frames are
 * shared by all profiles.
 * Times are seconds since the start of the earliest sample of the whole recording, so all
 * profiles of a file share one time axis. A sample at t_ns standing for weight_ns covers
 * [t_ns - weight_ns, t_ns]: a profile starts where its first sample's interval starts and ends at
 * its last sample.
 */
#include "json.h"
#include "grow.h"
#include "writers.h"

#include "hash.h"
#include "hmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SPEEDSCOPE_SCHEMA "https://www.speedscope.app/file-format-schema.json"

static uint64_t point_start(const agg_point *pt)
{
    return pt->t_ns > pt->weight_ns ? pt->t_ns - pt->weight_ns : 0;
}

/* ---- points, optionally merged by stack within time windows ----------------------------------- */

typedef struct window_iter {
    agg_point_iter it;
    uint64_t res, origin;     /* res 0: points as they are */
    agg_point next;           /* the first point of the next window, read ahead */
    bool have_next, failed;
    agg_point *win;           /* the current window's merged points */
    size_t nwin, cap, pos;
    hmap map;                 /* node -> index in win */
} window_iter;

typedef struct win_query {
    const window_iter *w;
    uint32_t node;
} win_query;

static bool win_is(const void *ctx, uint32_t idx)
{
    const win_query *q = ctx;
    return q->w->win[idx].node == q->node;
}

static void window_iter_init(window_iter *w, const agg *a, const agg_profile *p, uint64_t res,
                             uint64_t origin)
{
    memset(w, 0, sizeof(*w));
    agg_point_iter_init(&w->it, a, p, 0);
    w->res = p->tid ? res : 0; /* synthetic profiles have no time order to coarsen */
    w->origin = origin;
    w->have_next = agg_point_iter_next(&w->it, &w->next);
}

static void window_iter_free(window_iter *w)
{
    free(w->win);
    hmap_free(&w->map);
}

static bool window_fill(window_iter *w)
{
    w->nwin = w->pos = 0;
    if (!w->have_next)
        return false;
    if (!w->map.cap && hmap_init(&w->map, 256) < 0) {
        w->failed = true;
        return false;
    }
    hmap_clear(&w->map);
    uint64_t id = (w->next.t_ns - w->origin) / w->res;
    while (w->have_next && (w->next.t_ns - w->origin) / w->res == id) {
        win_query q = {w, w->next.node};
        uint32_t h = hash32(w->next.node);
        uint32_t k = hmap_find(&w->map, h, win_is, &q);
        if (k != HMAP_NONE) {
            w->win[k].count += w->next.count;
            w->win[k].weight_ns += w->next.weight_ns;
            w->win[k].t_ns = w->next.t_ns;
        } else {
            if (!grow_array((void **)&w->win, &w->cap, w->nwin + 1, sizeof(*w->win), 256,
                            SIZE_MAX)) {
                w->failed = true;
                return false;
            }
            if (hmap_insert(&w->map, h, (uint32_t)w->nwin) < 0) {
                w->failed = true;
                return false;
            }
            w->win[w->nwin++] = w->next;
        }
        w->have_next = agg_point_iter_next(&w->it, &w->next);
    }
    return w->nwin > 0;
}

static bool window_next(window_iter *w, agg_point *out)
{
    if (w->failed)
        return false;
    if (!w->res) {
        if (!w->have_next)
            return false;
        *out = w->next;
        w->have_next = agg_point_iter_next(&w->it, &w->next);
        return true;
    }
    if (w->pos == w->nwin && !window_fill(w))
        return false;
    *out = w->win[w->pos++];
    return true;
}

/* ---- the file ---------------------------------------------------------------------------------- */

static void write_frames(json_writer *w, const agg *a)
{
    json_begin_array(w);
    size_t n = agg_frame_count(a);
    for (uint32_t i = 0; i < n; i++) {
        const aprof_frame *f = agg_frame_at(a, i);
        json_begin_object(w);
        json_kv_string(w, "name", f->name);
        if (f->file && f->file[0]) /* unknown file or line: omitted, never null */
            json_kv_string(w, "file", f->file);
        if (f->line > 0)
            json_kv_int(w, "line", f->line);
        json_end_object(w);
    }
    json_end_array(w);
}

/* false if the points could not all be read back (the spill file failed): samples and weights
 * would not pair up. */
static bool write_profile(json_writer *w, const agg *a, const agg_profile *p, uint64_t origin,
                          uint64_t res, uint32_t *stack, uint32_t max_depth)
{
    size_t nsamples = 0, nweights = 0;
    window_iter wi;
    uint64_t start = UINT64_MAX, end = 0;
    agg_point_iter it;
    agg_point pt;
    agg_point_iter_init(&it, a, p, 0);
    while (agg_point_iter_next(&it, &pt)) {
        uint64_t s = point_start(&pt);
        if (s < start)
            start = s;
        if (pt.t_ns > end)
            end = pt.t_ns;
    }
    json_begin_object(w);
    json_kv_string(w, "type", "sampled");
    json_kv_string(w, "name", p->name);
    json_kv_string(w, "unit", "seconds");
    json_key(w, "startValue");
    json_seconds_ns(w, start - origin);
    json_key(w, "endValue");
    json_seconds_ns(w, end - origin);
    json_key(w, "samples");
    json_begin_array(w);
    window_iter_init(&wi, a, p, res, origin);
    while (window_next(&wi, &pt)) {
        uint32_t depth = agg_stack_frames(a, pt.node, stack, max_depth);
        json_begin_array(w);
        for (uint32_t d = 0; d < depth; d++)
            json_uint(w, stack[d]);
        json_end_array(w);
        nsamples++;
    }
    /* the points were all read back (the spill file answered): the raw iterator is at the end */
    bool complete = !wi.failed && wi.it.it.next == p->npoints;
    window_iter_free(&wi);
    json_end_array(w);
    json_key(w, "weights");
    json_begin_array(w);
    window_iter_init(&wi, a, p, res, origin);
    while (window_next(&wi, &pt)) {
        json_seconds_ns(w, pt.weight_ns);
        nweights++;
    }
    complete = complete && !wi.failed && wi.it.it.next == p->npoints;
    window_iter_free(&wi);
    json_end_array(w);
    json_end_object(w);
    return complete && nsamples == nweights;
}

int write_speedscope(const agg *a, const writer_meta *meta, FILE *out)
{
    if (!a || !out) {
        errno = EINVAL;
        return -1;
    }
    uint32_t max_depth = agg_max_depth(a);
    uint32_t *stack = malloc((max_depth ? max_depth : 1) * sizeof(uint32_t));
    if (!stack) {
        errno = ENOMEM;
        return -1;
    }

    uint64_t origin = UINT64_MAX;
    size_t nprof = agg_profile_count(a);
    for (size_t i = 0; i < nprof; i++) {
        const agg_profile *p = agg_profile_at(a, i);
        agg_point_iter it;
        agg_point pt;
        agg_point_iter_init(&it, a, p, 0);
        while (agg_point_iter_next(&it, &pt)) {
            uint64_t s = point_start(&pt);
            if (s < origin)
                origin = s;
        }
    }

    json_writer w;
    json_init(&w, out);
    json_begin_object(&w);
    json_kv_string(&w, "$schema", SPEEDSCOPE_SCHEMA);
    json_kv_string(&w, "exporter", meta && meta->exporter ? meta->exporter : "aprof@" APROF_VERSION);
    json_kv_string(&w, "name", meta && meta->name ? meta->name : "aprof");
    json_kv_int(&w, "activeProfileIndex", 0);
    json_key(&w, "shared");
    json_begin_object(&w);
    json_key(&w, "frames");
    write_frames(&w, a);
    json_end_object(&w);
    json_key(&w, "profiles");
    json_begin_array(&w);
    /* Thread profiles first (speedscope opens the first one), then synthetic ones; each group in
     * order of creation. An empty profile would only be an empty tab: skipped. */
    bool complete = true;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < nprof; i++) {
            const agg_profile *p = agg_profile_at(a, i);
            if (p->npoints > 0 && (p->tid != 0) == (pass == 0))
                complete &= write_profile(&w, a, p, origin, meta ? meta->resolution_ns : 0,
                                          stack, max_depth);
        }
    }
    json_end_array(&w);
    json_end_object(&w);
    free(stack);
    if (json_finish(&w) < 0)
        return -1;
    if (!complete) {
        errno = EIO;
        return -1;
    }
    errno = 0;
    if (fputc('\n', out) == EOF || fflush(out) != 0) {
        if (!errno)
            errno = EIO;
        return -1;
    }
    return 0;
}
