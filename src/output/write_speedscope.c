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
#include "writers.h"

#include <errno.h>
#include <stdlib.h>

#define SPEEDSCOPE_SCHEMA "https://www.speedscope.app/file-format-schema.json"

static uint64_t point_start(const agg_point *pt)
{
    return pt->t_ns > pt->weight_ns ? pt->t_ns - pt->weight_ns : 0;
}

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

static void write_profile(json_writer *w, const agg *a, const agg_profile *p, uint64_t origin,
                          uint32_t *stack, uint32_t max_depth)
{
    uint64_t start = UINT64_MAX, end = 0;
    for (size_t i = 0; i < p->npoints; i++) {
        uint64_t s = point_start(&p->points[i]);
        if (s < start)
            start = s;
        if (p->points[i].t_ns > end)
            end = p->points[i].t_ns;
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
    for (size_t i = 0; i < p->npoints; i++) {
        uint32_t depth = agg_stack_frames(a, p->points[i].node, stack, max_depth);
        json_begin_array(w);
        for (uint32_t d = 0; d < depth; d++)
            json_uint(w, stack[d]);
        json_end_array(w);
    }
    json_end_array(w);
    json_key(w, "weights");
    json_begin_array(w);
    for (size_t i = 0; i < p->npoints; i++)
        json_seconds_ns(w, p->points[i].weight_ns);
    json_end_array(w);
    json_end_object(w);
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
        for (size_t j = 0; j < p->npoints; j++) {
            uint64_t s = point_start(&p->points[j]);
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
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < nprof; i++) {
            const agg_profile *p = agg_profile_at(a, i);
            if (p->npoints > 0 && (p->tid != 0) == (pass == 0))
                write_profile(&w, a, p, origin, stack, max_depth);
        }
    }
    json_end_array(&w);
    json_end_object(&w);
    free(stack);
    if (json_finish(&w) < 0)
        return -1;
    errno = 0;
    if (fputc('\n', out) == EOF || fflush(out) != 0) {
        if (!errno)
            errno = EIO;
        return -1;
    }
    return 0;
}
