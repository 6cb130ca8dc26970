/* What `aprof record` reports about --native and --gil: thread states, the GIL, and how native
 * sampling went. One summary line each on stderr, and the same figures as JSON members for the
 * --summary file (docs/native.md). */
#ifndef APROF_NATIVE_REPORT_H
#define APROF_NATIVE_REPORT_H

#include "json.h"
#include "session.h"
#include "threadstate.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct native_report {
    const session *s;                 /* NULL: no native stacks (several processes) */
    const threadstate_counts *states; /* NULL when not counted */
    bool gil_only;                    /* --gil */
    uint64_t not_gil;                 /* thread samples --gil dropped */
} native_report;

/* "aprof: threads running 40.0%, in syscall 5.0%, sleeping 55.0%; GIL held 35.0%[; N not
 * holding the GIL skipped (--gil)]" and, with --native, "aprof: native stacks (libunwind): N
 * merged, N unmerged, N not unwound; target stopped X us per sample (max Y us)". */
void native_report_print(const native_report *r, FILE *out);

/* Members "thread_states" and "native" (when there is something to say) of the object being
 * written. */
void native_report_json(const native_report *r, json_writer *w);
/* --native: how long the target was held stopped in all (0 without native stacks). */
uint64_t native_report_stopped_ns(const native_report *r);

#endif
