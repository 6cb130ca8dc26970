#include "native_stack.h"

#include "clock.h"
#include "grow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int native_stack_open(native_stack **out, target_src src, strtab *st, unwinder_kind kind)
{
    *out = NULL;
    pid_t pid = src.pid;
    int perm = src.core ? 0 : freezer_probe(pid);
    if (perm != 0)
        return perm;
    native_stack *ns = calloc(1, sizeof(*ns));
    if (!ns)
        return ENOMEM;
    ns->pid = pid;
    ns->src = src;
    ns->st = st;
    freezer_init(&ns->fz, pid);
    ns->syms = native_symbols_new(src, st);
    if (!ns->syms) {
        int e = errno ? errno : ENOMEM;
        native_stack_close(ns);
        return e;
    }
    ns->uw = unwinder_new(kind, src, ns->syms);
    ns->sleepers = native_sleepers_new();
    const char *mark = strtab_intern_cstr(st, "<unmerged>");
    if (!ns->uw || !mark || !ns->sleepers) {
        native_stack_close(ns);
        return ENOMEM;
    }
    ns->unmerged_mark = (aprof_frame){mark, "", 0, FRAME_MARK, 0};
    *out = ns;
    return 0;
}

void native_stack_redact_paths(native_stack *ns)
{
    native_symbols_redact_paths(ns->syms);
}

void native_stack_close(native_stack *ns)
{
    if (!ns)
        return;
    freezer_free(&ns->fz);
    native_sleepers_free(ns->sleepers);
    unwinder_free(ns->uw);
    native_symbols_free(ns->syms);
    free(ns->frames);
    free(ns->slots);
    free(ns->mn);
    free(ns->mframes);
    free(ns->mowners);
    free(ns->pyidx);
    free(ns->no_python);
    free(ns);
}

static int reserve_slots(native_stack *ns, uint32_t n)
{
    if (n <= ns->cap_slots)
        return 0;
    uint32_t cap = ns->cap_slots ? ns->cap_slots : 8;
    while (cap < n)
        cap *= 2;
    struct native_slot *s = realloc(ns->slots, cap * sizeof(*s));
    if (!s)
        return -1;
    ns->slots = s;
    ns->cap_slots = cap;
    return 0;
}

/* Room for one more thread's frames (at most NATIVE_MAX_FRAMES) in the shared buffer. */
static unwind_frame *frames_room(native_stack *ns)
{
    if (!grow_array((void **)&ns->frames, &ns->cap_frames, ns->used_frames + NATIVE_MAX_FRAMES,
                    sizeof(*ns->frames), 4 * NATIVE_MAX_FRAMES, SIZE_MAX))
        return NULL;
    return ns->frames + ns->used_frames;
}

static int reserve_merge(native_stack *ns, uint32_t n)
{
    if (n <= ns->cap_merge)
        return 0;
    merge_native *mn = realloc(ns->mn, n * sizeof(*mn));
    if (mn)
        ns->mn = mn;
    aprof_frame *mf = realloc(ns->mframes, n * sizeof(*mf));
    if (mf)
        ns->mframes = mf;
    uint64_t *mo = realloc(ns->mowners, n * sizeof(*mo));
    if (mo)
        ns->mowners = mo;
    int32_t *pi = realloc(ns->pyidx, n * sizeof(*pi));
    if (pi)
        ns->pyidx = pi;
    if (!mn || !mf || !mo || !pi)
        return -1;
    ns->cap_merge = n;
    return 0;
}

/* Symbolise one thread's native frames and merge them with its Python frames, in place. */
static void merge_thread(native_stack *ns, aprof_thread_sample *t, const unwind_frame *uf,
                         uint32_t nf, bool complete)
{
    uint32_t cap = t->cap_frames;
    if (reserve_merge(ns, cap > nf ? cap : nf) != 0)
        return;
    for (uint32_t i = 0; i < nf; i++) {
        const native_sym *sym = native_symbols_lookup(ns->syms, uf[i].pc, !uf[i].exact);
        ns->mn[i].f = (aprof_frame){sym->name, sym->file, sym->line, FRAME_NATIVE, 0};
        ns->mn[i].is_eval = sym->is_eval;
    }
    merge_input in = {
        .native = ns->mn, .nnative = nf, .native_complete = complete,
        .py = t->frames, .py_owners = t->owners, .npy = t->nframes,
        .py_broken = (t->flags & (TSF_TORN | TSF_TRUNCATED)) != 0,
        .unmerged_mark = ns->unmerged_mark,
    };
    merge_output out = {ns->mframes, ns->mowners, cap, 0, ns->pyidx, false};
    merge_result r = native_merge(&in, &out);
    if (r == MERGE_UNMERGED)
        ns->stats.unmerged++;
    else
        ns->stats.merged++;
    if (t->callback_frame >= 0 && (uint32_t)t->callback_frame < t->nframes)
        t->callback_frame = ns->pyidx[t->callback_frame];
    memcpy(t->frames, out.frames, out.n * sizeof(*t->frames));
    memcpy(t->owners, out.owners, out.n * sizeof(*t->owners));
    t->nframes = out.n;
    if (out.truncated)
        t->flags |= TSF_TRUNCATED;
    if (t->nframes)
        t->flags &= ~(uint32_t)TSF_NO_PYTHON;
    ns->stats.thread_stacks++;
}

static int cmp_pid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

/* Threads not to stop: those without Python (unless this is a full stop) and those asleep in a
 * system call whose frames are remembered. */
static bool skip_thread(void *ud, pid_t tid)
{
    native_stack *ns = ud;
    bool skip = !ns->full && ns->n_no_python &&
                bsearch(&tid, ns->no_python, ns->n_no_python, sizeof(pid_t), cmp_pid) != NULL;
    ns->stats.threads_skipped += skip;
    if (!skip && ns->states)
        skip = native_sleepers_skip(ns->sleepers, ns->states, tid);
    return skip;
}

static bool in_sample(const aprof_sample *out, pid_t tid)
{
    for (uint32_t i = 0; i < out->nthreads; i++)
        if (out->threads[i].tid == tid)
            return true;
    return false;
}

/* After the Python walk: let the stopped threads without Python go now, and remember them
 * (after a full stop) so that the next samples leave them running. */
static void release_non_python(native_stack *ns, const aprof_sample *out, bool full)
{
    if (full)
        ns->n_no_python = 0;
    for (size_t i = 0; i < ns->fz.n; i++) {
        pid_t tid = ns->fz.threads[i].tid;
        if (in_sample(out, tid))
            continue;
        freezer_release(&ns->fz, tid);
        if (!full)
            continue;
        if (!grow_array((void **)&ns->no_python, &ns->cap_no_python, ns->n_no_python + 1,
                        sizeof(*ns->no_python), 16, SIZE_MAX))
            continue;
        ns->no_python[ns->n_no_python++] = tid; /* in order: fz.threads is sorted */
    }
}

/* A core: every thread is as still as a stopped one; unwind each from its saved registers. */
static int sample_core(native_stack *ns, aprof_sample *out, native_python_reader read_python,
                       void *ud)
{
    int n = read_python(ud, out);
    if (n < 0)
        return n;
    unwinder_begin_sample(ns->uw);
    ns->used_frames = 0;
    for (uint32_t i = 0; i < out->nthreads; i++) {
        aprof_thread_sample *t = &out->threads[i];
        unwind_info info;
        unwind_frame *room = frames_room(ns);
        int nf = room ? unwinder_unwind(ns->uw, t->tid, room, NATIVE_MAX_FRAMES, &info) : -1;
        if (nf < 0) {
            ns->stats.unwind_failures++;
            continue;
        }
        t->syscall = info.syscall >= 0 ? (int32_t)info.syscall : -1;
        merge_thread(ns, t, room, (uint32_t)nf, info.complete);
    }
    return n;
}

int native_stack_sample(native_stack *ns, aprof_sample *out, native_python_reader read_python,
                        void *ud, proc_stat_cache *states)
{
    ns->stats.samples++;
    if (ns->src.core)
        return sample_core(ns, out, read_python, ud);
    uint64_t now = aprof_now_ns();
    native_symbols_tick(ns->syms, now);
    unwinder_begin_sample(ns->uw);
    bool full = now - ns->last_full_stop_ns >= NATIVE_FULL_STOP_NS;
    if (full)
        ns->last_full_stop_ns = now;
    ns->full = full;
    ns->states = states;
    native_sleepers_begin(ns->sleepers);
    ns->fz.states = states;
    ns->fz.skip = skip_thread;
    ns->fz.skip_ud = ns;
    int nfrozen = freezer_stop(&ns->fz);
    bool frozen = nfrozen >= 0;
    if (!frozen && ns->fz.last_errno != ESRCH) { /* ESRCH: the target is exiting */
        ns->stats.freeze_failures++;
        ns->last_freeze_errno = ns->fz.last_errno;
    }
    int n = read_python(ud, out);
    int read_errno = errno;
    bool have_slots = n >= 0 && reserve_slots(ns, out->nthreads) == 0;
    if (frozen && n >= 0)
        release_non_python(ns, out, full);
    ns->used_frames = 0;
    if (frozen && have_slots) {
        for (uint32_t i = 0; i < out->nthreads; i++) {
            aprof_thread_sample *t = &out->threads[i];
            struct native_slot *s = &ns->slots[i];
            s->n = -2;
            const frozen_thread *ft = freezer_find(&ns->fz, t->tid);
            if (!ft) {
                unwind_frame *room = states ? frames_room(ns) : NULL;
                s->n = room ? native_sleepers_frames(ns->sleepers, states, t->tid, room,
                                                     NATIVE_MAX_FRAMES, &s->complete,
                                                     &s->syscall) : -1;
                if (s->n == -2)
                    s->n = -3; /* left running asleep, woke during the read: Python frames */
                if (s->n < 0) {
                    if (s->n == -1)
                        s->n = -2; /* not stopped: new, or exiting */
                    continue;
                }
                s->first = ns->used_frames;
                ns->used_frames += (size_t)s->n;
                t->state = TS_SLEEPING;
                continue;
            }
            if (states)
                t->state = thread_state_of_letter(ft->state);
            unwind_info info;
            unwind_frame *room = frames_room(ns);
            s->n = room ? unwinder_unwind(ns->uw, t->tid, room, NATIVE_MAX_FRAMES, &info) : -1;
            s->first = ns->used_frames;
            if (s->n > 0)
                ns->used_frames += (size_t)s->n;
            s->complete = room && info.complete;
            s->syscall = room ? info.syscall : -1;
            if (s->n > 0)
                native_sleepers_remember(ns->sleepers, t->tid, info.syscall, room, s->n,
                                         info.complete);
            freezer_release(&ns->fz, t->tid); /* done with this one */
        }
    }
    if (frozen) {
        /* Measured before the detach: a resumed thread may take our CPU right away, and the
         * time we then wait for it is ours, not the target's. A sample that stopped nothing
         * (every thread asleep) stopped the target for no time. */
        uint64_t stopped = nfrozen > 0 ? aprof_now_ns() - ns->fz.first_stop_ns : 0;
        freezer_resume(&ns->fz);
        ns->stats.stopped_ns_total += stopped;
        if (stopped > ns->stats.stopped_ns_max)
            ns->stats.stopped_ns_max = stopped;
    }
    if (n < 0) {
        errno = read_errno;
        return n;
    }
    for (uint32_t i = 0; i < out->nthreads; i++) {
        aprof_thread_sample *t = &out->threads[i];
        if (!frozen || !have_slots || ns->slots[i].n < 0) {
            if (frozen && have_slots && ns->slots[i].n == -2)
                ns->stats.not_stopped++; /* started after the freeze, or exiting */
            else if (frozen && have_slots && ns->slots[i].n == -3)
                ns->stats.sleepers_woke++;
            else if (frozen)
                ns->stats.unwind_failures++;
            continue;
        }
        struct native_slot *s = &ns->slots[i];
        t->syscall = s->syscall >= 0 ? (int32_t)s->syscall : -1;
        merge_thread(ns, t, ns->frames + s->first, (uint32_t)s->n, s->complete);
    }
    return n;
}
