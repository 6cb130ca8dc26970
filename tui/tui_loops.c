#include "tui_loops.h"

#include "tui_text.h"

#include <stdlib.h>
#include <string.h>

static tui_loop_lag *lag_of(tui_lags *l, const aprof_thread_sample *t)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->loops[i].tid == t->tid)
            return &l->loops[i];
    if (l->n == TUI_MAX_LOOPS)
        return NULL;
    tui_loop_lag *g = &l->loops[l->n++];
    memset(g, 0, sizeof(*g));
    g->tid = t->tid;
    g->kind = t->loop;
    return g;
}

static void end_stretch(tui_loop_lag *g, uint64_t at)
{
    uint64_t len = at > g->busy_start ? at - g->busy_start : 0;
    g->stretches++;
    if (len > g->worst_ns)
        g->worst_ns = len;
    uint64_t b = at / TUI_LAG_BUCKET_NS;
    if (b != g->bucket) {
        g->prev_bucket_max = b == g->bucket + 1 ? g->bucket_max : 0;
        g->bucket = b;
        g->bucket_max = 0;
    }
    if (len > g->bucket_max)
        g->bucket_max = len;
}

void tui_lags_feed(tui_lags *l, const aprof_sample *s)
{
    for (uint32_t i = 0; i < s->nthreads; i++) {
        const aprof_thread_sample *t = &s->threads[i];
        if (t->loop == LOOP_NONE || (t->flags & TSF_TORN))
            continue;
        tui_loop_lag *g = lag_of(l, t);
        if (!g)
            continue;
        g->thread_name = t->name;
        uint64_t now = s->t_ns;
        bool busy = !t->loop_idle;
        if (!g->last_t) {
            g->busy = busy;
            g->busy_start = now;
        } else if (busy != g->busy) {
            uint64_t mid = g->last_t + (now > g->last_t ? (now - g->last_t) / 2 : 0);
            if (busy)
                g->busy_start = mid;
            else
                end_stretch(g, mid);
            g->busy = busy;
        }
        g->last_t = now;
    }
}

uint64_t tui_lag_busy_for(const tui_loop_lag *l, uint64_t now)
{
    if (!l->busy)
        return 0;
    uint64_t t = now > l->last_t ? now : l->last_t;
    return t > l->busy_start ? t - l->busy_start : 0;
}

uint64_t tui_lag_current(const tui_loop_lag *l, uint64_t now)
{
    uint64_t b = now / TUI_LAG_BUCKET_NS, cur = 0;
    if (l->bucket == b)
        cur = l->bucket_max > l->prev_bucket_max ? l->bucket_max : l->prev_bucket_max;
    else if (l->bucket + 1 == b)
        cur = l->bucket_max;
    uint64_t running = tui_lag_busy_for(l, now);
    return running > cur ? running : cur;
}

uint64_t tui_lag_worst(const tui_loop_lag *l, uint64_t now)
{
    uint64_t running = tui_lag_busy_for(l, now);
    return running > l->worst_ns ? running : l->worst_ns;
}

/* ---- stalls ----------------------------------------------------------------------------------- */

void tui_stall_list_clear(tui_stall_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->ev[i].stack);
    l->n = 0;
}

void tui_stall_list_free(tui_stall_list *l)
{
    tui_stall_list_clear(l);
    free(l->ev);
    memset(l, 0, sizeof(*l));
}

int tui_stall_list_sync(tui_stall_list *l, const stall_detector *d)
{
    size_t total = d ? stall_count(d) : 0;
    while (l->n < total) {
        if (l->n == l->cap) {
            size_t ncap = l->cap ? l->cap * 2 : 64;
            stall_event *ne = realloc(l->ev, ncap * sizeof(*ne));
            if (!ne)
                return -1;
            l->ev = ne;
            l->cap = ncap;
        }
        const stall_event *e = stall_at(d, l->n);
        stall_event copy = *e;
        copy.stack = NULL;
        copy.nstack = 0;
        if (e->nstack && e->stack) {
            copy.stack = malloc(e->nstack * sizeof(aprof_frame));
            if (!copy.stack)
                return -1;
            memcpy(copy.stack, e->stack, e->nstack * sizeof(aprof_frame));
            copy.nstack = e->nstack;
        }
        l->ev[l->n++] = copy;
    }
    return 0;
}

static int newest_first(const void *x, const void *y, void *ctx)
{
    const stall_event *ev = ctx;
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    if (ev[a].start_ns != ev[b].start_ns)
        return ev[a].start_ns < ev[b].start_ns ? 1 : -1;
    return (a < b) - (a > b);
}

size_t tui_stalls_order(const tui_stall_list *l, const char *filter, uint32_t *out)
{
    size_t n = 0;
    for (size_t i = l->n; i-- > 0;) {
        const stall_event *e = &l->ev[i];
        if (filter && *filter && !tui_contains(e->culprit.name, filter) &&
            !tui_contains(e->culprit.file, filter) && !tui_contains(e->task, filter) &&
            !tui_contains(e->callback, filter) && !tui_contains(e->thread_name, filter))
            continue;
        out[n++] = (uint32_t)i;
    }
    if (n > 1)
        qsort_r(out, n, sizeof(*out), newest_first, l->ev);
    return n;
}
