#include "loop_watch.h"

#include "clock.h"
#include "stop.h"

#include <time.h>

size_t loop_watch(session *s, const aprof_sample *first, uint64_t watch_ns, loop_state *out,
                  size_t max)
{
    size_t n = 0;
    size_t busy = 0;
    for (uint32_t i = 0; i < first->nthreads && n < max; i++) {
        const aprof_thread_sample *t = &first->threads[i];
        if (t->loop == LOOP_NONE)
            continue;
        out[n] = (loop_state){t->tid, t->loop, !t->loop_idle, false, 0};
        busy += out[n].busy;
        n++;
    }
    if (!busy || !watch_ns)
        return n;
    aprof_sample smp;
    sample_init(&smp);
    uint64_t start = first->t_ns ? first->t_ns : aprof_now_ns(), last = start;
    while (busy && last - start < watch_ns && !aprof_stop_requested) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        sample_reset(&smp);
        uint64_t now = aprof_now_ns();
        if (session_sample(s, &smp) < 0)
            break;
        for (uint32_t i = 0; i < smp.nthreads; i++) {
            const aprof_thread_sample *t = &smp.threads[i];
            if (t->flags & TSF_TORN)
                continue;
            for (size_t k = 0; k < n; k++) {
                if (out[k].tid != t->tid || !out[k].busy || out[k].ended)
                    continue;
                if (t->loop_idle) {
                    out[k].ended = true;
                    out[k].busy_for_ns = last - start + (now - last) / 2;
                    busy--;
                }
            }
        }
        last = now;
    }
    for (size_t k = 0; k < n; k++)
        if (out[k].busy && !out[k].ended)
            out[k].busy_for_ns = last - start;
    sample_free(&smp);
    return n;
}
