/* The sampling loop: takes a sample of the target at a fixed rate until a duration elapses, the
 * target exits, or a stop is requested (SIGINT/SIGTERM), and hands each sample to a consumer.
 * It owns timing (absolute deadlines, so the rate does not drift) and target suspension
 * (--blocking); it knows nothing of what the samples are used for. */
#ifndef APROF_SAMPLER_H
#define APROF_SAMPLER_H

#include "procset.h"
#include "sample.h"
#include "session.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct sampler_stats;

typedef struct sampler_opts {
    double rate_hz;
    double duration_s;  /* <= 0: no limit */
    bool blocking;      /* suspend threads with ptrace for each sample */
    bool nonblocking;   /* never stop a thread (else a torn stack is read again stopped) */
    pid_t child;        /* launch mode: our child process, reaped when it exits; 0 otherwise */
    /* Called about every 250 ms while sampling, and once with done set at the end (NULL:
     * never). */
    void (*progress)(void *ud, const struct sampler_stats *st, uint64_t now_ns, bool done);
    void *progress_ud;
} sampler_opts;

typedef struct sampler_stats {
    uint64_t ticks;        /* sample attempts */
    uint64_t samples;      /* attempts that produced a sample */
    uint64_t errors;       /* attempts where the target could not be read */
    uint64_t late;         /* deadlines missed because a sample took longer than the interval */
    uint64_t cost_ns_total;
    uint64_t uncredited_ns; /* wall time no sample stands for (aprof held up or late) */
    uint64_t t_start_ns, t_end_ns;
    bool target_exited;
    bool child_reaped;
    int child_status;      /* wait status when child_reaped */
    int freeze_errno;      /* --blocking: why suspension failed, 0 when it worked */
    bool realtime;         /* samples were taken under SCHED_FIFO (see sampler.c) */
    uint64_t stopped_ns;   /* time some thread of the target was held stopped */
    uint64_t thread_stops; /* default mode: torn threads stopped and read again */
} sampler_stats;

/* Called for every sample; return false to stop. */
typedef bool (*sampler_consumer)(void *ud, const aprof_sample *s, const sampler_stats *st);

/* Run until done. Returns 0. */
int sampler_run(session *s, const sampler_opts *o, sampler_consumer consume, void *ud,
                sampler_stats *st);

/* The same over a set of processes (procset.h): each one is sampled at the rate, one after
 * the other at each sample time, and each of its samples goes to the consumer (s->pid says
 * whose). A process that exits or stays unreadable leaves the set; the run ends when the set is
 * empty and (following) its root has exited too, or as sampler_run does. The set is refreshed
 * between samples. With o->child, the run ends when that child exits. */
int sampler_run_set(procset *ps, const sampler_opts *o, sampler_consumer consume, void *ud,
                    sampler_stats *st);

#endif
