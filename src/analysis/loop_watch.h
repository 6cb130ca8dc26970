/* `aprof dump`'s view of event loops: is each loop idle (in its selector) or busy right now,
 * and for how long does it stay busy. A single look cannot tell when a busy loop left its
 * selector, so the busy ones are watched for a short while: the busy time is then known up to
 * the moment the loop returns to its selector, or is reported as a lower bound. */
#ifndef APROF_LOOP_WATCH_H
#define APROF_LOOP_WATCH_H

#include "sample.h"
#include "session.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct loop_state {
    pid_t tid;
    uint8_t kind;          /* loop_kind */
    bool busy;             /* at the first look */
    bool ended;            /* busy, and it returned to its selector while watched */
    uint64_t busy_for_ns;  /* busy: how long it was seen busy (a lower bound unless ended) */
} loop_state;

/* Fill out[] (at most max) with the loop threads of `first`; watch the busy ones for up to
 * watch_ns more (sampling at 1 kHz). Returns the number of loop threads. */
size_t loop_watch(session *s, const aprof_sample *first, uint64_t watch_ns, loop_state *out,
                  size_t max);

#endif
