/* The TUI's main loop: terminal set-up and restore, the header, keys, popups, and a refresh of
 * the views' data from the live sampler a few times a second (docs/tui.md). */
#include "tui.h"

#include "clock.h"
#include "stop.h"
#include "outfile.h"
#include "proc.h"
#include "redact.h"
#include "tui_app.h"
#include "tui_text.h"
#include "writers.h"

#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *view_names[TUI_VIEW_COUNT] = {"Top", "Tasks", "Stalls", "Tree"};

/* ---- data refresh ------------------------------------------------------------------------------ */

static void fill_header_locked(tui_app *app)
{
    tui_live *l = app->live;
    tui_header *h = &app->hdr;
    h->now_ns = aprof_now_ns();
    h->samples = l->stats.samples;
    h->errors = l->stats.errors;
    uint64_t end = l->finished && l->stats.t_end_ns ? l->stats.t_end_ns : h->now_ns;
    h->sampling_ns = l->stats.t_start_ns && end > l->stats.t_start_ns ? end - l->stats.t_start_ns : 0;
    h->thread_samples = l->thread_samples;
    h->torn = l->torn;
    h->marked = l->marked;
    h->dropped = atomic_load(&l->dropped);
    h->nloops = l->stalls ? stall_loop_count(l->stalls) : 0;
    if (h->nloops) {
        /* the selected thread's loop, else the main thread's, else the first seen */
        size_t pick = 0, main_loop = SIZE_MAX, selected = SIZE_MAX;
        loop_now ln;
        for (size_t i = 0; i < h->nloops; i++) {
            stall_loop_now(l->stalls, i, h->now_ns, TUI_LAG_WINDOW_NS, &ln);
            if (ln.tid == app->pid)
                main_loop = i;
            if (app->tid && ln.tid == app->tid)
                selected = i;
        }
        pick = selected != SIZE_MAX ? selected : main_loop != SIZE_MAX ? main_loop : 0;
        stall_loop_now(l->stalls, pick, h->now_ns, TUI_LAG_WINDOW_NS, &h->loop);
    }
    h->stalls = l->stalls ? stall_count(l->stalls) : 0;
    h->have_tasks = l->tasks != NULL;
    h->no_asyncio = l->tasks && (l->tasks->flags & (ASF_NO_ASYNCIO | ASF_UNSUPPORTED));
    h->tasks_unsupported = l->tasks && (l->tasks->flags & ASF_UNSUPPORTED);
    h->tasks_alive = l->tasks ? tui_tasks_alive(l->tasks) : 0;
    h->tasks_total = l->tasks ? l->tasks->ntasks : 0;
    h->tasks_pid = l->tasks_pid;
    h->nprocs = l->nprocs;
    h->shown = l->shown;
    h->procs_joined = l->procs_joined;
    snprintf(h->tasks_label, sizeof(h->tasks_label), "%s",
             l->nprocs && l->shown < l->nprocs ? l->procs[l->shown]->label : "");
    h->finished = l->finished;
    h->exited = l->target_exited;
    app->nthreads = 0;
    for (size_t i = 0; i < agg_profile_count(l->a) && app->nthreads < TUI_MAX_THREADS; i++) {
        const agg_profile *p = agg_profile_at(l->a, i);
        if (p && p->tid)
            app->threads[app->nthreads++] = (tui_thread_item){p->tid, p->name};
    }
}

void tui_reselect(tui_app *app)
{
    uint64_t now = aprof_now_ns();
    uint64_t from = app->recent && now > TUI_RECENT_NS ? now - TUI_RECENT_NS : 0;
    tui_prof_select(&app->prof, app->tid, app->filter, from);
    app->dirty = true;
}

/* update: take in new samples (false while paused: only rebuild the rows). */
static void refresh_data(tui_app *app, bool update)
{
    tui_live *l = app->live;
    tui_live_set_tasks_interval(l, app->view == TUI_VIEW_TASKS ? 250000000ull : 1000000000ull);
    tui_live_lock(l);
    if (update) {
        fill_header_locked(app);
        if (app->recent)
            tui_reselect(app);
        if (tui_prof_update(&app->prof, l->a) != 0)
            tui_message(app, "out of memory: the view is incomplete");
        tui_stalls_build_locked(app);
    }
    switch (app->view) {
    case TUI_VIEW_TOP: tui_top_build_locked(app); break;
    case TUI_VIEW_TASKS: tui_tasks_build_locked(app); break;
    case TUI_VIEW_STALLS: break;
    case TUI_VIEW_TREE: tui_tree_build_locked(app); break;
    default: break;
    }
    tui_live_unlock(l);
    app->dirty = false;
}

/* ---- drawing ----------------------------------------------------------------------------------- */

static void draw_header(tui_app *app)
{
    const tui_header *h = &app->hdr;
    char buf[2048], a[32], b[32], c[32];
    /* line 0: who */
    char right[128];
    if (app->opts.follow_root)
        snprintf(right, sizeof(right), " %zu processes ", app->hdr.nprocs);
    else
        snprintf(right, sizeof(right), " Python %s ", app->version);
    int rw = (int)strlen(right);
    snprintf(buf, sizeof(buf), " aprof attach  pid %d%s  %s", (int)app->pid,
             app->opts.follow_root ? " and its subprocesses" : "", app->cmdline);
    bool version = app->cols > rw + 30;
    tui_put(app, 0, 0, "", app->cols, true, tui_attr(app, TUI_C_TITLE));
    tui_put(app, 0, 0, buf, app->cols - (version ? rw + 1 : 0), false, tui_attr(app, TUI_C_TITLE));
    if (version)
        tui_put(app, 0, app->cols - rw, right, rw, false, tui_attr(app, TUI_C_TITLE) | A_BOLD);

    /* line 1: the session */
    uint64_t up = h->now_ns > app->start_ns ? h->now_ns - app->start_ns : 0;
    tui_format_duration(a, sizeof(a), up);
    double rate = h->sampling_ns ? (double)h->samples * 1e9 / (double)h->sampling_ns : 0;
    tui_format_count(b, sizeof(b), h->samples);
    int n = app->opts.follow_root && h->nprocs > 1
                ? snprintf(buf, sizeof(buf), "up %s  samples %s (%.0f Hz in %zu processes, "
                           "%.0f of %.0f each)  threads %zu", a, b, rate, h->nprocs,
                           rate / (double)h->nprocs, app->opts.rate_hz, app->nthreads)
                : snprintf(buf, sizeof(buf), "up %s  samples %s (%.0f Hz of %.0f)  threads %zu",
                           a, b, rate, app->opts.rate_hz, app->nthreads);
    if (h->marked)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "  unreadable %llu",
                      (unsigned long long)h->marked);
    if (h->torn)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "  torn %llu", (unsigned long long)h->torn);
    if (h->dropped)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "  dropped %llu",
                      (unsigned long long)h->dropped);
    if (app->opts.native)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "  [native]");
    tui_put(app, 1, 0, buf, app->cols, true, 0);
    if (app->paused)
        tui_put(app, 1, app->cols - 8, " PAUSED ", 8, false, tui_attr(app, TUI_C_CRIT) | A_REVERSE);
    else if (h->exited)
        tui_put(app, 1, app->cols - 8, " EXITED ", 8, false, tui_attr(app, TUI_C_CRIT) | A_REVERSE);

    /* line 2: the event loop */
    int x = 0;
    if (h->nloops) {
        const loop_now *lp = &h->loop;
        uint64_t busy = lp->busy_for_ns;
        tui_format_duration(a, sizeof(a), busy);
        char who[32] = "";
        if (app->opts.follow_root)
            snprintf(who, sizeof(who), "%d ", (int)lp->pid);
        snprintf(buf, sizeof(buf), "loop %s%s%s: ", who, lp->thread_name ? lp->thread_name : "?",
                 h->nloops > 1 ? " (+more)" : "");
        x += tui_put(app, 2, x, buf, app->cols - x, false, 0);
        if (busy)
            snprintf(buf, sizeof(buf), "busy for %s", a);
        else
            snprintf(buf, sizeof(buf), "idle");
        x += tui_put(app, 2, x, buf, app->cols - x, false,
                     busy >= app->opts.stall_threshold_ns ? tui_attr(app, TUI_C_CRIT)
                     : busy                               ? tui_attr(app, TUI_C_WARN)
                                                          : tui_attr(app, TUI_C_OK));
        tui_format_duration(a, sizeof(a), lp->current_ns);
        tui_format_duration(b, sizeof(b), lp->worst_ns);
        snprintf(buf, sizeof(buf), "  lag now %s  worst %s", a, b);
    } else {
        snprintf(buf, sizeof(buf), "no event loop seen");
    }
    x += tui_put(app, 2, x, buf, app->cols - x, false, 0);
    snprintf(c, sizeof(c), "%llu", (unsigned long long)h->stalls);
    snprintf(buf, sizeof(buf), "  stalls %s", c);
    x += tui_put(app, 2, x, buf, app->cols - x, false, h->stalls ? tui_attr(app, TUI_C_CRIT) : 0);
    if (!h->have_tasks)
        snprintf(buf, sizeof(buf), "  tasks ...");
    else if (h->no_asyncio)
        snprintf(buf, sizeof(buf), "  tasks -");
    else
        snprintf(buf, sizeof(buf), "  tasks %u alive", h->tasks_alive);
    tui_put(app, 2, x, buf, app->cols - x, true, 0);

    /* line 3: the views and the selection */
    x = 0;
    for (int v = 0; v < TUI_VIEW_COUNT; v++) {
        snprintf(buf, sizeof(buf), " %d %s ", v + 1, view_names[v]);
        x += tui_put(app, 3, x, buf, app->cols - x, false,
                     v == (int)app->view ? tui_attr(app, TUI_C_TAB) | A_BOLD : 0);
        x += tui_put(app, 3, x, " ", app->cols - x, false, 0);
    }
    char sel[512];
    int sn = snprintf(sel, sizeof(sel), "%s", app->recent ? "last 10s" : "session");
    if (app->tid)
        sn += snprintf(sel + sn, sizeof(sel) - (size_t)sn, " | thread %d", (int)app->tid);
    if (app->filter[0])
        snprintf(sel + sn, sizeof(sel) - (size_t)sn, " | filter \"%s\"", app->filter);
    int sw = tui_text_width(sel, app->utf8);
    if (x + 2 < app->cols) {
        int w = app->cols - x - 1;
        if (sw < w)
            tui_put(app, 3, app->cols - sw - 1, sel, sw, false, tui_attr(app, TUI_C_DIM) | A_BOLD);
        else
            tui_put(app, 3, x + 1, sel, w, false, tui_attr(app, TUI_C_DIM) | A_BOLD);
    }
}

static void draw_status(tui_app *app)
{
    int y = app->rows - 1;
    char buf[1024];
    if (app->prompting) {
        snprintf(buf, sizeof(buf), "filter (Enter applies, Esc cancels): %s_", app->prompt);
        tui_put(app, y, 0, buf, app->cols, true, A_BOLD);
        return;
    }
    if (app->msg[0] && aprof_now_ns() < app->msg_until_ns) {
        tui_put(app, y, 0, app->msg, app->cols, true, A_BOLD);
        return;
    }
    if (app->hdr.exited) {
        snprintf(buf, sizeof(buf), "process %d exited%s: the last data stays on screen; q quits",
                 (int)app->pid, app->opts.follow_root ? " with its subprocesses" : "");
        tui_put(app, y, 0, buf, app->cols, true, tui_attr(app, TUI_C_CRIT));
        return;
    }
    const char *hints = app->view == TUI_VIEW_TOP   ? "s/S sort  l window"
                        : app->view == TUI_VIEW_TASKS
                            ? (app->opts.follow_root ? "d finished  n/N process" : "d finished tasks")
                        : app->view == TUI_VIEW_STALLS ? "Enter stack  c by line/each"
                                                       : "Enter/arrows expand  z/Z zoom  l window";
    snprintf(buf, sizeof(buf), "q quit  ? help  1-4/Tab views  %s  p pause  r reset  / filter  "
             "t thread  w write", hints);
    tui_put(app, y, 0, buf, app->cols, true, tui_attr(app, TUI_C_DIM));
}

static const char *help_lines[] = {
    "aprof attach: keys",
    "",
    "  1 2 3 4, Tab, Shift-Tab   views: Top, Tasks, Stalls, Tree",
    "  Up Down PgUp PgDn Home End (j k g G)   move and scroll",
    "  p   pause the display (sampling goes on)     r   reset: forget all data",
    "  /   filter by substring (Enter applies; an empty filter clears it)",
    "  t   pick a thread (or all)                   w   write a speedscope file",
    "  l   Top and Tree over the session or the last 10 seconds",
    "  q   quit (the target keeps running); also Ctrl-C",
    "",
    "  Top:    s next sort column, S reverse; o own, T total, c calls, n name",
    "  Tasks:  d show or hide finished tasks; n/N next/previous process",
    "          (with --subprocesses)",
    "  Stalls: Enter shows the full stack of a stall (of a line's longest);",
    "          c one row per culprit line (count, total, max) or per stall",
    "  Tree:   Enter toggles, Right expands, Left collapses or goes up,",
    "          z zooms into the selected subtree, Z / u / Backspace zooms out",
    "",
    "  Own: time with the function executing; total: with it anywhere on the stack.",
    "  Calls seen: times a call was seen starting (sampling misses short repeats).",
    "",
    "  any key closes this help",
};

static void draw_box(tui_app *app, int y0, int x0, int h, int w, const char *title)
{
    for (int y = y0; y < y0 + h; y++)
        tui_put(app, y, x0, "", w, true, 0);
    tui_put(app, y0, x0, title, w, true, tui_attr(app, TUI_C_TITLE));
}

static void draw_help(tui_app *app)
{
    int n = (int)(sizeof(help_lines) / sizeof(help_lines[0]));
    int w = app->cols > 84 ? 80 : app->cols - 2, h = n + 1 < app->rows - 2 ? n + 1 : app->rows - 2;
    int x0 = (app->cols - w) / 2, y0 = (app->rows - h) / 2;
    draw_box(app, y0, x0, h, w, " help ");
    for (int i = 1; i < n && i < h; i++)
        tui_put(app, y0 + i, x0 + 1, help_lines[i], w - 2, false, 0);
}

static void draw_threads(tui_app *app)
{
    int n = (int)app->nthreads + 1;
    int w = app->cols > 64 ? 60 : app->cols - 2;
    int h = n + 2 < app->rows - 4 ? n + 2 : app->rows - 4;
    int x0 = (app->cols - w) / 2, y0 = (app->rows - h) / 2;
    draw_box(app, y0, x0, h, w, " pick a thread (Enter selects, Esc cancels) ");
    int body = h - 1;
    tui_list_clamp(&app->popup_list, n, body);
    for (int r = 0; r < body && app->popup_list.top + r < n; r++) {
        int i = app->popup_list.top + r;
        char buf[512];
        if (i == 0)
            snprintf(buf, sizeof(buf), "all threads%s", app->tid == 0 ? "  (current)" : "");
        else
            snprintf(buf, sizeof(buf), "%s%s", app->threads[i - 1].name,
                     app->threads[i - 1].tid == app->tid ? "  (current)" : "");
        tui_put(app, y0 + 1 + r, x0 + 1, buf, w - 2, true, i == app->popup_list.sel ? A_REVERSE : 0);
    }
}

static void draw(tui_app *app)
{
    erase();
    if (app->rows < 10 || app->cols < 40) {
        tui_put(app, 0, 0, "aprof: the terminal is too small (at least 40x10)", app->cols, false, 0);
        refresh();
        return;
    }
    draw_header(app);
    int y0 = TUI_HEADER_ROWS + 1, h = tui_view_height(app);
    switch (app->view) {
    case TUI_VIEW_TOP: tui_top_draw(app, y0, h); break;
    case TUI_VIEW_TASKS: tui_tasks_draw(app, y0, h); break;
    case TUI_VIEW_STALLS: tui_stalls_draw(app, y0, h); break;
    case TUI_VIEW_TREE: tui_tree_draw(app, y0, h); break;
    default: break;
    }
    switch (app->popup) {
    case TUI_POPUP_HELP: draw_help(app); break;
    case TUI_POPUP_THREADS: draw_threads(app); break;
    case TUI_POPUP_STACK: tui_stack_popup_draw(app); break;
    default: break;
    }
    draw_status(app);
    refresh();
}

/* ---- actions ----------------------------------------------------------------------------------- */

static void reset_data(tui_app *app)
{
    tui_live_lock(app->live);
    int rc = tui_live_reset_locked(app->live);
    tui_live_unlock(app->live);
    if (rc != 0) {
        tui_message(app, "reset failed: out of memory");
        return;
    }
    tui_prof_clear(&app->prof);
    tui_tree_state_clear(&app->tree);
    tui_stall_list_clear(&app->stalls);
    app->ntop = app->ntree = app->nstall_rows = app->nstall_groups = 0;
    for (int v = 0; v < TUI_VIEW_COUNT; v++)
        app->list[v] = (tui_list){0, 0};
    tui_reselect(app);
    tui_message(app, "reset: collecting from now on");
}

static void write_file(tui_app *app)
{
    char name[128], cwd[PATH_MAX];
    time_t t = time(NULL);
    struct tm tmv;
    localtime_r(&t, &tmv);
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tmv);
    snprintf(name, sizeof(name), "aprof-%d-%s.json", (int)app->pid, stamp);
    for (int k = 2; access(name, F_OK) == 0 && k < 100; k++)
        snprintf(name, sizeof(name), "aprof-%d-%s-%d.json", (int)app->pid, stamp, k);
    if (!getcwd(cwd, sizeof(cwd)))
        snprintf(cwd, sizeof(cwd), ".");
    outfile of;
    if (outfile_open(&of, name) != 0) {
        tui_message(app, "cannot write %s/%s: %s", cwd, name, strerror(errno));
        return;
    }
    char meta_name[1200];
    snprintf(meta_name, sizeof(meta_name), "aprof: %s (pid %d%s)", app->cmdline, (int)app->pid,
             app->opts.follow_root ? " and its subprocesses" : "");
    writer_meta meta = {meta_name, "aprof@" APROF_VERSION};
    tui_live_lock(app->live);
    uint64_t samples = app->live->thread_samples;
    int rc = write_speedscope(app->live->a, &meta, outfile_stream(&of));
    tui_live_unlock(app->live);
    int e = errno;
    if (rc != 0) {
        outfile_abort(&of);
        tui_message(app, "cannot write %s/%s: %s", cwd, name, strerror(e));
        return;
    }
    if (outfile_commit(&of) != 0) {
        tui_message(app, "cannot write %s/%s: %s", cwd, name, strerror(errno));
        return;
    }
    tui_message(app, "wrote %s/%s (speedscope, %llu thread samples)", cwd, name,
                (unsigned long long)samples);
}

static int view_rows(const tui_app *app)
{
    switch (app->view) {
    case TUI_VIEW_TOP: return (int)app->ntop;
    case TUI_VIEW_TASKS: return (int)app->ntask_rows;
    case TUI_VIEW_STALLS: return (int)(app->stalls_by_culprit ? app->nstall_groups : app->nstall_rows);
    case TUI_VIEW_TREE: return (int)app->ntree;
    default: return 0;
    }
}

static bool is_enter(int ch)
{
    return ch == '\n' || ch == '\r' || ch == KEY_ENTER;
}

static void prompt_key(tui_app *app, int ch)
{
    size_t len = strlen(app->prompt);
    if (is_enter(ch)) {
        app->prompting = false;
        snprintf(app->filter, sizeof(app->filter), "%s", app->prompt);
        for (int v = 0; v < TUI_VIEW_COUNT; v++)
            app->list[v] = (tui_list){0, 0};
        tui_reselect(app);
        if (app->filter[0])
            tui_message(app, "filter \"%s\" (/ then Enter on an empty line clears it)", app->filter);
        else
            tui_message(app, "filter cleared");
    } else if (ch == 27) {
        app->prompting = false;
    } else if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
        if (len > 0) {
            /* drop a whole UTF-8 character */
            do
                len--;
            while (len > 0 && ((unsigned char)app->prompt[len] & 0xc0) == 0x80);
            app->prompt[len] = '\0';
        }
    } else if (ch == 21) { /* Ctrl-U */
        app->prompt[0] = '\0';
    } else if (ch >= 0x20 && ch < 0x100 && ch != 0x7f && len + 1 < sizeof(app->prompt)) {
        app->prompt[len] = (char)ch;
        app->prompt[len + 1] = '\0';
    }
}

static void popup_key(tui_app *app, int ch)
{
    tui_list *l = &app->popup_list;
    switch (app->popup) {
    case TUI_POPUP_HELP:
        app->popup = TUI_POPUP_NONE;
        break;
    case TUI_POPUP_THREADS: {
        int n = (int)app->nthreads + 1;
        if (is_enter(ch)) {
            int i = l->sel;
            app->tid = i <= 0 || i > (int)app->nthreads ? 0 : app->threads[i - 1].tid;
            app->popup = TUI_POPUP_NONE;
            app->list[TUI_VIEW_TOP] = app->list[TUI_VIEW_TREE] = (tui_list){0, 0};
            tui_tree_state_clear(&app->tree);
            tui_reselect(app);
            tui_message(app, "showing %s", app->tid ? app->threads[i - 1].name : "all threads");
        } else if (ch == 27 || ch == KEY_LEFT || ch == 't') {
            app->popup = TUI_POPUP_NONE;
        } else {
            tui_list_key(l, ch, n, app->rows - 7);
        }
        break;
    }
    case TUI_POPUP_STACK: {
        int body = app->rows - 7;
        if (is_enter(ch) || ch == 27 || ch == KEY_LEFT || ch == KEY_BACKSPACE || ch == 127)
            app->popup = TUI_POPUP_NONE;
        else if (ch == KEY_DOWN || ch == 'j')
            l->top++;
        else if (ch == KEY_UP || ch == 'k')
            l->top--;
        else if (ch == KEY_NPAGE)
            l->top += body > 1 ? body - 1 : 1;
        else if (ch == KEY_PPAGE)
            l->top -= body > 1 ? body - 1 : 1;
        else if (ch == KEY_HOME)
            l->top = 0;
        else if (ch == KEY_END)
            l->top = 1 << 20;
        break; /* clamped when drawn */
    }
    default: break;
    }
}

static void switch_view(tui_app *app, int v)
{
    app->view = (tui_view)((v + TUI_VIEW_COUNT) % TUI_VIEW_COUNT);
    app->dirty = true;
}

static void handle_key(tui_app *app, int ch)
{
    if (ch == KEY_RESIZE) {
        getmaxyx(stdscr, app->rows, app->cols);
        clearok(stdscr, TRUE);
        return;
    }
    if (app->prompting) {
        prompt_key(app, ch);
        return;
    }
    if (ch == 'q' || ch == 'Q') {
        app->quit = true;
        return;
    }
    if (app->popup) {
        popup_key(app, ch);
        return;
    }
    switch (ch) {
    case '1': case '2': case '3': case '4': switch_view(app, ch - '1'); return;
    case '\t': switch_view(app, (int)app->view + 1); return;
    case KEY_BTAB: switch_view(app, (int)app->view - 1); return;
    case 'p':
        app->paused = !app->paused;
        tui_message(app, app->paused ? "display paused (sampling goes on); p resumes"
                                     : "display resumed");
        return;
    case 'r': reset_data(app); return;
    case '/':
        app->prompting = true;
        snprintf(app->prompt, sizeof(app->prompt), "%s", app->filter);
        return;
    case 't':
        app->popup = TUI_POPUP_THREADS;
        app->popup_list = (tui_list){0, 0};
        for (size_t i = 0; i < app->nthreads; i++)
            if (app->threads[i].tid == app->tid)
                app->popup_list.sel = (int)i + 1;
        return;
    case 'w': write_file(app); return;
    case '?': case 'h': case KEY_F(1): app->popup = TUI_POPUP_HELP; return;
    case 'l':
        if (app->view == TUI_VIEW_TOP || app->view == TUI_VIEW_TREE) {
            app->recent = !app->recent;
            tui_reselect(app);
            tui_message(app, "Top and Tree: %s", app->recent ? "the last 10 seconds"
                                                             : "the whole session");
        }
        return;
    default: break;
    }
    bool used = false;
    switch (app->view) {
    case TUI_VIEW_TOP: used = tui_top_on_key(app, ch); break;
    case TUI_VIEW_TASKS: used = tui_tasks_on_key(app, ch); app->dirty |= used; break;
    case TUI_VIEW_STALLS: used = tui_stalls_on_key(app, ch); break;
    case TUI_VIEW_TREE: used = tui_tree_on_key(app, ch); app->dirty |= used; break;
    default: break;
    }
    if (!used)
        tui_list_key(&app->list[app->view], ch, view_rows(app), tui_view_height(app));
}

/* ---- the run ----------------------------------------------------------------------------------- */

/* While curses owns the terminal, anything written to stderr would tear the screen: it goes to
 * a temporary file and is replayed after the terminal is restored. */
typedef struct stderr_capture {
    int saved;
    FILE *log;
} stderr_capture;

static void capture_stderr(stderr_capture *c)
{
    fflush(stderr);
    c->log = tmpfile();
    c->saved = c->log ? dup(STDERR_FILENO) : -1;
    if (c->saved >= 0)
        dup2(fileno(c->log), STDERR_FILENO);
}

static void release_stderr(stderr_capture *c)
{
    if (c->saved < 0)
        return;
    fflush(stderr);
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    c->saved = -1;
    rewind(c->log);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), c->log)) > 0)
        fwrite(buf, 1, n, stderr);
    fclose(c->log);
    c->log = NULL;
}

static void free_app(tui_app *app)
{
    tui_prof_free(&app->prof);
    tui_tree_state_free(&app->tree);
    tui_stall_list_free(&app->stalls);
    free(app->top);
    free(app->tree_rows);
    free(app->task_rows);
    free(app->stall_rows);
    free(app->stall_groups);
}

aprof_status tui_run(session *s, const tui_options *o, aprof_error *err)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        return aprof_error_set(err, APROF_E_USAGE,
                               "attach: needs a terminal (standard input and output must be a "
                               "tty); for a file use aprof record");
    setlocale(LC_CTYPE, ""); /* only character handling: numbers in files stay in the C locale */
    const char *cs = nl_langinfo(CODESET);

    static tui_app app; /* large; one TUI per process */
    memset(&app, 0, sizeof(app));
    app.pid = s ? s->src.pid : o->follow_root;
    if (s) {
        snprintf(app.cmdline, sizeof(app.cmdline), "%s", s->cmdline);
        snprintf(app.version, sizeof(app.version), "%s", s->rt.version);
    } else if (o->redact) {
        snprintf(app.cmdline, sizeof(app.cmdline), "%s", REDACT_COMMAND_LINE);
    } else {
        proc_cmdline(o->follow_root, app.cmdline, sizeof(app.cmdline));
    }
    app.opts = *o;
    app.utf8 = cs && strcmp(cs, "UTF-8") == 0;
    tui_prof_init(&app.prof);
    app.start_ns = aprof_now_ns();

    tui_live live;
    tui_live_opts lo = {.rate_hz = o->rate_hz, .stall_threshold_ns = o->stall_threshold_ns,
                        .blocking = o->blocking, .nonblocking = o->nonblocking,
                        .exact_task_names = o->exact_task_names, .follow_root = o->follow_root,
                        .redact = o->redact};
    aprof_status rc = tui_live_start(&live, s, &lo, err);
    if (rc != APROF_OK)
        return rc;
    app.live = &live;

    stderr_capture cap;
    capture_stderr(&cap);
    SCREEN *scr = newterm(NULL, stdout, stdin);
    if (!scr) {
        release_stderr(&cap);
        tui_live_free(&live);
        free_app(&app);
        return aprof_error_set(err, APROF_E_INTERNAL, "cannot initialise the terminal (TERM=%s)",
                               getenv("TERM") ? getenv("TERM") : "");
    }
    set_term(scr);
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    curs_set(0);
    set_escdelay(25);
    timeout(100);
    tui_screen_colors(&app);
    getmaxyx(stdscr, app.rows, app.cols);
    tui_reselect(&app);

    uint64_t last = 0;
    while (!app.quit && !aprof_stop_requested) {
        uint64_t now = aprof_now_ns();
        if (!app.paused && now - last >= TUI_REFRESH_NS) {
            refresh_data(&app, true);
            last = now;
        } else if (app.dirty) {
            refresh_data(&app, !app.paused);
        }
        draw(&app);
        int ch = getch();
        if (ch != ERR)
            handle_key(&app, ch);
    }
    endwin();
    delscreen(scr);
    release_stderr(&cap);
    tui_live_stop(&live);
    bool exited = live.target_exited;
    tui_live_free(&live);
    free_app(&app);
    aprof_error_set(err, APROF_OK, "%s", "");
    if (exited)
        aprof_error_set(err, APROF_OK, "process %d exited", (int)app.pid);
    return APROF_OK;
}
