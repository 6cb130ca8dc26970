#include "tui_loops.h"

#include "grow.h"
#include "tui_text.h"

#include <stdlib.h>
#include <string.h>

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
        if (!grow_array((void **)&l->ev, &l->cap, l->n + 1, sizeof(*l->ev), 64, SIZE_MAX))
            return -1;
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
