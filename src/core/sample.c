#include "sample.h"

#include <stdlib.h>
#include <string.h>

void sample_init(aprof_sample *s)
{
    memset(s, 0, sizeof(*s));
}

void sample_reset(aprof_sample *s)
{
    s->nthreads = 0;
    s->t_ns = 0;
    s->weight_ns = 0;
    s->cost_ns = 0;
}

void sample_free(aprof_sample *s)
{
    for (uint32_t i = 0; i < s->cap_threads; i++) {
        free(s->threads[i].frames);
        free(s->threads[i].owners);
    }
    free(s->threads);
    memset(s, 0, sizeof(*s));
}

aprof_thread_sample *sample_add_thread(aprof_sample *s, uint32_t max_frames)
{
    if (s->nthreads == s->cap_threads) {
        uint32_t ncap = s->cap_threads ? s->cap_threads * 2 : 16;
        aprof_thread_sample *nt = realloc(s->threads, ncap * sizeof(*nt));
        if (!nt)
            return NULL;
        memset(nt + s->cap_threads, 0, (ncap - s->cap_threads) * sizeof(*nt));
        s->threads = nt;
        s->cap_threads = ncap;
    }
    aprof_thread_sample *t = &s->threads[s->nthreads];
    if (t->cap_frames < max_frames) {
        aprof_frame *nf = realloc(t->frames, max_frames * sizeof(*nf));
        if (nf)
            t->frames = nf;
        uint64_t *no = realloc(t->owners, max_frames * sizeof(*no));
        if (no)
            t->owners = no;
        if (!nf || !no)
            return NULL;
        t->cap_frames = max_frames;
    }
    aprof_frame *frames = t->frames;
    uint64_t *owners = t->owners;
    uint32_t cap = t->cap_frames;
    memset(t, 0, sizeof(*t));
    t->frames = frames;
    t->owners = owners;
    t->cap_frames = cap;
    t->holds_gil = -1;
    t->callback_frame = -1;
    t->syscall = -2;
    s->nthreads++;
    return t;
}

uint8_t thread_state_of_letter(char c)
{
    switch (c) {
    case 'R': return TS_RUNNING;
    case 'S': return TS_SLEEPING;
    case 'D': return TS_DISK;
    case 'T': case 't': return TS_STOPPED;
    case 0: return TS_UNKNOWN;
    default: return TS_OTHER;
    }
}
