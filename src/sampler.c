#include "sampler.h"

#include "cli.h"
#include "exitcodes.h"
#include "freezer.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONSECUTIVE_ERRORS 50
#define CODECACHE_REVALIDATE_NS 250000000ull
#define MAX_WEIGHT_INTERVALS 4

static void sleep_until(uint64_t deadline_ns)
{
    struct timespec ts = {(time_t)(deadline_ns / 1000000000ull), (long)(deadline_ns % 1000000000ull)};
    /* EINTR (a stop signal) returns early: the loop checks cli_stop_requested. */
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void progress_line(const sampler_stats *st, uint64_t now)
{
    double el = (double)(now - st->t_start_ns) / 1e9;
    fprintf(stderr, "\raprof: %.1f s, %llu samples (%.0f Hz), %llu errors   ", el,
            (unsigned long long)st->samples, el > 0 ? (double)st->samples / el : 0.0,
            (unsigned long long)st->errors);
}

static bool reap_child(pid_t child, sampler_stats *st)
{
    int status;
    pid_t r = waitpid(child, &status, WNOHANG);
    /* A traced child (--blocking, --native) also reports ptrace stops here: not an exit. */
    if (r == child && (WIFEXITED(status) || WIFSIGNALED(status))) {
        st->child_reaped = true;
        st->child_status = status;
        return true;
    }
    return false;
}

int sampler_run(session *s, const sampler_opts *o, sampler_consumer consume, void *ud,
                sampler_stats *st)
{
    memset(st, 0, sizeof(*st));
    /* The default 50 us timer slack would smear a 1 kHz schedule; ask for precise wakeups. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    uint64_t interval = (uint64_t)(1e9 / o->rate_hz);
    if (interval == 0)
        interval = 1;
    freezer fz;
    freezer_init(&fz, s->pid);
    aprof_sample smp;
    sample_init(&smp);
    uint64_t start = cli_now_ns();
    uint64_t end = o->duration_s > 0 ? start + (uint64_t)(o->duration_s * 1e9) : UINT64_MAX;
    uint64_t next = start, prev_t = 0, last_progress = 0, last_revalidate = start;
    int consecutive_errors = 0;
    st->t_start_ns = start;
    while (!cli_stop_requested) {
        uint64_t t0 = cli_now_ns();
        if (t0 >= end)
            break;
        st->ticks++;
        sample_reset(&smp);
        bool frozen = false;
        if (o->blocking && !s->native) { /* --native stops the target itself */
            frozen = freezer_stop(&fz) >= 0;
            if (!frozen && fz.last_errno != ESRCH && !st->freeze_errno)
                st->freeze_errno = fz.last_errno;
        }
        int n = session_sample(s, &smp);
        int read_errno = errno;
        if (frozen)
            freezer_resume(&fz);
        uint64_t t1 = cli_now_ns();
        if (n < 0) {
            /* A failed read of a process that is exiting is the end, not an error. */
            if (read_errno == ESRCH || !proc_alive(s->pid)) {
                st->target_exited = true;
                break;
            }
            st->errors++;
            if (++consecutive_errors > MAX_CONSECUTIVE_ERRORS)
                break;
        } else {
            consecutive_errors = 0;
            smp.t_ns = t0;
            /* A sample stands for the time since the previous one, but not for more than a few
             * intervals: after a stall of aprof itself (machine overloaded), the one stack seen
             * next is no evidence for the whole gap. */
            uint64_t gap = prev_t ? t0 - prev_t : interval;
            smp.weight_ns = gap > MAX_WEIGHT_INTERVALS * interval ? MAX_WEIGHT_INTERVALS * interval
                                                                  : gap;
            if (gap > smp.weight_ns)
                st->unaccounted_ns += gap - smp.weight_ns;
            smp.cost_ns = (uint32_t)(t1 - t0 > UINT32_MAX ? UINT32_MAX : t1 - t0);
            st->cost_ns_total += t1 - t0;
            st->samples++;
            prev_t = t0;
            if (!consume(ud, &smp, st))
                break;
        }
        if (o->child && reap_child(o->child, st)) {
            st->target_exited = true;
            break;
        }
        if (t1 - last_revalidate >= CODECACHE_REVALIDATE_NS) {
            codecache_revalidate(s->ps.cc, &s->m);
            session_prune_threads(s);
            last_revalidate = t1;
        }
        if (o->progress && t1 - last_progress >= 250000000ull) {
            progress_line(st, t1);
            last_progress = t1;
        }
        next += interval;
        uint64_t now = cli_now_ns();
        if (next < now) {
            st->late++;
            next = now; /* do not burst to catch up: the weights carry the real gaps */
        } else {
            sleep_until(next < end ? next : end);
        }
    }
    st->t_end_ns = cli_now_ns();
    if (o->progress)
        fputs("\r\033[K", stderr);
    sample_free(&smp);
    freezer_free(&fz);
    return 0;
}
