#include "recording_diff.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double share(double part, double whole)
{
    return whole > 0 ? part / whole : 0;
}

static double change_of(const fn_change *c)
{
    double t = fabs(c->after_total - c->before_total), s = fabs(c->after_self - c->before_self);
    return t > s ? t : s;
}

static int by_change(const void *a, const void *b)
{
    double x = change_of(a), y = change_of(b);
    if (x != y)
        return x < y ? 1 : -1;
    const fn_change *p = a, *q = b;
    int c = strcmp(p->name, q->name);
    return c ? c : strcmp(p->file, q->file);
}

static const rec_function *find_fn(const recording *r, const char *name, const char *file)
{
    for (size_t i = 0; i < r->nfunctions; i++)
        if (strcmp(r->functions[i].name, name) == 0 && strcmp(r->functions[i].file, file) == 0)
            return &r->functions[i];
    return NULL;
}

static bool same_culprit(const rec_culprit *a, const rec_culprit *b)
{
    return a->line == b->line && strcmp(a->function, b->function) == 0 &&
           strcmp(a->file, b->file) == 0;
}

static const rec_culprit **only_in(const recording *r, const recording *other, size_t *n)
{
    *n = 0;
    const rec_culprit **out = calloc(r->nculprits + 1, sizeof(*out));
    if (!out)
        return NULL;
    for (size_t i = 0; i < r->nculprits; i++) {
        bool found = false;
        for (size_t k = 0; k < other->nculprits && !found; k++)
            found = same_culprit(&r->culprits[i], &other->culprits[k]);
        if (!found)
            out[(*n)++] = &r->culprits[i];
    }
    return out;
}

int recording_diff(const recording *before, const recording *after, rec_diff *out)
{
    memset(out, 0, sizeof(*out));
    out->fns = calloc(before->nfunctions + after->nfunctions + 1, sizeof(*out->fns));
    if (!out->fns)
        return -1;
    /* Functions of both sides; a quadratic match is fine for the few thousand a profile has,
     * and the lookup by the other side uses a linear scan only once per function. */
    for (int side = 0; side < 2; side++) {
        const recording *r = side ? after : before, *o = side ? before : after;
        for (size_t i = 0; i < r->nfunctions; i++) {
            const rec_function *f = &r->functions[i];
            const rec_function *g = find_fn(o, f->name, f->file);
            if (side == 1 && g)
                continue; /* already paired from the before side */
            const rec_function *b = side ? g : f, *a = side ? f : g;
            out->fns[out->nfns++] = (fn_change){
                f->name, f->file,
                b ? share(b->total_s, before->total_s) : 0, a ? share(a->total_s, after->total_s) : 0,
                b ? share(b->self_s, before->total_s) : 0, a ? share(a->self_s, after->total_s) : 0};
        }
    }
    qsort(out->fns, out->nfns, sizeof(*out->fns), by_change);
    out->appeared = only_in(after, before, &out->nappeared);
    out->vanished = only_in(before, after, &out->nvanished);
    if (!out->appeared || !out->vanished) {
        rec_diff_free(out);
        return -1;
    }
    return 0;
}

void rec_diff_free(rec_diff *d)
{
    free(d->fns);
    free(d->appeared);
    free(d->vanished);
    memset(d, 0, sizeof(*d));
}

bool diff_cond_parse(const char *s, diff_cond *out)
{
    static const struct { const char *prefix; diff_cond_kind kind; bool arg; } kinds[] = {
        {"function-share:", COND_FUNCTION_SHARE, true},
        {"stall-total:", COND_STALL_TOTAL, true},
        {"new-culprit", COND_NEW_CULPRIT, false},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t n = strlen(kinds[i].prefix);
        if (strncmp(s, kinds[i].prefix, n) != 0)
            continue;
        *out = (diff_cond){kinds[i].kind, 0, s};
        if (!kinds[i].arg)
            return s[n] == '\0';
        char *end;
        out->threshold = strtod(s + n, &end);
        return end != s + n && *end == '\0' && out->threshold >= 0 && isfinite(out->threshold);
    }
    return false;
}

bool diff_cond_answerable(const diff_cond *c, const recording *before, const recording *after)
{
    if (c->kind == COND_FUNCTION_SHARE)
        return before->has_profile && after->has_profile;
    return before->has_summary && after->has_summary;
}

bool diff_cond_holds(const diff_cond *c, const recording *before, const recording *after,
                     const rec_diff *d, char *why, size_t len)
{
    switch (c->kind) {
    case COND_FUNCTION_SHARE: {
        const fn_change *worst = NULL;
        for (size_t i = 0; i < d->nfns; i++)
            if (!worst || d->fns[i].after_total - d->fns[i].before_total >
                              worst->after_total - worst->before_total)
                worst = &d->fns[i];
        double grew = worst ? 100 * (worst->after_total - worst->before_total) : 0;
        if (!worst)
            snprintf(why, len, "no function in either profile");
        else
            snprintf(why, len, "the largest growth: %s (%s) %+.1f points (%.1f%% -> %.1f%%)",
                     worst->name, worst->file, grew, 100 * worst->before_total,
                     100 * worst->after_total);
        return grew > c->threshold;
    }
    case COND_STALL_TOTAL: {
        double b = before->stall_total_s, a = after->stall_total_s;
        bool holds = a > b * (1 + c->threshold / 100) && a > 0;
        if (b > 0)
            snprintf(why, len, "stalled %.3f s -> %.3f s (%+.0f%%)", b, a, 100 * (a - b) / b);
        else
            snprintf(why, len, "stalled %.3f s -> %.3f s", b, a);
        return holds;
    }
    case COND_NEW_CULPRIT:
        if (d->nappeared)
            snprintf(why, len, "%zu new: %s (%s:%lld)%s", d->nappeared, d->appeared[0]->function,
                     d->appeared[0]->file, (long long)d->appeared[0]->line,
                     d->nappeared > 1 ? " ..." : "");
        else
            snprintf(why, len, "no stall culprit line that was not there before");
        return d->nappeared > 0;
    }
    return false;
}
