/* Microbenchmark of native sampling: attach to a pid with --native, take samples for a while
 * (back to back, or at --rate HZ), print per-sample cost and stop-time percentiles as JSON.
 * Used by bench/native.py.
 *
 *   bench_native PID SECONDS [--unwinder libunwind|dw] [--rate HZ] [--tid TID]
 *
 * With --tid, frames_per_stack counts only that thread's merged stack.
 * median_us is wall time per sample; cpu_median_us the CPU time aprof spent on it (on a busy
 * machine the wall time also holds waits for a CPU: a thread we resume may preempt us);
 * stopped_*: how long the target's threads were stopped. */
#include "cli.h"
#include "native_stack.h"
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double pct(const uint64_t *v, size_t n, double p)
{
    return n ? (double)v[(size_t)((double)(n - 1) * p)] / 1e3 : 0.0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_native PID SECONDS [--unwinder NAME] [--rate HZ] [--tid TID]\n");
        return 2;
    }
    pid_t pid = (pid_t)atoi(argv[1]), only_tid = 0;
    double secs = atof(argv[2]), rate = 0;
    const char *unw = "libunwind";
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--unwinder") == 0)
            unw = argv[i + 1];
        else if (strcmp(argv[i], "--rate") == 0)
            rate = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--tid") == 0)
            only_tid = (pid_t)atoi(argv[i + 1]);
    }
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* as the sampler does */
    session s;
    aprof_error err = {0};
    if (session_open(&s, pid, &err) != APROF_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (session_enable_native(&s, unw, &err) != APROF_OK) {
        fprintf(stderr, "%s\n", err.msg);
        session_close(&s);
        return 1;
    }
    aprof_sample smp;
    sample_init(&smp);
    size_t cap = 1 << 20, n = 0;
    uint64_t *cost = malloc(cap * sizeof(*cost));
    uint64_t *stopped = malloc(cap * sizeof(*stopped));
    uint64_t *cpu = malloc(cap * sizeof(*cpu));
    uint64_t frames = 0, stacks = 0, start = aprof_now_ns(), end = start + (uint64_t)(secs * 1e9);
    uint64_t now = start, next = start;
    uint64_t interval = rate > 0 ? (uint64_t)(1e9 / rate) : 0;
    while (cost && stopped && cpu && now < end && n < cap) {
        sample_reset(&smp);
        uint64_t before = s.native->stats.stopped_ns_total;
        uint64_t t0 = aprof_now_ns(), c0 = cpu_ns();
        int rc = session_sample(&s, &smp);
        now = aprof_now_ns();
        if (rc < 0)
            break;
        cpu[n] = cpu_ns() - c0;
        cost[n] = now - t0;
        stopped[n++] = s.native->stats.stopped_ns_total - before;
        for (uint32_t i = 0; i < smp.nthreads; i++) {
            if (only_tid && smp.threads[i].tid != only_tid)
                continue;
            frames += smp.threads[i].nframes;
            stacks++;
        }
        if (interval) {
            next += interval;
            if (next > now) {
                struct timespec ts = {(time_t)((next - now) / 1000000000ull),
                                      (long)((next - now) % 1000000000ull)};
                nanosleep(&ts, NULL);
            }
            now = aprof_now_ns();
        }
    }
    /* The first samples load symbols and DWARF: report the steady state separately. */
    size_t warm = n > 20 ? 10 : 0;
    uint64_t first = n ? cost[0] : 0;
    qsort(cost + warm, n - warm, sizeof(*cost), cmp_u64);
    qsort(stopped + warm, n - warm, sizeof(*stopped), cmp_u64);
    qsort(cpu + warm, n - warm, sizeof(*cpu), cmp_u64);
    const native_stack_stats *ns = &s.native->stats;
    const unwinder_stats *us = unwinder_get_stats(s.native->uw);
    if (n > warm) {
        printf("{\"python\": \"%s\", \"unwinder\": \"%s\", \"samples\": %zu, "
               "\"first_sample_us\": %.1f, \"median_us\": %.1f, \"p90_us\": %.1f, "
               "\"p99_us\": %.1f, \"cpu_median_us\": %.1f, \"stopped_median_us\": %.1f, "
               "\"stopped_p99_us\": %.1f, "
               "\"frames_per_stack\": %.1f, \"merged\": %llu, \"unmerged\": %llu, "
               "\"unwind_incomplete\": %llu, \"read_syscalls_per_sample\": %.1f}\n",
               s.rt.version, unw, n - warm, (double)first / 1e3,
               pct(cost + warm, n - warm, 0.5), pct(cost + warm, n - warm, 0.9),
               pct(cost + warm, n - warm, 0.99), pct(cpu + warm, n - warm, 0.5),
               pct(stopped + warm, n - warm, 0.5),
               pct(stopped + warm, n - warm, 0.99), stacks ? (double)frames / (double)stacks : 0.0,
               (unsigned long long)ns->merged, (unsigned long long)ns->unmerged,
               (unsigned long long)us->incomplete, (double)us->read_syscalls / (double)n);
    }
    free(cost);
    free(stopped);
    free(cpu);
    sample_free(&smp);
    session_close(&s);
    return n > warm ? 0 : 1;
}
