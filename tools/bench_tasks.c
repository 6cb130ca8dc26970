/* Microbenchmark of the asyncio task reader: attach to a pid, take full task snapshots back to
 * back, print the cost per snapshot as JSON. Used by bench/tasks_snapshot.py.
 *
 *     bench_tasks PID [SNAPSHOTS] [--fresh]
 *
 * Each snapshot is preceded by a thread sample (not timed), as in `aprof dump`. --fresh creates a
 * new reader for every snapshot (the cost of a one-shot `aprof dump`, registries looked up). */
#include "asyncio_reader.h"
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
    if (argc < 2) {
        fprintf(stderr, "usage: bench_tasks PID [SNAPSHOTS] [--fresh]\n");
        return 2;
    }
    pid_t pid = (pid_t)atoi(argv[1]);
    int n = argc > 2 && argv[2][0] != '-' ? atoi(argv[2]) : 200;
    bool fresh = argc > 2 && strcmp(argv[argc - 1], "--fresh") == 0;
    if (n < 1)
        n = 1;
    session s;
    aprof_error err = {0};
    if (session_open(&s, pid, &err) != APROF_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    aprof_sample smp;
    sample_init(&smp);
    async_snapshot snap;
    async_snapshot_init(&snap);
    asyncio_reader *r = session_asyncio_reader(&s);
    uint64_t *cost = malloc((size_t)n * sizeof(*cost));
    if (!r || !cost)
        return 1;
    uint64_t syscalls = 0, frames = 0, edges = 0, tasks = 0;
    int done = 0;
    for (; done < n; done++) {
        if (fresh) {
            asyncio_reader_free(r);
            r = session_asyncio_reader(&s);
            if (!r)
                return 1;
        }
        sample_reset(&smp);
        if (session_sample(&s, &smp) < 0)
            break;
        uint64_t sc0 = s.m.stats.syscalls, t0 = aprof_now_ns();
        int rc = asyncio_snapshot(r, &smp, &snap);
        uint64_t t1 = aprof_now_ns();
        if (rc < 0)
            break;
        cost[done] = t1 - t0;
        syscalls += s.m.stats.syscalls - sc0;
        frames += snap.nframes;
        edges += snap.nedges;
        tasks += snap.ntasks;
    }
    if (done) {
        qsort(cost, (size_t)done, sizeof(*cost), cmp_u64);
        printf("{\"python\": \"%s\", \"snapshots\": %d, \"fresh_reader\": %s, \"tasks\": %.0f, "
               "\"median_us\": %.1f, \"p90_us\": %.1f, \"min_us\": %.1f, "
               "\"syscalls_per_snapshot\": %.1f, \"frames_per_snapshot\": %.0f, "
               "\"edges_per_snapshot\": %.0f}\n",
               s.rt.version, done, fresh ? "true" : "false", (double)tasks / done,
               (double)cost[done / 2] / 1e3, (double)cost[done * 9 / 10] / 1e3,
               (double)cost[0] / 1e3, (double)syscalls / done, (double)frames / done,
               (double)edges / done);
    }
    free(cost);
    asyncio_reader_free(r);
    async_snapshot_free(&snap);
    sample_free(&smp);
    session_close(&s);
    return done ? 0 : 1;
}
