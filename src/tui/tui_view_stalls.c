/* View 3, Stalls: the event-loop blocking episodes so far, newest first; Enter shows the full
 * stack of one. */
#include "tui_app.h"

#include "grow.h"
#include "tui_text.h"

#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define W_AT 9
#define W_DUR 10
#define W_IMPACT 10
#define W_TASK 18

void tui_stalls_build_locked(tui_app *app)
{
    tui_stall_list_sync(&app->stalls, app->live->stalls);
}

/* Rows are ordered without the lock: the list is the app's own copy. */
static void order(tui_app *app)
{
    tui_list *l = &app->list[TUI_VIEW_STALLS];
    uint32_t sel_ev = l->sel >= 0 && (size_t)l->sel < app->nstall_rows ? app->stall_rows[l->sel]
                                                                        : UINT32_MAX;
    if (!grow_array((void **)&app->stall_rows, &app->cap_stall_rows, app->stalls.n,
                    sizeof(*app->stall_rows), 64, SIZE_MAX))
        return;
    app->nstall_rows = app->stalls.n ? tui_stalls_order(&app->stalls, app->filter, app->stall_rows)
                                     : 0;
    if (app->stalls_by_culprit) {
        free(app->stall_groups);
        app->stall_groups = NULL;
        app->nstall_groups = stall_group_by_culprit(app->stalls.ev, app->stall_rows,
                                                    app->nstall_rows, &app->stall_groups);
        return;
    }
    for (size_t i = 0; sel_ev != UINT32_MAX && i < app->nstall_rows; i++)
        if (app->stall_rows[i] == sel_ev) {
            l->sel = (int)i;
            break;
        }
}

/* c: one row per culprit line, most total time first. */
static void draw_groups(tui_app *app, int y0, int h)
{
    enum { W_COUNT = 7, W_TOTAL = 10, W_MAX = 10 };
    int xtot = W_COUNT, xmax = xtot + W_TOTAL, ximp = xmax + W_MAX, xcul = ximp + W_IMPACT;
    char head[256];
    snprintf(head, sizeof(head), "%*s%*s%*s  %-*s%s", W_COUNT - 1, "COUNT", W_TOTAL, "TOTAL",
             W_MAX, "MAX", W_IMPACT, "WORST", "CULPRIT function (file:line)");
    tui_put(app, y0 - 1, 0, head, app->cols, true, A_BOLD);
    tui_list *l = &app->list[TUI_VIEW_STALLS];
    tui_list_clamp(l, (int)app->nstall_groups, h);
    for (int r = 0; r < h && l->top + r < (int)app->nstall_groups; r++) {
        const stall_group *g = &app->stall_groups[l->top + r];
        int y = y0 + r;
        bool sel = l->top + r == l->sel;
        int base = sel ? A_REVERSE : 0;
        char cell[32], dur[16];
        tui_put(app, y, 0, "", app->cols, true, base);
        snprintf(cell, sizeof(cell), "%*u", W_COUNT - 1, g->count);
        tui_put(app, y, 0, cell, W_COUNT - 1, false, base);
        tui_format_duration(dur, sizeof(dur), g->total_ns);
        snprintf(cell, sizeof(cell), "%*s", W_TOTAL, dur);
        tui_put(app, y, xtot, cell, W_TOTAL, false, base);
        tui_format_duration(dur, sizeof(dur), g->max_ns);
        snprintf(cell, sizeof(cell), "%*s", W_MAX, dur);
        tui_put(app, y, xmax, cell, W_MAX, false, base);
        bool crit = g->worst_impact == STALL_CRITICAL;
        tui_put(app, y, ximp + 2, crit ? "critical" : "warning", W_IMPACT - 1, false,
                base | (sel ? 0 : tui_attr(app, crit ? TUI_C_CRIT : TUI_C_WARN)));
        char fr[TUI_TEXT_CAP(512)];
        int w = app->cols - xcul - 2;
        tui_format_frame(fr, sizeof(fr), g->culprit.name, g->culprit.file, g->culprit.line,
                         w > 512 ? 512 : w, app->utf8);
        tui_put(app, y, xcul + 2, fr, w, false, base);
    }
}

static void at_text(const tui_app *app, const stall_event *e, char *out, size_t cap)
{
    char d[16];
    uint64_t t = e->start_ns > app->start_ns ? e->start_ns - app->start_ns : 0;
    tui_format_duration(d, sizeof(d), t);
    snprintf(out, cap, "+%s", d);
}

void tui_stalls_draw(tui_app *app, int y0, int h)
{
    order(app);
    if (app->stalls_by_culprit && app->nstall_rows) {
        draw_groups(app, y0, h);
        return;
    }
    int xdur = W_AT, ximp = xdur + W_DUR, xtask = ximp + W_IMPACT, xcul = xtask + W_TASK;
    char head[256];
    snprintf(head, sizeof(head), "%-*s%*s  %-*s%-*s%s", W_AT, "AT", W_DUR - 2, "DURATION",
             W_IMPACT, "IMPACT", W_TASK, app->opts.follow_root ? "PID TASK" : "TASK",
             "CULPRIT function (file:line)");
    tui_put(app, y0 - 1, 0, head, app->cols, true, A_BOLD);
    tui_list *l = &app->list[TUI_VIEW_STALLS];
    tui_list_clamp(l, (int)app->nstall_rows, h);
    if (app->nstall_rows == 0) {
        char why[160];
        if (app->stalls.n)
            snprintf(why, sizeof(why), "no stall matches the filter (/ to change it)");
        else if (app->hdr.nloops == 0)
            snprintf(why, sizeof(why), "no stalls: no event loop seen yet");
        else
            snprintf(why, sizeof(why), "no stalls so far (a callback that keeps its loop from "
                     "polling for %.0f ms or more is one)", (double)app->opts.stall_threshold_ns / 1e6);
        tui_put(app, y0 + 1, 2, why, app->cols - 2, false, tui_attr(app, TUI_C_DIM));
        return;
    }
    for (int r = 0; r < h && l->top + r < (int)app->nstall_rows; r++) {
        const stall_event *e = &app->stalls.ev[app->stall_rows[l->top + r]];
        int y = y0 + r;
        bool sel = l->top + r == l->sel;
        int base = sel ? A_REVERSE : 0;
        char at[32], dur[16], cell[32];
        at_text(app, e, at, sizeof(at));
        tui_format_duration(dur, sizeof(dur), e->end_ns - e->start_ns);
        tui_put(app, y, 0, "", app->cols, true, base);
        tui_put(app, y, 0, at, W_AT - 1, false, base);
        snprintf(cell, sizeof(cell), "%*s", W_DUR - 2, dur);
        tui_put(app, y, xdur, cell, W_DUR - 2, false, base);
        bool crit = e->impact == STALL_CRITICAL;
        tui_put(app, y, ximp, crit ? "critical" : "warning", W_IMPACT - 1, false,
                base | (sel ? 0 : tui_attr(app, crit ? TUI_C_CRIT : TUI_C_WARN)));
        const char *task = e->task ? e->task : e->callback ? e->callback : "-";
        char tcell[256];
        if (app->opts.follow_root) /* several processes: whose loop */
            snprintf(tcell, sizeof(tcell), "%d %s", (int)e->pid, task);
        else
            snprintf(tcell, sizeof(tcell), "%s", task);
        tui_put(app, y, xtask, tcell, W_TASK - 1, false, base);
        char fr[TUI_TEXT_CAP(512)];
        int w = app->cols - xcul;
        /* a stall that was mostly a garbage collection says so before its culprit line */
        int gcw = stall_mostly_gc(e) ? 4 : 0;
        if (gcw && w > gcw)
            tui_put(app, y, xcul, "GC ", gcw, false, base | (sel ? 0 : tui_attr(app, TUI_C_WARN)));
        else
            gcw = 0;
        tui_format_frame(fr, sizeof(fr), e->culprit.name, e->culprit.file, e->culprit.line,
                         w - gcw > 512 ? 512 : w - gcw, app->utf8);
        tui_put(app, y, xcul + gcw, fr, w - gcw, false, base);
    }
}

bool tui_stalls_on_key(tui_app *app, int key)
{
    tui_list *l = &app->list[TUI_VIEW_STALLS];
    if (key == 'c') {
        app->stalls_by_culprit = !app->stalls_by_culprit;
        *l = (tui_list){0, 0};
        return true;
    }
    size_t nrows = app->stalls_by_culprit ? app->nstall_groups : app->nstall_rows;
    if ((key == '\n' || key == '\r' || key == KEY_ENTER || key == KEY_RIGHT) &&
        l->sel >= 0 && (size_t)l->sel < nrows) {
        app->popup = TUI_POPUP_STACK;
        app->popup_stall = app->stalls_by_culprit ? app->stall_groups[l->sel].longest
                                                  : app->stall_rows[l->sel];
        app->popup_list = (tui_list){0, 0};
        return true;
    }
    return false;
}

/* The full representative stack of one stall, innermost frame first, the culprit marked. */
void tui_stack_popup_draw(tui_app *app)
{
    if (app->popup_stall >= app->stalls.n)
        return;
    const stall_event *e = &app->stalls.ev[app->popup_stall];
    int x0 = 0, y0 = TUI_HEADER_ROWS - 1, w = app->cols, h = app->rows - TUI_HEADER_ROWS;
    if (w < 20 || h < 5)
        return;
    char dur[16], at[32], title[512];
    tui_format_duration(dur, sizeof(dur), e->end_ns - e->start_ns);
    at_text(app, e, at, sizeof(at));
    snprintf(title, sizeof(title), " stall at %s: %s %s, task %s, process %d thread %d \"%s\" ",
             at, dur, e->impact == STALL_CRITICAL ? "critical" : "warning",
             e->task ? e->task : "-", (int)e->pid, (int)e->tid,
             e->thread_name ? e->thread_name : "");
    for (int y = y0; y < y0 + h; y++)
        tui_put(app, y, x0, "", w, true, 0);
    tui_put(app, y0, x0, title, w, true, tui_attr(app, TUI_C_TITLE));
    tui_put(app, y0 + h - 1, x0, " Up/Down/PgUp/PgDn scroll, Esc or Enter closes ", w, true,
            tui_attr(app, TUI_C_TITLE));
    int body = h - 3;
    tui_list *l = &app->popup_list;
    int n = (int)e->nstack;
    /* scroll by the first row shown */
    if (l->top > n - body)
        l->top = n - body;
    if (l->top < 0)
        l->top = 0;
    tui_put(app, y0 + 1, x0 + 1, "innermost frame first; * = the culprit (the innermost frame "
            "of the program's own code)", w - 2, false, tui_attr(app, TUI_C_DIM));
    for (int r = 0; r < body && l->top + r < n; r++) {
        const aprof_frame *f = &e->stack[n - 1 - (l->top + r)];
        bool culprit = f->name == e->culprit.name && f->file == e->culprit.file &&
                       f->line == e->culprit.line;
        char fr[TUI_TEXT_CAP(512)], line[TUI_TEXT_CAP(512) + 8];
        int fw = w - 4;
        tui_format_frame(fr, sizeof(fr), f->name, f->file, f->line, fw > 512 ? 512 : fw, app->utf8);
        snprintf(line, sizeof(line), "%s %s", culprit ? "*" : " ", fr);
        tui_put(app, y0 + 2 + r, x0 + 1, line, w - 2, false,
                culprit ? tui_attr(app, TUI_C_CRIT) : 0);
    }
    if (n == 0)
        tui_put(app, y0 + 2, x0 + 2, "(no stack was kept)", w - 4, false, 0);
}
