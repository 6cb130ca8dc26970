#include "tui_tasks.h"

#include "grow.h"
#include "tui_text.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(tui_task_row **rows, size_t *cap, size_t need)
{
    return grow_array((void **)rows, cap, need, sizeof(**rows), 256, SIZE_MAX);
}

static bool is_finished(const async_task *t)
{
    return t->state == ATS_DONE || t->state == ATS_CANCELLED;
}

static aprof_frame where_of(const async_snapshot *s, const async_task *t)
{
    aprof_frame f = {0};
    if (t->nframes && (uint64_t)t->frame_start + t->nframes <= s->nframes)
        f = s->frames[t->frame_start + t->nframes - 1];
    return f;
}

static bool visible(const async_snapshot *s, const async_task *t, const char *filter,
                    bool show_done)
{
    if (!show_done && is_finished(t))
        return false;
    if (!filter || !*filter)
        return true;
    aprof_frame w = where_of(s, t);
    return tui_contains(t->name, filter) || (w.name && tui_contains(w.name, filter)) ||
           (w.file && tui_contains(w.file, filter));
}

static bool task_row(const async_snapshot *s, uint32_t i, uint32_t depth, bool again,
                     tui_task_row **rows, size_t *cap, size_t *n)
{
    if (!reserve(rows, cap, *n + 1))
        return false;
    const async_task *t = &s->tasks[i];
    tui_task_row *row = &(*rows)[(*n)++];
    *row = (tui_task_row){
        .loop = t->loop_index, .task = i, .id = t->id, .depth = depth, .again = again,
        .tid = t->tid, .state = t->state, .wait_kind = t->wait_kind, .flags = t->flags,
        .where = where_of(s, t),
    };
    snprintf(row->name, sizeof(row->name), "%s", t->name ? t->name : "");
    return true;
}

static bool in_group(const async_task *t, uint32_t loop, uint32_t nloops)
{
    return loop == ASYNC_NO_INDEX ? t->loop_index >= nloops : t->loop_index == loop;
}

/* "chatter-2" before "chatter-10": digit runs compare as numbers. */
static int natural_cmp(const char *a, const char *b)
{
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            while (*a == '0')
                a++;
            while (*b == '0')
                b++;
            size_t la = 0, lb = 0;
            while (isdigit((unsigned char)a[la]))
                la++;
            while (isdigit((unsigned char)b[lb]))
                lb++;
            if (la != lb)
                return la < lb ? -1 : 1;
            int c = strncmp(a, b, la);
            if (c)
                return c;
            a += la;
            b += lb;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    return *a ? 1 : *b ? -1 : 0;
}

static int by_name(const void *x, const void *y, void *ctx)
{
    const async_snapshot *s = ctx;
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    int c = natural_cmp(s->tasks[a].name ? s->tasks[a].name : "",
                        s->tasks[b].name ? s->tasks[b].name : "");
    return c ? c : (a > b) - (a < b);
}

size_t tui_tasks_build(const async_snapshot *s, const char *filter, bool show_done,
                       tui_task_row **rows, size_t *cap)
{
    if (!s || s->ntasks == 0)
        return 0;
    uint32_t nt = s->ntasks;
    /* every task is pushed once in full, plus once per extra awaiter as a reminder */
    size_t stack_cap = (size_t)nt + s->nedges + 1;
    uint8_t *seen = calloc(nt, 1);
    uint32_t *order = malloc(nt * sizeof(*order));
    struct item { uint32_t task, depth; bool again; } *stack = malloc(stack_cap * sizeof(*stack));
    size_t n = 0;
    if (!seen || !stack || !order)
        goto out;
    uint32_t nloops = s->nloops < ASYNC_MAX_LOOPS ? s->nloops : ASYNC_MAX_LOOPS;
    for (uint32_t g = 0; g <= nloops; g++) {
        uint32_t loop = g < nloops ? g : ASYNC_NO_INDEX;
        uint32_t count = 0;
        for (uint32_t i = 0; i < nt; i++)
            count += in_group(&s->tasks[i], loop, nloops);
        if (count == 0)
            continue;
        if (!reserve(rows, cap, n + 1))
            goto out;
        const async_loop *L = loop != ASYNC_NO_INDEX ? &s->loops[loop] : NULL;
        tui_task_row *head = &(*rows)[n++];
        *head = (tui_task_row){.is_loop = true, .loop = loop, .ntasks = count,
                               .id = L ? L->id : 0, .tid = L ? L->tid : 0};
        snprintf(head->name, sizeof(head->name), "%s",
                 L && L->thread_name ? L->thread_name : "");
        size_t heading = n - 1, before = n;
        /* roots (awaited by nobody) first, then whatever is left (await cycles); by name */
        uint32_t norder = 0;
        for (uint32_t i = 0; i < nt; i++)
            if (in_group(&s->tasks[i], loop, nloops))
                order[norder++] = i;
        qsort_r(order, norder, sizeof(*order), by_name, (void *)s);
        for (int pass = 0; pass < 2; pass++) {
            for (uint32_t oi = 0; oi < norder; oi++) {
                uint32_t r = order[oi];
                const async_task *rt = &s->tasks[r];
                if (seen[r] || !in_group(rt, loop, nloops) || (pass == 0 && rt->nby > 0))
                    continue;
                size_t sp = 0;
                seen[r] = 1;
                stack[sp++] = (struct item){r, 0, false};
                while (sp > 0) {
                    struct item it = stack[--sp];
                    const async_task *t = &s->tasks[it.task];
                    if (visible(s, t, filter, show_done) &&
                        !task_row(s, it.task, it.depth, it.again, rows, cap, &n))
                        goto out;
                    uint64_t end = (uint64_t)t->awaits_start + t->nawaits;
                    if (it.again || end > s->nedges)
                        continue;
                    /* children pushed in reverse so that they come out in edge order; one seen
                     * before (another awaiter, or a cycle back up) is only a reminder row */
                    for (uint32_t k = t->nawaits; k > 0 && sp < stack_cap; k--) {
                        uint32_t c = s->edges[t->awaits_start + k - 1];
                        if (c >= nt)
                            continue;
                        stack[sp++] = (struct item){c, it.depth + 1, seen[c] != 0};
                        seen[c] = 1;
                    }
                }
            }
        }
        if (n == before && filter && *filter)
            n = heading; /* no task of this loop matches: drop its heading too */
    }
out:
    free(seen);
    free(order);
    free(stack);
    return n;
}

uint32_t tui_tasks_alive(const async_snapshot *s)
{
    uint32_t n = 0;
    for (uint32_t i = 0; s && i < s->ntasks; i++)
        n += !is_finished(&s->tasks[i]) && s->tasks[i].state != ATS_UNKNOWN;
    return n;
}
