#include "native_sleepers.h"

#include "hash.h"

#include <stdlib.h>
#include <string.h>

#define MEMO_SLOTS 256  /* remembered sleeping places, by thread */
#define MEMO_PROBE 16   /* slots looked at from a thread's own (open addressing) */
#define SAMPLE_MAX 1024 /* threads noted per sample */

typedef struct memo {
    pid_t tid;          /* 0: free */
    long nr;
    uint64_t sp, pc;
    bool complete;
    uint32_t n, cap;
    unwind_frame *frames;
} memo;

typedef struct noted {
    pid_t tid;
    long nr;            /* asleep in this syscall before the stop (pre_stop) */
    uint64_t sp, pc;
    uint64_t cpu_ns;    /* left running: its CPU time before the read (skipped) */
} noted;

struct native_sleepers {
    memo memo[MEMO_SLOTS];
    noted skipped[SAMPLE_MAX];  /* left running this sample */
    size_t nskipped;
    noted pre_stop[SAMPLE_MAX]; /* asleep, stopped this sample: remember their frames */
    size_t npre;
    native_sleepers_stats stats;
};

native_sleepers *native_sleepers_new(void)
{
    return calloc(1, sizeof(native_sleepers));
}

void native_sleepers_free(native_sleepers *z)
{
    if (!z)
        return;
    for (size_t i = 0; i < MEMO_SLOTS; i++)
        free(z->memo[i].frames);
    free(z);
}

void native_sleepers_begin(native_sleepers *z)
{
    z->nskipped = z->npre = 0;
}

/* The thread's remembered place, or NULL. Threads whose hashes collide each keep their own
 * slot: two threads asleep at once must not evict each other's memory on every sample (each
 * would then be read without native frames every other sample). */
static memo *memo_find(native_sleepers *z, pid_t tid)
{
    uint32_t home = hash32((uint64_t)(uint32_t)tid) % MEMO_SLOTS;
    for (uint32_t k = 0; k < MEMO_PROBE; k++) {
        memo *m = &z->memo[(home + k) % MEMO_SLOTS];
        if (m->tid == tid)
            return m;
    }
    return NULL;
}

/* A slot for the thread: its own, a free one, or (all taken by others, threads that may have
 * ended) its home slot. */
static memo *memo_slot(native_sleepers *z, pid_t tid)
{
    memo *m = memo_find(z, tid);
    if (m)
        return m;
    uint32_t home = hash32((uint64_t)(uint32_t)tid) % MEMO_SLOTS;
    for (uint32_t k = 0; k < MEMO_PROBE; k++) {
        m = &z->memo[(home + k) % MEMO_SLOTS];
        if (m->tid == 0)
            return m;
    }
    return &z->memo[home];
}

static const noted *find(const noted *list, size_t n, pid_t tid)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].tid == tid)
            return &list[i];
    return NULL;
}

bool native_sleepers_skip(native_sleepers *z, proc_stat_cache *c, pid_t tid)
{
    char state = proc_thread_state(c, tid);
    if (state != 'S' && state != 'D')
        return false;
    proc_syscall sc;
    if (!proc_thread_syscall_regs(c, tid, &sc) || sc.nr < 0)
        return false;
    const memo *m = memo_find(z, tid);
    uint64_t cpu;
    if (m && m->nr == sc.nr && m->sp == sc.sp && m->pc == sc.pc &&
        z->nskipped < SAMPLE_MAX && proc_thread_cpu_ns(c, tid, &cpu)) {
        z->skipped[z->nskipped++] = (noted){tid, sc.nr, sc.sp, sc.pc, cpu};
        return true;
    }
    if (z->npre < SAMPLE_MAX)
        z->pre_stop[z->npre++] = (noted){tid, sc.nr, sc.sp, sc.pc, 0};
    return false;
}

void native_sleepers_remember(native_sleepers *z, pid_t tid, long syscall, const unwind_frame *f,
                              int n, bool complete)
{
    const noted *p = find(z->pre_stop, z->npre, tid);
    /* Still in the syscall it was seen asleep in before the stop (the unwinder's orig_rax): the
     * frames are those of that sleep. */
    if (!p || n <= 0 || syscall != p->nr)
        return;
    memo *m = memo_slot(z, tid);
    if (m->cap < (uint32_t)n) {
        unwind_frame *nf = realloc(m->frames, (size_t)n * sizeof(*nf));
        if (!nf)
            return;
        m->frames = nf;
        m->cap = (uint32_t)n;
    }
    memcpy(m->frames, f, (size_t)n * sizeof(*f));
    m->tid = tid;
    m->nr = p->nr;
    m->sp = p->sp;
    m->pc = p->pc;
    m->n = (uint32_t)n;
    m->complete = complete;
}

int native_sleepers_frames(native_sleepers *z, proc_stat_cache *c, pid_t tid, unwind_frame *out,
                           int max, bool *complete, long *syscall)
{
    const noted *s = find(z->skipped, z->nskipped, tid);
    const memo *m = memo_find(z, tid);
    uint64_t cpu;
    if (!s || !m)
        return -1;
    if (!proc_thread_cpu_ns(c, tid, &cpu) || cpu != s->cpu_ns) {
        z->stats.woke++;
        return -2;
    }
    int n = (int)m->n < max ? (int)m->n : max;
    memcpy(out, m->frames, (size_t)n * sizeof(*out));
    *complete = m->complete && n == (int)m->n;
    *syscall = m->nr;
    z->stats.reused++;
    return n;
}

native_sleepers_stats native_sleepers_get_stats(const native_sleepers *z)
{
    return z->stats;
}
