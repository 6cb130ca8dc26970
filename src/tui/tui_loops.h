/* Event-loop data of the TUI: the Stalls view's list (copies of the stall detector's events, so
 * the view keeps them while the detector grows). The header's loop state and lag come from the
 * stall detector itself (stall_loop_now). Pure data structures, no locking. */
#ifndef APROF_TUI_LOOPS_H
#define APROF_TUI_LOOPS_H

#include "sample.h"
#include "stalls.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TUI_LAG_WINDOW_NS 2000000000ull /* "lag now": stretches that ended this recently */

/* ---- stalls ----------------------------------------------------------------------------------- */

typedef struct tui_stall_list {
    stall_event *ev;            /* copies; each stack owned here */
    size_t n, cap;
} tui_stall_list;

void tui_stall_list_free(tui_stall_list *l);
void tui_stall_list_clear(tui_stall_list *l);
/* Copy the events of the detector that the list does not have yet. 0 or -1 (ENOMEM). */
int tui_stall_list_sync(tui_stall_list *l, const stall_detector *d);

/* Indices into l->ev, newest first, of the stalls whose culprit, task, callback or thread
 * contains filter (all with an empty one). out must hold l->n entries. Returns the count. */
size_t tui_stalls_order(const tui_stall_list *l, const char *filter, uint32_t *out);

#endif
