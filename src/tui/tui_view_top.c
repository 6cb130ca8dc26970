/* View 1, Top: functions by own and total time. */
#include "tui_app.h"

#include "tui_text.h"

#include <curses.h>
#include <stdio.h>
#include <string.h>

/* fixed columns before the function: OWN% TOTAL% OWN TOTAL CALLS */
#define W_PCT 7
#define W_TIME 8
#define W_CALLS 7
#define W_FIXED (2 * W_PCT + 2 * W_TIME + W_CALLS + 2)

static void resort(tui_app *app)
{
    tui_list *l = &app->list[TUI_VIEW_TOP];
    const char *name = NULL, *file = NULL;
    if (l->sel >= 0 && (size_t)l->sel < app->ntop) {
        name = app->top[l->sel].name;
        file = app->top[l->sel].file;
    }
    tui_top_sort(app->top, app->ntop, app->top_key, app->top_reverse);
    for (size_t i = 0; name && i < app->ntop; i++)
        if (app->top[i].name == name && app->top[i].file == file) {
            l->sel = (int)i;
            break;
        }
    tui_list_clamp(l, (int)app->ntop, tui_view_height(app));
}

void tui_top_build_locked(tui_app *app)
{
    tui_list *l = &app->list[TUI_VIEW_TOP];
    const char *name = NULL, *file = NULL;
    if (l->sel >= 0 && (size_t)l->sel < app->ntop) {
        name = app->top[l->sel].name;
        file = app->top[l->sel].file;
    }
    app->ntop = tui_top_build(&app->prof, app->live->a, &app->top, &app->cap_top);
    tui_top_sort(app->top, app->ntop, app->top_key, app->top_reverse);
    for (size_t i = 0; name && i < app->ntop; i++)
        if (app->top[i].name == name && app->top[i].file == file) {
            l->sel = (int)i;
            break;
        }
    tui_list_clamp(l, (int)app->ntop, tui_view_height(app));
}

static void heading(tui_app *app, int y)
{
    const char *down = app->utf8 ? "\xe2\x96\xbc" : "v", *up = app->utf8 ? "\xe2\x96\xb2" : "^";
    bool ascending = app->top_key == TUI_TOP_NAME ? !app->top_reverse : app->top_reverse;
    const char *arrow = ascending ? up : down;
    char h[256];
    const char *titles[5] = {"OWN%", "TOTAL%", "OWN", "TOTAL", "CALLS"};
    const int widths[5] = {W_PCT - 1, W_PCT, W_TIME, W_TIME, W_CALLS};
    size_t n = 0;
    for (int i = 0; i < 5; i++) {
        bool sorted = (i == 0 && app->top_key == TUI_TOP_SELF) ||
                      (i == 1 && app->top_key == TUI_TOP_TOTAL) ||
                      (i == 4 && app->top_key == TUI_TOP_CALLS);
        char cell[32];
        snprintf(cell, sizeof(cell), "%s%s", sorted ? arrow : "", titles[i]);
        /* right-aligned by columns, not bytes (the arrow is 3 bytes of UTF-8) */
        for (int pad = widths[i] - tui_text_width(cell, app->utf8); pad > 0; pad--)
            h[n++] = ' ';
        n += (size_t)snprintf(h + n, sizeof(h) - n, "%s", cell);
    }
    snprintf(h + n, sizeof(h) - n, "  %sFUNCTION (file:line)",
             app->top_key == TUI_TOP_NAME ? arrow : "");
    tui_put(app, y, 0, h, app->cols, true, A_BOLD);
}

void tui_top_draw(tui_app *app, int y0, int h)
{
    heading(app, y0 - 1);
    tui_list *l = &app->list[TUI_VIEW_TOP];
    tui_list_clamp(l, (int)app->ntop, h);
    uint64_t whole = app->prof.total_ns;
    if (app->ntop == 0) {
        tui_put(app, y0 + 1, 2,
                app->filter[0] ? "no function matches the filter (/ to change it)"
                               : "no samples yet", app->cols - 2, false, tui_attr(app, TUI_C_DIM));
        return;
    }
    for (int r = 0; r < h && l->top + r < (int)app->ntop; r++) {
        const tui_top_row *t = &app->top[l->top + r];
        char own[16], total[16], ot[16], tt[16], calls[16], line[256];
        tui_format_pct(own, sizeof(own), t->self_ns, whole);
        tui_format_pct(total, sizeof(total), t->total_ns, whole);
        tui_format_duration(ot, sizeof(ot), t->self_ns);
        tui_format_duration(tt, sizeof(tt), t->total_ns);
        tui_format_count(calls, sizeof(calls), t->calls);
        snprintf(line, sizeof(line), "%*s%*s%*s%*s%*s  ", W_PCT - 1, own, W_PCT, total, W_TIME,
                 ot, W_TIME, tt, W_CALLS, calls);
        bool sel = l->top + r == l->sel;
        int y = y0 + r;
        int attr = sel ? A_REVERSE : 0;
        tui_put(app, y, 0, line, app->cols, true, attr);
        if (!sel && whole && t->self_ns * 10 >= whole) {
            /* re-draw the own% cell right-aligned in the hot colour */
            char cell[16];
            snprintf(cell, sizeof(cell), "%*s", W_PCT - 1, own);
            tui_put(app, y, 0, cell, W_PCT - 1, false, tui_attr(app, TUI_C_HOT));
        }
        char fn[TUI_TEXT_CAP(512)];
        int w = app->cols - W_FIXED;
        tui_format_frame(fn, sizeof(fn), t->name, t->file, t->line, w > 512 ? 512 : w, app->utf8);
        tui_put(app, y, W_FIXED, fn, w, sel, attr);
    }
}

bool tui_top_on_key(tui_app *app, int key)
{
    tui_top_key k;
    switch (key) {
    case 's':
        app->top_key = (tui_top_key)((app->top_key + 1) % TUI_TOP_NKEYS);
        app->top_reverse = false;
        break;
    case 'S': app->top_reverse = !app->top_reverse; break;
    case 'o': case 'T': case 'c': case 'n':
        k = key == 'o' ? TUI_TOP_SELF : key == 'T' ? TUI_TOP_TOTAL : key == 'c' ? TUI_TOP_CALLS
                                                                               : TUI_TOP_NAME;
        app->top_reverse = app->top_key == k ? !app->top_reverse : false;
        app->top_key = k;
        break;
    default: return false;
    }
    resort(app);
    tui_message(app, "Top sorted by %s%s", tui_top_key_name(app->top_key),
                app->top_reverse ? " (reversed)" : "");
    return true;
}
