/* View 4, Tree: the call tree with percentages; expand, collapse, zoom into a subtree. */
#include "tui_app.h"

#include "tui_text.h"

#include <curses.h>
#include <stdio.h>
#include <string.h>

#define W_PCT 7
#define W_TIME 9
#define W_FIXED (2 * W_PCT + W_TIME + 2)

void tui_tree_build_locked(tui_app *app)
{
    tui_list *l = &app->list[TUI_VIEW_TREE];
    uint32_t sel_node = l->sel >= 0 && (size_t)l->sel < app->ntree ? app->tree_rows[l->sel].node
                                                                    : AGG_ROOT;
    app->ntree = tui_tree_build(&app->prof, app->live->a, &app->tree, &app->tree_rows,
                                &app->cap_tree);
    for (size_t i = 0; sel_node != AGG_ROOT && i < app->ntree; i++)
        if (app->tree_rows[i].node == sel_node) {
            l->sel = (int)i;
            break;
        }
    tui_list_clamp(l, (int)app->ntree, tui_view_height(app));
}

void tui_tree_draw(tui_app *app, int y0, int h)
{
    char head[256];
    int nz = app->tree.nzoom;
    snprintf(head, sizeof(head), "%*s%*s%*s  %s", W_PCT - 1, "TOTAL%", W_PCT, "OWN%", W_TIME,
             "TOTAL", nz ? "CALL TREE (zoomed: Z or Backspace zooms out)"
                         : "CALL TREE (Enter/arrows expand and collapse, z zooms in)");
    tui_put(app, y0 - 1, 0, head, app->cols, true, A_BOLD);
    tui_list *l = &app->list[TUI_VIEW_TREE];
    tui_list_clamp(l, (int)app->ntree, h);
    if (app->ntree == 0) {
        tui_put(app, y0 + 1, 2, app->filter[0] ? "no stack matches the filter (/ to change it)"
                                               : "no samples yet",
                app->cols - 2, false, tui_attr(app, TUI_C_DIM));
        return;
    }
    uint64_t whole = app->prof.total_ns;
    int namew = app->cols - W_FIXED;
    int maxd = namew > 24 ? (namew - 20) / 2 : 0;
    for (int r = 0; r < h && l->top + r < (int)app->ntree; r++) {
        const tui_tree_row *t = &app->tree_rows[l->top + r];
        int y = y0 + r;
        bool sel = l->top + r == l->sel;
        int base = sel ? A_REVERSE : 0;
        char tp[16], op[16], tt[16], cells[64];
        tui_format_pct(tp, sizeof(tp), t->total_ns, whole);
        tui_format_pct(op, sizeof(op), t->self_ns, whole);
        tui_format_duration(tt, sizeof(tt), t->total_ns);
        snprintf(cells, sizeof(cells), "%*s%*s%*s  ", W_PCT - 1, tp, W_PCT, op, W_TIME, tt);
        tui_put(app, y, 0, cells, app->cols, true, base);
        if (!sel && whole && t->total_ns * 2 >= whole) {
            char cell[16];
            snprintf(cell, sizeof(cell), "%*s", W_PCT - 1, tp);
            tui_put(app, y, 0, cell, W_PCT - 1, false, tui_attr(app, TUI_C_HOT));
        }
        int depth = (int)t->depth;
        char prefix[160] = "";
        size_t pl = 0;
        if (depth > maxd)
            pl = (size_t)snprintf(prefix, sizeof(prefix), "[%d] ", depth);
        int shown = depth > maxd ? maxd : depth;
        for (int d = 0; d < shown && pl + 3 < sizeof(prefix); d++) {
            prefix[pl++] = ' ';
            prefix[pl++] = ' ';
        }
        prefix[pl] = '\0';
        const char *glyph = !t->has_children ? "  "
                            : t->expanded    ? (app->utf8 ? "\xe2\x96\xbe " : "- ")
                                             : (app->utf8 ? "\xe2\x96\xb8 " : "+ ");
        char fr[TUI_TEXT_CAP(512)], line[TUI_TEXT_CAP(512) + 200];
        int fw = namew - tui_text_width(prefix, app->utf8) - 2;
        if (fw < 8)
            fw = 8;
        tui_format_frame(fr, sizeof(fr), t->frame.name, t->frame.file, t->frame.line,
                         fw > 512 ? 512 : fw, app->utf8);
        snprintf(line, sizeof(line), "%s%s%s", prefix, glyph, fr);
        int attr = base | (t->frame.kind == FRAME_TASK || t->frame.kind == FRAME_MARK
                               ? (sel ? 0 : tui_attr(app, TUI_C_OK))
                               : 0);
        tui_put(app, y, W_FIXED, line, namew, false, attr);
    }
}

static int parent_row(const tui_app *app, int i)
{
    uint32_t d = app->tree_rows[i].depth;
    for (int k = i - 1; k >= 0; k--)
        if (app->tree_rows[k].depth < d)
            return k;
    return i;
}

bool tui_tree_on_key(tui_app *app, int key)
{
    tui_list *l = &app->list[TUI_VIEW_TREE];
    bool have = l->sel >= 0 && (size_t)l->sel < app->ntree;
    const tui_tree_row *t = have ? &app->tree_rows[l->sel] : NULL;
    switch (key) {
    case '\n': case '\r': case KEY_ENTER:
        if (t && t->has_children)
            tui_tree_set(&app->tree, t->node, !t->expanded);
        break;
    case KEY_RIGHT:
        if (t && t->has_children) {
            if (!t->expanded)
                tui_tree_set(&app->tree, t->node, true);
            else if (l->sel + 1 < (int)app->ntree)
                l->sel++;
        }
        break;
    case KEY_LEFT:
        if (t && t->has_children && t->expanded && t->depth > 0)
            tui_tree_set(&app->tree, t->node, false);
        else if (t && t->has_children && t->expanded && app->tree.nzoom == 0)
            tui_tree_set(&app->tree, t->node, false);
        else if (t)
            l->sel = parent_row(app, l->sel);
        break;
    case 'z':
        if (t && t->has_children) {
            tui_tree_zoom_in(&app->tree, t->node);
            l->sel = 0;
            l->top = 0;
            tui_message(app, "zoomed into %s (Z or Backspace zooms out)", t->frame.name);
        }
        break;
    case 'Z': case 'u': case KEY_BACKSPACE: case 127: case 8:
        if (app->tree.nzoom == 0)
            return true;
        tui_tree_zoom_out(&app->tree);
        tui_message(app, "zoomed out");
        break;
    default:
        return false;
    }
    return true;
}
