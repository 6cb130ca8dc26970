/* View 2, Tasks: the live asyncio task tree, who awaits whom. */
#include "tui_app.h"

#include "tui_text.h"

#include <curses.h>
#include <stdio.h>
#include <string.h>

#define W_STATE 10
#define W_KIND 10

void tui_tasks_build_locked(tui_app *app)
{
    tui_list *l = &app->list[TUI_VIEW_TASKS];
    uint64_t sel_id = 0;
    bool sel_loop = false;
    if (l->sel >= 0 && (size_t)l->sel < app->ntask_rows) {
        sel_id = app->task_rows[l->sel].id;
        sel_loop = app->task_rows[l->sel].is_loop;
    }
    const async_snapshot *s = app->live->tasks;
    app->ntask_rows = s ? tui_tasks_build(s, app->filter, app->show_done, &app->task_rows,
                                          &app->cap_task_rows)
                        : 0;
    for (size_t i = 0; sel_id && i < app->ntask_rows; i++)
        if (app->task_rows[i].id == sel_id && app->task_rows[i].is_loop == sel_loop) {
            l->sel = (int)i;
            break;
        }
    tui_list_clamp(l, (int)app->ntask_rows, tui_view_height(app));
}

static const char *state_text(uint8_t st)
{
    return async_task_state_name(st);
}

static int state_attr(const tui_app *app, uint8_t st)
{
    switch (st) {
    case ATS_RUNNING: return tui_attr(app, TUI_C_OK) | A_BOLD;
    case ATS_DONE:
    case ATS_CANCELLED: return tui_attr(app, TUI_C_DIM);
    case ATS_UNKNOWN: return tui_attr(app, TUI_C_WARN);
    default: return 0;
    }
}

void tui_tasks_draw(tui_app *app, int y0, int h)
{
    int wname = (app->cols - W_STATE - W_KIND) * 2 / 5;
    if (wname < 16)
        wname = 16;
    int xkind = W_STATE + wname + 1, xwhere = xkind + W_KIND;
    tui_put(app, y0 - 1, 0, "", app->cols, true, A_BOLD);
    tui_put(app, y0 - 1, 0, "STATE", W_STATE, false, A_BOLD);
    char head[256];
    if (app->opts.follow_root && app->hdr.nprocs)
        snprintf(head, sizeof(head), "TASKS OF PROCESS %d (%zu/%zu, n next) %s",
                 (int)app->hdr.tasks_pid, app->hdr.shown + 1, app->hdr.nprocs,
                 app->hdr.tasks_label);
    else
        snprintf(head, sizeof(head), "TASK (awaited-by tree)");
    tui_put(app, y0 - 1, W_STATE, head, wname, false, A_BOLD);
    tui_put(app, y0 - 1, xkind, "AWAITING", W_KIND, false, A_BOLD);
    tui_put(app, y0 - 1, xwhere, "WHERE (innermost coroutine frame)", app->cols - xwhere, false,
            A_BOLD);
    tui_list *l = &app->list[TUI_VIEW_TASKS];
    tui_list_clamp(l, (int)app->ntask_rows, h);
    if (app->ntask_rows == 0) {
        const char *why = !app->hdr.have_tasks ? "waiting for the first task snapshot..."
                          : app->hdr.tasks_unsupported
                              ? "asyncio tasks are not read on this Python version yet"
                          : app->hdr.no_asyncio ? "asyncio is not in use in this process"
                          : app->filter[0]      ? "no task matches the filter (/ to change it)"
                          : app->hdr.tasks_total ? "only finished tasks (d shows them)"
                                                 : "no asyncio tasks";
        tui_put(app, y0 + 1, 2, why, app->cols - 2, false, tui_attr(app, TUI_C_DIM));
        return;
    }
    for (int r = 0; r < h && l->top + r < (int)app->ntask_rows; r++) {
        const tui_task_row *t = &app->task_rows[l->top + r];
        int y = y0 + r;
        bool sel = l->top + r == l->sel;
        int base = sel ? A_REVERSE : 0;
        char buf[512];
        if (t->is_loop) {
            if (t->tid)
                snprintf(buf, sizeof(buf), "event loop on thread %d \"%s\": %u tasks", (int)t->tid,
                         t->name, t->ntasks);
            else
                snprintf(buf, sizeof(buf), "tasks of an unknown event loop: %u", t->ntasks);
            tui_put(app, y, 0, buf, app->cols, true, base | A_BOLD);
            continue;
        }
        tui_put(app, y, 0, "", app->cols, true, base);
        tui_put(app, y, 0, state_text(t->state), W_STATE, false, base | (sel ? 0 : state_attr(app, t->state)));
        int depth = t->depth > 12 ? 12 : (int)t->depth;
        char indent[64] = "";
        for (int d = 0; d < depth && d < 30; d++)
            strcat(indent, "  ");
        const char *mark = t->depth > 0 ? (app->utf8 ? "\xe2\x94\x94 " : "`-") : "";
        snprintf(buf, sizeof(buf), "%s%s%s%s%s", t->depth > 12 ? "+" : "", indent, mark, t->name,
                 t->again ? " (see above)" : "");
        tui_put(app, y, W_STATE, buf, wname, false, base);
        if (t->wait_kind != AWK_NONE)
            tui_put(app, y, xkind, async_wait_kind_name(t->wait_kind), W_KIND - 1, false, base);
        if (t->where.name) {
            char fr[TUI_TEXT_CAP(512)];
            int w = app->cols - xwhere;
            tui_format_frame(fr, sizeof(fr), t->where.name, t->where.file, t->where.line,
                             w > 512 ? 512 : w, app->utf8);
            tui_put(app, y, xwhere, fr, w, false, base);
        }
    }
}

bool tui_tasks_on_key(tui_app *app, int key)
{
    if ((key == 'n' || key == 'N') && app->opts.follow_root) {
        tui_live_lock(app->live);
        tui_live_show_process_locked(app->live, key == 'n' ? 1 : -1);
        pid_t pid = app->live->tasks_pid;
        tui_live_unlock(app->live);
        app->list[TUI_VIEW_TASKS].sel = 0;
        app->list[TUI_VIEW_TASKS].top = 0;
        app->dirty = true;
        tui_message(app, "tasks of process %d", (int)pid);
        return true;
    }
    if (key != 'd')
        return false;
    app->show_done = !app->show_done;
    tui_message(app, "finished tasks %s", app->show_done ? "shown" : "hidden");
    return true;
}
