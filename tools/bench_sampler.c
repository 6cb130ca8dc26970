/* Microbenchmark of the sampling path: attach to a pid, take samples back to back for a while,
 * print per-sample cost percentiles and the sustained rate. Used by bench/run.py. */
#include "cli.h"
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_sampler PID SECONDS\n");
        return 2;
    }
    pid_t pid = (pid_t)atoi(argv[1]);
    double secs = atof(argv[2]);
    session s;
    aprof_error err = {0};
    if (session_open(&s, pid, &err) != APROF_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    aprof_sample smp;
    sample_init(&smp);
    size_t cap = 1 << 22, n = 0;
    uint64_t *cost = malloc(cap * sizeof(*cost));
    uint64_t torn = 0, frames = 0, start = aprof_now_ns(), end = start + (uint64_t)(secs * 1e9);
    uint64_t now = start;
    while (now < end && n < cap) {
        sample_reset(&smp);
        uint64_t t0 = aprof_now_ns();
        int rc = session_sample(&s, &smp);
        now = aprof_now_ns();
        if (rc < 0)
            break;
        cost[n++] = now - t0;
        for (uint32_t i = 0; i < smp.nthreads; i++) {
            torn += (smp.threads[i].flags & TSF_TORN) != 0;
            frames += smp.threads[i].nframes;
        }
    }
    double el = (double)(now - start) / 1e9;
    qsort(cost, n, sizeof(*cost), cmp_u64);
    if (n) {
        printf("{\"python\": \"%s\", \"samples\": %zu, \"median_us\": %.2f, \"p99_us\": %.2f, "
               "\"sustained_hz\": %.0f, \"torn_ratio\": %.4f, \"mean_frames\": %.1f, "
               "\"syscalls_per_sample\": %.2f}\n",
               s.rt.version, n, (double)cost[n / 2] / 1e3, (double)cost[n * 99 / 100] / 1e3,
               (double)n / el, (double)torn / (double)n, (double)frames / (double)n,
               (double)s.m.stats.syscalls / (double)n);
    }
    free(cost);
    sample_free(&smp);
    session_close(&s);
    return n ? 0 : 1;
}
