/* Stalls grouped by their culprit line: "which line of my code blocks the loop, how often, how
 * long in all" (the summary, --summary JSON and the TUI's Stalls view). */
#ifndef APROF_STALL_GROUPS_H
#define APROF_STALL_GROUPS_H

#include "stalls.h"

#include <stddef.h>
#include <stdint.h>

typedef struct stall_group {
    aprof_frame culprit;   /* the line: name, file and line shared by the group's stalls */
    uint32_t count;
    uint64_t total_ns, max_ns;
    uint8_t worst_impact;  /* stall_impact */
    uint32_t longest;      /* index (into the events given) of its longest stall */
    uint32_t clipped;      /* how many began before the first sample or were still running */
} stall_group;

/* Group events[idx[k]] for k < n (idx NULL: events 0..n-1) by culprit, most total time first
 * (then most stalls). *out is malloc'd (NULL when there are none); returns the
 * number of groups, or 0 with *out NULL when out of memory. */
size_t stall_group_by_culprit(const stall_event *events, const uint32_t *idx, size_t n,
                              stall_group **out);

/* The detector's events as one array (stall_count() of them), for stall_group_by_culprit. */
const stall_event *stall_events(const stall_detector *d);

#endif
