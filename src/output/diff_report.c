#include "diff_report.h"

static void side_text(FILE *out, const char *label, const recording *r)
{
    fprintf(out, "%-7s%s", label, r->path);
    if (r->has_profile)
        fprintf(out, ": %.2f s sampled in %llu stack entries", r->total_s,
                (unsigned long long)r->nsamples);
    if (r->has_summary)
        fprintf(out, "%s%llu stalls", r->has_profile ? ", " : ": ",
                (unsigned long long)r->stalls);
    fputc('\n', out);
}

static void culprits_text(FILE *out, const char *title, const rec_culprit *const *c, size_t n)
{
    fprintf(out, "%s:%s\n", title, n ? "" : " none");
    for (size_t i = 0; i < n; i++)
        fprintf(out, "    %s (%s:%lld)  %llu stalls, %.3f s\n", c[i]->function, c[i]->file,
                (long long)c[i]->line, (unsigned long long)c[i]->count, c[i]->total_s);
}

static void lag_text(FILE *out, const char *sep, const char *what, double b, double a)
{
    fprintf(out, "%s %s %.1f -> %.1f ms", sep, what, 1e3 * b, 1e3 * a);
}

void diff_report_text(FILE *out, const recording *before, const recording *after,
                      const rec_diff *d, size_t top, const diff_verdict *v, size_t nv)
{
    side_text(out, "before", before);
    side_text(out, "after", after);
    if (before->has_profile && after->has_profile) {
        fprintf(out, "\nFunctions whose share of sampled time changed most (change in points):\n");
        fprintf(out, "  %-23s   %s\n", "   on the stack (total)", "    innermost (self)");
        fprintf(out, "  %7s %7s %7s   %7s %7s %7s   %s\n", "before", "after", "change", "before",
                "after", "change", "function");
        size_t n = d->nfns < top ? d->nfns : top;
        for (size_t i = 0; i < n; i++) {
            const fn_change *c = &d->fns[i];
            fprintf(out, "  %6.1f%% %6.1f%% %+7.1f   %6.1f%% %6.1f%% %+7.1f   %s%s%s%s\n",
                    100 * c->before_total, 100 * c->after_total,
                    100 * (c->after_total - c->before_total), 100 * c->before_self,
                    100 * c->after_self, 100 * (c->after_self - c->before_self), c->name,
                    c->file[0] ? " (" : "", c->file, c->file[0] ? ")" : "");
        }
        if (!n)
            fprintf(out, "  (no samples)\n");
    }
    if (before->has_summary && after->has_summary) {
        fprintf(out, "\nStalls: %llu -> %llu; stalled %.3f s -> %.3f s; longest %.3f s -> %.3f s\n",
                (unsigned long long)before->stalls, (unsigned long long)after->stalls,
                before->stall_total_s, after->stall_total_s, before->stall_max_s,
                after->stall_max_s);
        if (before->has_lag && after->has_lag) {
            fprintf(out, "Loop lag:");
            lag_text(out, "", "p50", before->lag_p50_s, after->lag_p50_s);
            lag_text(out, ",", "p95", before->lag_p95_s, after->lag_p95_s);
            lag_text(out, ",", "p99", before->lag_p99_s, after->lag_p99_s);
            lag_text(out, ",", "max", before->lag_max_s, after->lag_max_s);
            fputc('\n', out);
        }
        culprits_text(out, "Culprit lines that appeared", d->appeared, d->nappeared);
        culprits_text(out, "Culprit lines that vanished", d->vanished, d->nvanished);
    }
    if (nv)
        fputc('\n', out);
    for (size_t i = 0; i < nv; i++)
        fprintf(out, "--fail-on %s: %s: %s\n", v[i].cond->text, v[i].holds ? "HOLDS" : "holds not",
                v[i].why);
}

static void side_json(json_writer *w, const recording *r)
{
    json_begin_object(w);
    json_kv_string(w, "file", r->path);
    if (r->has_profile) {
        json_kv_int(w, "entries", (long long)r->nsamples);
        json_key(w, "sampled_s");
        json_double(w, r->total_s);
    }
    if (r->has_summary) {
        json_kv_int(w, "stalls", (long long)r->stalls);
        json_key(w, "stall_total_s");
        json_double(w, r->stall_total_s);
        json_key(w, "stall_max_s");
        json_double(w, r->stall_max_s);
        if (r->has_lag) {
            json_key(w, "loop_lag");
            json_begin_object(w);
            json_key(w, "p50_s");
            json_double(w, r->lag_p50_s);
            json_key(w, "p95_s");
            json_double(w, r->lag_p95_s);
            json_key(w, "p99_s");
            json_double(w, r->lag_p99_s);
            json_key(w, "max_s");
            json_double(w, r->lag_max_s);
            json_end_object(w);
        }
    }
    json_end_object(w);
}

static void culprits_json(json_writer *w, const char *key, const rec_culprit *const *c, size_t n)
{
    json_key(w, key);
    json_begin_array(w);
    for (size_t i = 0; i < n; i++) {
        json_begin_object(w);
        json_kv_string(w, "function", c[i]->function);
        json_kv_string(w, "file", c[i]->file);
        json_kv_int(w, "line", (long long)c[i]->line);
        json_kv_int(w, "count", (long long)c[i]->count);
        json_key(w, "total_s");
        json_double(w, c[i]->total_s);
        json_end_object(w);
    }
    json_end_array(w);
}

void diff_report_json(json_writer *w, const recording *before, const recording *after,
                      const rec_diff *d, size_t top, const diff_verdict *v, size_t nv)
{
    json_begin_object(w);
    json_key(w, "before");
    side_json(w, before);
    json_key(w, "after");
    side_json(w, after);
    if (before->has_profile && after->has_profile) {
        json_key(w, "functions");
        json_begin_array(w);
        size_t n = d->nfns < top ? d->nfns : top;
        for (size_t i = 0; i < n; i++) {
            const fn_change *c = &d->fns[i];
            json_begin_object(w);
            json_kv_string(w, "function", c->name);
            json_kv_string(w, "file", c->file);
            json_key(w, "before_total");
            json_double(w, c->before_total);
            json_key(w, "after_total");
            json_double(w, c->after_total);
            json_key(w, "before_self");
            json_double(w, c->before_self);
            json_key(w, "after_self");
            json_double(w, c->after_self);
            json_end_object(w);
        }
        json_end_array(w);
    }
    if (before->has_summary && after->has_summary) {
        culprits_json(w, "culprits_appeared", d->appeared, d->nappeared);
        culprits_json(w, "culprits_vanished", d->vanished, d->nvanished);
    }
    json_key(w, "conditions");
    json_begin_array(w);
    bool any = false;
    for (size_t i = 0; i < nv; i++) {
        json_begin_object(w);
        json_kv_string(w, "condition", v[i].cond->text);
        json_key(w, "holds");
        json_bool(w, v[i].holds);
        json_kv_string(w, "why", v[i].why);
        json_end_object(w);
        any |= v[i].holds;
    }
    json_end_array(w);
    json_key(w, "failed");
    json_bool(w, any);
    json_end_object(w);
}
