/* Printing an asyncio snapshot: the text tree of `aprof dump` and its JSON members. */
#include "asyncio_print.h"

#include <stdlib.h>
#include <string.h>

#define TREE_MAX_DEPTH 128u /* deeper await trees are cut (and say so) */
#define TASK_INCOMPLETE (ATF_UNREADABLE | ATF_PARTIAL | ATF_STACK_TRUNCATED | ATF_CHANGED)

/* ---- text --------------------------------------------------------------------------------- */

typedef struct text_ctx {
    FILE *out;
    const async_snapshot *s;
    uint8_t *printed;
    uint32_t *cut;       /* tasks whose awaited tasks did not fit in the depth: continued later */
    uint32_t ncut;
    char prefix[TREE_MAX_DEPTH * 4 * 3 + 1]; /* 4 columns per level, up to 3 bytes each */
} text_ctx;

static void print_task_line(text_ctx *c, const async_task *t, const char *lead)
{
    FILE *o = c->out;
    fprintf(o, "%s%sTask \"%s\" [%s]", c->prefix, lead, t->name, async_task_state_name(t->state));
    if (t->flags & ATF_UNREADABLE) {
        fprintf(o, " (unreadable) id 0x%llx\n", (unsigned long long)t->id);
        return;
    }
    if (t->wait_kind != AWK_NONE) {
        fprintf(o, " awaiting %s", async_wait_kind_name(t->wait_kind));
        if (t->wait_id)
            fprintf(o, " 0x%llx", (unsigned long long)t->wait_id);
    }
    fprintf(o, "  id 0x%llx", (unsigned long long)t->id);
    if (t->flags & ATF_IN_CYCLE)
        fputs("  (in an await cycle)", o);
    if (t->flags & (ATF_PARTIAL | ATF_STACK_TRUNCATED))
        fputs("  (incomplete)", o);
    if (t->flags & ATF_CHANGED)
        fputs("  (changed while read)", o);
    fputc('\n', o);
}

/* The coroutine stack under the task line; c->prefix is already the children's prefix. */
static void print_stack(text_ctx *c, const async_task *t)
{
    const async_snapshot *s = c->s;
    const char *bar = t->nawaits ? "│   " : "    ";
    for (uint32_t k = 0; k < t->nframes; k++) {
        const aprof_frame *f = &s->frames[t->frame_start + k];
        fprintf(c->out, "%s%s%s (%s:%d)\n", c->prefix, bar, f->name, f->file, (int)f->line);
    }
}

static void print_node(text_ctx *c, uint32_t i, bool last, uint32_t depth)
{
    const async_snapshot *s = c->s;
    const async_task *t = &s->tasks[i];
    const char *lead = depth == 0 ? "" : last ? "└── " : "├── ";
    const char *cont = depth == 0 ? "" : last ? "    " : "│   ";
    if (c->printed[i]) {
        fprintf(c->out, "%s%sTask \"%s\" (shown above) id 0x%llx\n", c->prefix, lead, t->name,
                (unsigned long long)t->id);
        return;
    }
    c->printed[i] = 1;
    print_task_line(c, t, lead);
    size_t len = strlen(c->prefix);
    strcat(c->prefix, cont);
    print_stack(c, t);
    if (t->nawaits && depth >= TREE_MAX_DEPTH) {
        fprintf(c->out, "%s└── ... (continued below)\n", c->prefix);
        c->cut[c->ncut++] = i; /* each task is expanded once: ncut < ntasks */
    } else
        for (uint32_t k = 0; k < t->nawaits; k++)
            print_node(c, s->edges[t->awaits_start + k], k + 1 == t->nawaits, depth + 1);
    c->prefix[len] = '\0';
}

/* Subtrees cut for depth, each under a line naming the task that awaits them (they may be cut
 * again: the list grows while it is walked). */
static void print_continuations(text_ctx *c)
{
    const async_snapshot *s = c->s;
    for (uint32_t k = 0; k < c->ncut; k++) {
        const async_task *t = &s->tasks[c->cut[k]];
        for (uint32_t j = 0; j < t->nawaits; j++) {
            fprintf(c->out, "\n(continued: awaited by \"%s\" id 0x%llx)\n", t->name,
                    (unsigned long long)t->id);
            print_node(c, s->edges[t->awaits_start + j], true, 0);
        }
    }
    c->ncut = 0;
}

void async_print_text(FILE *out, const async_snapshot *s)
{
    if (s->flags & ASF_NO_ASYNCIO) {
        fputs("\nasyncio: not imported\n", out);
        return;
    }
    if (s->flags & ASF_UNSUPPORTED) {
        fputs("\nasyncio: tasks not read on this Python version yet (docs/limits.md)\n", out);
        return;
    }
    fprintf(out, "\nasyncio: %u task%s in %u event loop%s\n", s->ntasks, s->ntasks == 1 ? "" : "s",
            s->nloops, s->nloops == 1 ? "" : "s");
    if (s->flags & ASF_TASKS_TRUNCATED)
        fputs("  (more tasks than the cap: the rest are not shown)\n", out);
    if (s->flags & ASF_REGISTRY_ERROR)
        fputs("  (a task registry could not be read completely)\n", out);
    if (s->ntasks == 0)
        return;
    text_ctx c = {out, s, calloc(s->ntasks, 1), calloc(s->ntasks, sizeof(uint32_t)), 0, ""};
    if (!c.printed || !c.cut) {
        free(c.printed);
        free(c.cut);
        return;
    }
    for (uint32_t li = 0; li < s->nloops; li++) {
        const async_loop *l = &s->loops[li];
        fprintf(out, "\nEvent loop 0x%llx", (unsigned long long)l->id);
        if (l->tid)
            fprintf(out, " on thread %d \"%s\"", (int)l->tid, l->thread_name);
        else
            fputs(" (thread unknown)", out);
        if (l->running_task != ASYNC_NO_INDEX)
            fprintf(out, ", running task \"%s\"", s->tasks[l->running_task].name);
        fprintf(out, ", %u task%s\n", l->ntasks, l->ntasks == 1 ? "" : "s");
        for (uint32_t i = 0; i < s->ntasks; i++) {
            const async_task *t = &s->tasks[i];
            if (t->loop_index == li && t->nby == 0) {
                fputc('\n', out);
                print_node(&c, i, true, 0);
            }
        }
        /* tasks awaited only from inside an await cycle have no root: start at the cycle */
        for (uint32_t i = 0; i < s->ntasks; i++) {
            const async_task *t = &s->tasks[i];
            if (t->loop_index == li && !c.printed[i] && (t->flags & ATF_IN_CYCLE)) {
                fputc('\n', out);
                print_node(&c, i, true, 0);
            }
        }
        print_continuations(&c);
    }
    if (s->ncycles) {
        fputs("\nAwait cycles:\n", out);
        for (uint32_t k = 0; k < s->ncycles; k++) {
            fputs("  ", out);
            for (uint32_t j = 0; j < s->cycle_len[k]; j++)
                fprintf(out, "\"%s\" -> ", s->tasks[s->edges[s->cycle_start[k] + j]].name);
            fprintf(out, "\"%s\"\n", s->tasks[s->edges[s->cycle_start[k]]].name);
        }
    }
    bool header = false;
    for (uint32_t i = 0; i < s->ntasks; i++) {
        if (c.printed[i])
            continue;
        if (!header) {
            fputs("\nOther tasks (event loop unknown, or awaited from an await cycle only):\n", out);
            header = true;
        }
        fputc('\n', out);
        print_node(&c, i, true, 0);
        print_continuations(&c);
    }
    free(c.printed);
    free(c.cut);
}

/* ---- JSON --------------------------------------------------------------------------------- */

static void json_task_ids(json_writer *w, const async_snapshot *s, uint32_t start, uint32_t n)
{
    json_begin_array(w);
    for (uint32_t k = 0; k < n; k++)
        json_uint(w, s->tasks[s->edges[start + k]].id);
    json_end_array(w);
}

void async_print_json(json_writer *w, const async_snapshot *s)
{
    json_key(w, "asyncio");
    json_begin_object(w);
    json_kv_string(w, "status", (s->flags & ASF_NO_ASYNCIO)    ? "not imported"
                                : (s->flags & ASF_UNSUPPORTED) ? "unsupported"
                                                               : "ok");
    bool complete = !(s->flags & (ASF_TASKS_TRUNCATED | ASF_FRAMES_TRUNCATED | ASF_REGISTRY_ERROR));
    for (uint32_t i = 0; i < s->ntasks && complete; i++)
        complete = !(s->tasks[i].flags & TASK_INCOMPLETE);
    json_key(w, "complete");
    json_bool(w, complete);
    json_end_object(w);

    json_key(w, "loops");
    json_begin_array(w);
    for (uint32_t li = 0; li < s->nloops; li++) {
        const async_loop *l = &s->loops[li];
        json_begin_object(w);
        json_kv_uint(w, "id", l->id);
        json_kv_int(w, "thread", l->tid);
        json_kv_string(w, "thread_name", l->thread_name);
        json_kv_uint(w, "running_task",
                     l->running_task == ASYNC_NO_INDEX ? 0 : s->tasks[l->running_task].id);
        json_kv_uint(w, "ntasks", l->ntasks);
        json_end_object(w);
    }
    json_end_array(w);

    json_key(w, "tasks");
    json_begin_array(w);
    for (uint32_t i = 0; i < s->ntasks; i++) {
        const async_task *t = &s->tasks[i];
        json_begin_object(w);
        json_kv_uint(w, "id", t->id);
        json_kv_string(w, "name", t->name);
        json_kv_string(w, "state", async_task_state_name(t->state));
        json_kv_int(w, "thread", t->tid);
        json_kv_uint(w, "loop", t->loop);
        json_kv_uint(w, "coro", t->coro);
        json_key(w, "readable");
        json_bool(w, !(t->flags & ATF_UNREADABLE));
        json_key(w, "complete");
        json_bool(w, !(t->flags & TASK_INCOMPLETE));
        json_key(w, "coroutine_stack");
        json_begin_array(w);
        for (uint32_t k = 0; k < t->nframes; k++) {
            const aprof_frame *f = &s->frames[t->frame_start + k];
            json_begin_object(w);
            json_kv_string(w, "function", f->name);
            json_kv_string(w, "file", f->file);
            json_kv_int(w, "line", f->line);
            json_end_object(w);
        }
        json_end_array(w);
        json_key(w, "awaiting");
        json_begin_object(w);
        json_kv_string(w, "kind", async_wait_kind_name(t->wait_kind));
        if (t->wait_id)
            json_kv_uint(w, "id", t->wait_id);
        json_end_object(w);
        json_key(w, "awaited_by");
        json_task_ids(w, s, t->by_start, t->nby);
        json_key(w, "awaits");
        json_task_ids(w, s, t->awaits_start, t->nawaits);
        json_end_object(w);
    }
    json_end_array(w);

    json_key(w, "await_cycles");
    json_begin_array(w);
    for (uint32_t k = 0; k < s->ncycles; k++)
        json_task_ids(w, s, s->cycle_start[k], s->cycle_len[k]);
    json_end_array(w);
}
