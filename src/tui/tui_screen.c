/* ncurses helpers of the TUI: colours (none with NO_COLOR), cut-to-width text, list scrolling. */
#include "tui_app.h"

#include "clock.h"
#include "tui_text.h"

#include <curses.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void tui_screen_colors(tui_app *app)
{
    const char *nc = getenv("NO_COLOR");
    app->color = !(nc && *nc) && has_colors();
    if (!app->color)
        return;
    start_color();
    use_default_colors();
    init_pair(TUI_C_TITLE, COLOR_BLACK, COLOR_CYAN);
    init_pair(TUI_C_TAB, COLOR_BLACK, COLOR_GREEN);
    init_pair(TUI_C_WARN, COLOR_YELLOW, -1);
    init_pair(TUI_C_CRIT, COLOR_RED, -1);
    init_pair(TUI_C_HOT, COLOR_RED, -1);
    init_pair(TUI_C_DIM, COLOR_BLUE, -1);
    init_pair(TUI_C_OK, COLOR_GREEN, -1);
}

/* Without colour every role keeps a distinct plain attribute, so nothing is lost. */
int tui_attr(const tui_app *app, enum tui_color c)
{
    if (app->color) {
        int extra = c == TUI_C_CRIT || c == TUI_C_HOT ? A_BOLD : 0;
        return (int)COLOR_PAIR(c) | extra;
    }
    switch (c) {
    case TUI_C_TITLE:
    case TUI_C_TAB: return A_REVERSE;
    case TUI_C_CRIT:
    case TUI_C_HOT: return A_BOLD;
    case TUI_C_DIM: return A_DIM;
    default: return A_NORMAL;
    }
}

int tui_put(const tui_app *app, int y, int x, const char *text, int width, bool pad, int attr)
{
    if (y < 0 || y >= app->rows || x >= app->cols || width <= 0)
        return 0;
    if (x + width > app->cols)
        width = app->cols - x;
    char buf[TUI_TEXT_CAP(512)];
    if (width > 512)
        width = 512;
    /* the bottom-right cell would scroll on some terminals: leave it empty */
    if (y == app->rows - 1 && x + width >= app->cols)
        width = app->cols - x - 1;
    int cols = pad ? tui_fit_pad(buf, sizeof(buf), text, width, app->utf8)
                   : tui_fit(buf, sizeof(buf), text, width, app->utf8);
    if (attr)
        attron(attr);
    mvaddstr(y, x, buf);
    if (attr)
        attroff(attr);
    return cols;
}

void tui_list_clamp(tui_list *l, int n, int h)
{
    if (h < 1)
        h = 1;
    if (l->sel >= n)
        l->sel = n - 1;
    if (l->sel < 0)
        l->sel = 0;
    if (l->top > l->sel)
        l->top = l->sel;
    if (l->sel >= l->top + h)
        l->top = l->sel - h + 1;
    if (l->top > n - h)
        l->top = n - h;
    if (l->top < 0)
        l->top = 0;
}

bool tui_list_key(tui_list *l, int key, int n, int h)
{
    int page = h > 1 ? h - 1 : 1;
    switch (key) {
    case KEY_UP: case 'k': l->sel--; break;
    case KEY_DOWN: case 'j': l->sel++; break;
    case KEY_PPAGE: l->sel -= page; l->top -= page; break;
    case KEY_NPAGE: l->sel += page; l->top += page; break;
    case KEY_HOME: case 'g': l->sel = 0; break;
    case KEY_END: case 'G': l->sel = n - 1; break;
    default: return false;
    }
    tui_list_clamp(l, n, h);
    return true;
}

int tui_view_height(const tui_app *app)
{
    int h = app->rows - TUI_HEADER_ROWS - 2; /* column headings and the status line */
    return h > 1 ? h : 1;
}

void tui_message(tui_app *app, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(app->msg, sizeof(app->msg), fmt, ap);
    va_end(ap);
    app->msg_until_ns = aprof_now_ns() + 8000000000ull;
}
