/* State of the running TUI shared by its main loop (tui.c), the screen helpers (tui_screen.c)
 * and the views (tui_view_*.c). Only the UI thread touches it. Each view has three functions:
 * build (with the live data's lock held: copy what it shows out of the live data), draw (no
 * lock: ncurses only) and key (handle a key; true when it used it). */
#ifndef APROF_TUI_APP_H
#define APROF_TUI_APP_H

#include "stall_groups.h"
#include "tui.h"
#include "tui_live.h"
#include "tui_loops.h"
#include "tui_profile.h"
#include "tui_tasks.h"

#include <stdbool.h>
#include <stdint.h>

#define TUI_RECENT_NS (10ull * 1000000000ull) /* the "recent" window of Top and Tree */
#define TUI_REFRESH_NS 250000000ull           /* data refresh: 4 times a second */
#define TUI_MAX_THREADS 256
#define TUI_HEADER_ROWS 4                     /* header lines above the view */

typedef enum tui_view { TUI_VIEW_TOP = 0, TUI_VIEW_TASKS, TUI_VIEW_STALLS, TUI_VIEW_TREE,
                        TUI_VIEW_COUNT } tui_view;

typedef enum tui_popup { TUI_POPUP_NONE = 0, TUI_POPUP_HELP, TUI_POPUP_THREADS,
                         TUI_POPUP_STACK } tui_popup;

typedef struct tui_list {
    int sel;  /* selected row */
    int top;  /* first row shown */
} tui_list;

/* What the header shows, copied under the lock. */
typedef struct tui_header {
    uint64_t now_ns;
    uint64_t samples, errors;
    uint64_t sampling_ns;          /* since the sampler started */
    uint64_t thread_samples, torn, marked, dropped;
    size_t nloops;
    loop_now loop;                 /* the event loop shown (nloops > 0) */
    uint64_t stalls;
    bool have_tasks, no_asyncio;
    bool tasks_unsupported; /* this Python keeps its tasks where aprof cannot read them yet */
    uint32_t tasks_alive, tasks_total;
    pid_t tasks_pid;               /* whose tasks the Tasks view shows */
    char tasks_label[80];
    size_t nprocs;                 /* processes sampled now */
    size_t shown;                  /* index of tasks_pid among them */
    uint64_t procs_joined;
    bool finished, exited;
} tui_header;

typedef struct tui_thread_item {
    pid_t tid;
    const char *name;
} tui_thread_item;

typedef struct tui_app {
    tui_live *live;
    pid_t pid;                     /* the process attached to (with --subprocesses, the root) */
    char cmdline[1024];
    char version[32];              /* its Python version ("" when following) */
    tui_options opts;
    bool utf8, color;
    int rows, cols;
    uint64_t start_ns;
    bool quit;
    bool dirty;                    /* rebuild the view's rows at once (a key changed them) */

    tui_view view;
    tui_list list[TUI_VIEW_COUNT];
    bool paused, recent;
    char filter[TUI_FILTER_MAX];
    pid_t tid;                     /* 0: all threads */
    const char *tid_name;
    tui_header hdr;
    tui_thread_item threads[TUI_MAX_THREADS];
    size_t nthreads;

    /* Top and Tree */
    tui_prof prof;
    tui_top_row *top;
    size_t ntop, cap_top;
    tui_top_key top_key;
    bool top_reverse;
    tui_tree_state tree;
    tui_tree_row *tree_rows;
    size_t ntree, cap_tree;

    /* Tasks */
    tui_task_row *task_rows;
    size_t ntask_rows, cap_task_rows;
    bool show_done;

    /* Stalls */
    tui_stall_list stalls;
    uint32_t *stall_rows;
    size_t nstall_rows, cap_stall_rows;
    bool stalls_by_culprit;        /* c: one row per culprit line instead of per stall */
    stall_group *stall_groups;     /* of stall_rows, when stalls_by_culprit */
    size_t nstall_groups;

    /* popups, prompt, message line */
    tui_popup popup;
    tui_list popup_list;
    uint32_t popup_stall;          /* TUI_POPUP_STACK: index in stalls.ev */
    bool prompting;
    char prompt[TUI_FILTER_MAX];
    char msg[512];
    uint64_t msg_until_ns;
} tui_app;

/* ---- screen helpers (tui_screen.c) ---- */
enum tui_color { TUI_C_TITLE = 1, TUI_C_TAB, TUI_C_WARN, TUI_C_CRIT, TUI_C_HOT, TUI_C_DIM,
                 TUI_C_OK, TUI_C_COUNT };
void tui_screen_colors(tui_app *app);
int tui_attr(const tui_app *app, enum tui_color c);
/* Write text at (y, x), cut to width columns (padded with spaces when pad). Returns columns. */
int tui_put(const tui_app *app, int y, int x, const char *text, int width, bool pad, int attr);
/* A list of n rows in the screen rows [y0, y0 + h): keeps sel in range and visible. */
void tui_list_clamp(tui_list *l, int n, int h);
/* Up/Down/PgUp/PgDn/Home/End on a list of n rows shown h at a time; true when handled. */
bool tui_list_key(tui_list *l, int key, int n, int h);
/* Rows the current view can show. */
int tui_view_height(const tui_app *app);
void tui_message(tui_app *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- views ---- */
void tui_top_build_locked(tui_app *app);
void tui_top_draw(tui_app *app, int y0, int h);
bool tui_top_on_key(tui_app *app, int key);

void tui_tasks_build_locked(tui_app *app);
void tui_tasks_draw(tui_app *app, int y0, int h);
bool tui_tasks_on_key(tui_app *app, int key);

void tui_stalls_build_locked(tui_app *app);
void tui_stalls_draw(tui_app *app, int y0, int h);
bool tui_stalls_on_key(tui_app *app, int key);
void tui_stack_popup_draw(tui_app *app);

void tui_tree_build_locked(tui_app *app);
void tui_tree_draw(tui_app *app, int y0, int h);
bool tui_tree_on_key(tui_app *app, int key);

/* Re-select the Top/Tree statistics after the thread, filter or window changed. */
void tui_reselect(tui_app *app);

#endif
