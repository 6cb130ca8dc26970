/* Busy-stretch durations of one event loop, in constant memory.
 *
 * Percentiles come from a histogram of logarithmic buckets 1% wide (so a percentile is within
 * 1% of the exact one, and clamped to the exact minimum and maximum); count, sum, minimum and
 * maximum are exact. The newest stretches are also kept in a ring for "lag now" over a recent
 * window. A recording of hours costs the same as one of seconds. */
#ifndef APROF_LAG_HIST_H
#define APROF_LAG_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LAG_HIST_RECENT 4096 /* newest stretches kept: over 2 s of a loop switching at 2 kHz */

typedef struct lag_hist {
    uint32_t *buckets;        /* allocated on the first stretch */
    uint64_t count, sum_ns, min_ns, max_ns;
    uint64_t recent_ns[LAG_HIST_RECENT], recent_end[LAG_HIST_RECENT];
    size_t nrecent;           /* stretches ever added to the ring (index: nrecent % size) */
} lag_hist;

/* 0, or -1 when out of memory (nothing is added then). */
int lag_hist_add(lag_hist *h, uint64_t ns, uint64_t end_ns);
void lag_hist_free(lag_hist *h);

/* The duration at quantile q (0..1) of the stretches added, in ns; 0 when there are none. */
uint64_t lag_hist_quantile(const lag_hist *h, double q);

/* The longest stretch that ended at or after `since` among the ring's; 0 if none. *complete is
 * false when the ring no longer reaches back that far. */
uint64_t lag_hist_recent_max(const lag_hist *h, uint64_t since, bool *complete);

#endif
