#include "lag_hist.h"

#include <math.h>
#include <stdlib.h>

#define BUCKET_BASE_NS 1000.0   /* bucket 0: under 1 us */
#define BUCKET_GROWTH 1.01
#define NBUCKETS 2200           /* 1 us * 1.01^2199: about 50 minutes, the last bucket beyond */

static size_t bucket_of(uint64_t ns)
{
    if ((double)ns < BUCKET_BASE_NS)
        return 0;
    double b = 1.0 + floor(log((double)ns / BUCKET_BASE_NS) / log(BUCKET_GROWTH));
    return b >= NBUCKETS - 1 ? NBUCKETS - 1 : (size_t)b;
}

/* A value that stands for bucket b: its geometric middle. */
static double bucket_value(size_t b)
{
    if (b == 0)
        return BUCKET_BASE_NS / 2;
    return BUCKET_BASE_NS * pow(BUCKET_GROWTH, (double)b - 0.5);
}

int lag_hist_add(lag_hist *h, uint64_t ns, uint64_t end_ns)
{
    if (!h->buckets) {
        h->buckets = calloc(NBUCKETS, sizeof(*h->buckets));
        if (!h->buckets)
            return -1;
    }
    size_t b = bucket_of(ns);
    if (h->buckets[b] < UINT32_MAX)
        h->buckets[b]++;
    if (h->count == 0 || ns < h->min_ns)
        h->min_ns = ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
    h->count++;
    h->sum_ns += ns;
    size_t slot = h->nrecent % LAG_HIST_RECENT;
    h->recent_ns[slot] = ns;
    h->recent_end[slot] = end_ns;
    h->nrecent++;
    return 0;
}

void lag_hist_free(lag_hist *h)
{
    free(h->buckets);
    h->buckets = NULL;
}

uint64_t lag_hist_quantile(const lag_hist *h, double q)
{
    if (h->count == 0 || !h->buckets)
        return 0;
    if (q <= 0)
        return h->min_ns;
    if (q >= 1)
        return h->max_ns;
    /* the k-th smallest (0-based), k rounded as for an exact sorted array */
    uint64_t k = (uint64_t)(q * (double)(h->count - 1) + 0.5), seen = 0;
    for (size_t b = 0; b < NBUCKETS; b++) {
        seen += h->buckets[b];
        if (seen > k) {
            double v = bucket_value(b);
            if (v < (double)h->min_ns)
                return h->min_ns;
            if (v > (double)h->max_ns)
                return h->max_ns;
            return (uint64_t)v;
        }
    }
    return h->max_ns; /* a saturated bucket count */
}

uint64_t lag_hist_recent_max(const lag_hist *h, uint64_t since, bool *complete)
{
    uint64_t best = 0;
    size_t n = h->nrecent < LAG_HIST_RECENT ? h->nrecent : LAG_HIST_RECENT;
    bool reached = h->nrecent <= LAG_HIST_RECENT;
    /* stretches end in time order: walk back from the newest while inside the window */
    for (size_t i = 0; i < n; i++) {
        size_t slot = (h->nrecent - 1 - i) % LAG_HIST_RECENT;
        if (h->recent_end[slot] < since) {
            reached = true;
            break;
        }
        if (h->recent_ns[slot] > best)
            best = h->recent_ns[slot];
    }
    if (complete)
        *complete = reached;
    return best;
}
