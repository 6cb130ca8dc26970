#include "async_stitch.h"

#include "redact.h"

#include <stdio.h>
#include <string.h>

#define MAX_CHAIN 64

static void push(aprof_frame *out, uint32_t *n, uint32_t cap, aprof_frame f)
{
    if (*n < cap)
        out[(*n)++] = f;
}

static aprof_frame task_frame(strtab *st, const async_task *t, bool exact_names)
{
    char buf[512];
    size_t keep = exact_names ? 0 : task_name_group_len(t->name);
    if (keep)
        snprintf(buf, sizeof(buf), "<task %.*s*>", (int)(keep < 400 ? keep : 400), t->name);
    else
        snprintf(buf, sizeof(buf), "<task %s>", t->name);
    const char *name = strtab_intern_cstr(st, buf);
    return (aprof_frame){name ? name : "<task>", "", 0, FRAME_TASK, 0};
}

void async_stitch_chain(const async_snapshot *s, uint32_t i, strtab *st, aprof_frame *out,
                        uint32_t *n, uint32_t cap, bool exact_names)
{
    uint32_t chain[MAX_CHAIN];
    uint32_t len = async_root_chain(s, i, chain, MAX_CHAIN);
    for (uint32_t k = len; k-- > 1;) {
        const async_task *t = &s->tasks[chain[k]];
        push(out, n, cap, task_frame(st, t, exact_names));
        for (uint32_t f = 0; f < t->nframes; f++)
            push(out, n, cap, s->frames[t->frame_start + f]);
    }
    if (i < s->ntasks)
        push(out, n, cap, task_frame(st, &s->tasks[i], exact_names));
}

uint32_t async_stitch_thread(const async_snapshot *s, const aprof_thread_sample *t, strtab *st,
                             aprof_frame *out, uint32_t cap, const async_chain_check *check,
                             bool exact_names, uint32_t *running)
{
    if (running)
        *running = ASYNC_NO_INDEX;
    if (!s || s->ntasks == 0)
        return 0;
    uint32_t fi;
    uint32_t i = async_task_of_thread(s, t, &fi);
    if (i == ASYNC_NO_INDEX)
        return 0;
    const async_task *task = &s->tasks[i];
    const aprof_frame *coro = task->nframes ? &s->frames[task->frame_start] : NULL;
    if (!coro || coro->name != t->frames[fi].name || coro->file != t->frames[fi].file)
        return 0; /* the address now holds another coroutine */
    uint32_t chain[MAX_CHAIN];
    uint32_t len = async_root_chain(s, i, chain, MAX_CHAIN);
    uint32_t valid = check ? check->still_valid(check->ud, s, chain, len) : len;
    if (valid == 0)
        return 0; /* the running task itself is not the one the snapshot knew */
    uint32_t n = 0;
    for (uint32_t k = 0; k < fi; k++)
        push(out, &n, cap, t->frames[k]);
    if (valid < len) {
        const char *mark = strtab_intern_cstr(st, "<awaiters unknown>");
        push(out, &n, cap, (aprof_frame){mark ? mark : "<?>", "", 0, FRAME_MARK, 0});
    }
    for (uint32_t k = valid; k-- > 1;) {
        const async_task *a = &s->tasks[chain[k]];
        push(out, &n, cap, task_frame(st, a, exact_names));
        for (uint32_t f = 0; f < a->nframes; f++)
            push(out, &n, cap, s->frames[a->frame_start + f]);
    }
    push(out, &n, cap, task_frame(st, task, exact_names));
    for (uint32_t k = fi; k < t->nframes; k++)
        push(out, &n, cap, t->frames[k]);
    if (running)
        *running = i;
    return n;
}
