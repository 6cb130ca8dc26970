/* The interactive full-screen view of `aprof attach` (docs/tui.md). */
#ifndef APROF_TUI_H
#define APROF_TUI_H

#include "session.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct tui_options {
    double rate_hz;
    uint64_t stall_threshold_ns;
    bool native;      /* shown in the header; the session is already set up for it */
    bool blocking;
    bool nonblocking; /* never stop a thread (see sampler_opts) */
    bool exact_task_names; /* no grouping of default-named tasks in stitched stacks */
    pid_t follow_root;     /* --subprocesses: this process and its descendants (session NULL) */
    bool redact;           /* following: applied to each process found */
} tui_options;

/* Run the TUI on an open session (or, with o->follow_root, on that process tree) until the user quits (q, Ctrl-C, SIGTERM). Sampling runs in a
 * background thread. Returns the exit code. The terminal is restored in every case. */
aprof_status tui_run(session *s, const tui_options *o, aprof_error *err);

#endif
