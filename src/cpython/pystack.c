/* Reading every thread's Python stack (pystack.h): setup, the thread list, one thread's read
 * and whether it was consistent, and the GIL holder. Frames are located, walked and decoded in
 * pystack_frames.c; torn reads are confirmed in pystack_torn.c. */
#include "pystack_internal.h"

#include "grow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HEAD_REFRESH_NS 20000000ull /* reread interp->threads.head at least this often */

_Static_assert(sizeof(((ts_memo *)0)->bytes) >= TSTATE_READ, "a memo holds a thread state copy");

static size_t max_offset(const loff *fields, size_t n)
{
    loff hi = 0;
    for (size_t i = 0; i < n; i++)
        if (fields[i] > hi)
            hi = fields[i];
    return (size_t)hi;
}

/* The smallest of the offsets; LAYOUT_ABSENT (negative) when one is absent. */
static loff min_offset(const loff *fields, size_t n)
{
    loff lo = fields[0];
    for (size_t i = 1; i < n; i++)
        if (fields[i] < lo)
            lo = fields[i];
    return lo;
}

int pystack_init(pystack *ps, const pyruntime *rt, mem *m, strtab *st)
{
    memset(ps, 0, sizeof(*ps));
    ps->rt = rt;
    ps->L = &rt->layout;
    ps->m = m;
    ps->st = st;
    ps->pthread_tid_offset = -1;
    ps->cc = codecache_new(st, ps->L, rt->code_type_addr);
    ps->prefetch = calloc(PREFETCH_SLOTS, sizeof(*ps->prefetch));
    ps->prefetch_buf = malloc((size_t)PREFETCH_MAX * FRAME_READ);
    ps->probes = calloc(PREFETCH_SLOTS, sizeof(*ps->probes));
    ps->keys = malloc(APROF_MAX_FRAMES * sizeof(*ps->keys));
    ps->prev_keys = malloc(APROF_MAX_FRAMES * sizeof(*ps->prev_keys));
    ps->addrs = malloc(APROF_MAX_FRAMES * sizeof(*ps->addrs));
    ps->outer = calloc(PREFETCH_SLOTS, sizeof(*ps->outer));
    ps->ts_memo = calloc(PREFETCH_SLOTS, sizeof(*ps->ts_memo));
    /* one syscall per thread when the frame pointer sits in the thread state (3.13+) */
    ps->predict = ps->L->tstate.cframe_current_frame == LAYOUT_ABSENT &&
                  ps->L->tstate.datastack_chunk != LAYOUT_ABSENT;
    ps->vframes = malloc(APROF_MAX_FRAMES * sizeof(*ps->vframes));
    ps->late_buf = malloc((size_t)LATE_MAX * FRAME_READ);
    ps->early_keys = malloc((size_t)PREFETCH_MAX * KEY_SPAN_MAX);
    ps->vowners = malloc(APROF_MAX_FRAMES * sizeof(*ps->vowners));
    ps->vkeys = malloc(APROF_MAX_FRAMES * sizeof(*ps->vkeys));
    ps->tframes = malloc(APROF_MAX_FRAMES * sizeof(*ps->tframes));
    ps->towners = malloc(APROF_MAX_FRAMES * sizeof(*ps->towners));
    ps->unreadable = strtab_intern_cstr(st, "<unreadable>");
    ps->gc_mark = strtab_intern_cstr(st, "<GC>");
    ps->gc_leaf = true;
    if (!ps->cc || !ps->prefetch || !ps->prefetch_buf || !ps->probes || !ps->keys ||
        !ps->prev_keys || !ps->addrs || !ps->outer || !ps->ts_memo || !ps->vframes || !ps->vowners ||
        !ps->late_buf || !ps->early_keys || !ps->vkeys || !ps->tframes || !ps->towners ||
        !ps->unreadable || !ps->gc_mark)
        return -1;
    loff tfields[] = {ps->L->tstate.prev, ps->L->tstate.next, ps->L->tstate.interp,
                      ps->L->tstate.thread_id, ps->L->tstate.native_thread_id,
                      ps->L->tstate.frame, ps->L->tstate.datastack_chunk,
                      ps->L->tstate.datastack_top, ps->L->tstate.datastack_limit};
    ps->tstate_size = max_offset(tfields, sizeof(tfields) / sizeof(tfields[0])) + 8;
    if (ps->tstate_size > TSTATE_READ)
        return -1;
    /* localsplus[0] is `self` of Handle._run: the identity of the running callback. */
    loff ffields[] = {ps->L->frame.previous, ps->L->frame.code, ps->L->frame.instr,
                      ps->L->frame.owner, ps->L->frame.is_entry, ps->L->frame.gen,
                      ps->L->frame.localsplus};
    ps->frame_read = (max_offset(ffields, sizeof(ffields) / sizeof(ffields[0])) + 8 + 7) & ~7u;
    if (ps->frame_read > FRAME_READ)
        return -1;
    /* A frame's caller, code and instruction: copied early for the prefetched frames of a
     * data-stack layout (pystack_frames.c). */
    loff kfields[] = {ps->L->frame.previous, ps->L->frame.code, ps->L->frame.instr};
    loff klo = min_offset(kfields, sizeof(kfields) / sizeof(kfields[0]));
    size_t khi = max_offset(kfields, sizeof(kfields) / sizeof(kfields[0])) + 8;
    if (klo >= 0 && khi - (size_t)klo <= KEY_SPAN_MAX &&
        ps->L->tstate.datastack_chunk != LAYOUT_ABSENT) { /* (no early copies without one) */
        ps->key_lo = (uint32_t)klo;
        ps->key_len = (uint32_t)(khi - (size_t)klo);
    }
    return 0;
}

void pystack_free(pystack *ps)
{
    codecache_free(ps->cc);
    free(ps->window);
    free(ps->window1);
    free(ps->tframes);
    free(ps->towners);
    ps->window1 = NULL;
    ps->tframes = NULL;
    ps->towners = NULL;
    free(ps->tid_keys);
    free(ps->tid_drop);
    ps->tid_keys = NULL;
    ps->tid_drop = NULL;
    free(ps->prefetch);
    free(ps->prefetch_buf);
    free(ps->probes);
    free(ps->keys);
    free(ps->prev_keys);
    free(ps->addrs);
    free(ps->outer);
    free(ps->ts_memo);
    ps->ts_memo = NULL;
    free(ps->vframes);
    free(ps->vkeys);
    ps->vkeys = NULL;
    free(ps->late_buf);
    ps->late_buf = NULL;
    free(ps->early_keys);
    ps->early_keys = NULL;
    free(ps->vowners);
    ps->vframes = NULL;
    ps->vowners = NULL;
    ps->keys = ps->prev_keys = ps->addrs = NULL;
    ps->outer = NULL;
    ps->probes = NULL;
    ps->prefetch = NULL;
    ps->prefetch_buf = NULL;
    ps->cc = NULL;
    ps->window = NULL;
}

/* 3.10 has no native_thread_id: the kernel tid lives in glibc's struct pthread, whose address is
 * the pthread_t in tstate->thread_id. Find its offset once, using the main thread, whose tid is
 * the pid. */
static void calibrate_pthread_tid(pystack *ps)
{
    if (ps->pthread_tid_offset >= 0 || !ps->main_thread_id)
        return;
    uint8_t buf[2048];
    if (mem_read(ps->m, ps->main_thread_id, buf, sizeof(buf)) != 0)
        return;
    int32_t pid = (int32_t)ps->rt->pid;
    for (size_t off = 16; off + 4 <= sizeof(buf); off += 4) {
        int32_t v;
        memcpy(&v, buf + off, 4);
        if (v == pid) {
            ps->pthread_tid_offset = (int)off;
            return;
        }
    }
}

static pid_t tid_of(pystack *ps, const uint8_t *ts, uint64_t thread_id)
{
    const py_layout *L = ps->L;
    if (L->tstate.native_thread_id != LAYOUT_ABSENT)
        return (pid_t)rd64(ts, L->tstate.native_thread_id);
    calibrate_pthread_tid(ps);
    if (ps->pthread_tid_offset < 0 || !mem_ptr_ok(thread_id, false))
        return 0;
    int32_t tid;
    if (mem_read(ps->m, thread_id + (uint64_t)ps->pthread_tid_offset, &tid, 4) != 0)
        return 0;
    return tid;
}

/* interp->threads.head, cached: new threads are inserted at the head, which makes the cached
 * head's `prev` non-null (the walk checks), and the cache is refreshed every HEAD_REFRESH_NS in
 * case the head thread exited. */
static int threads_head(pystack *ps, uint64_t now_ns, bool force, uint64_t *head)
{
    if (!force && ps->head && now_ns - ps->head_read_ns < HEAD_REFRESH_NS) {
        *head = ps->head;
        return 0;
    }
    if (mem_read_direct(ps->m, ps->interp + (uint64_t)ps->L->interp.threads_head, head, 8) != 8)
        return -1;
    ps->head = *head;
    ps->head_read_ns = now_ns;
    return 0;
}

static int init_interp(pystack *ps)
{
    const py_layout *L = ps->L;
    ps->interp = pyruntime_first_interp(ps->rt, ps->m);
    if (!ps->interp)
        return -1;
    uint64_t mt = 0;
    if (L->runtime.main_thread != LAYOUT_ABSENT)
        mem_read_u64(ps->m, ps->rt->runtime_addr + (uint64_t)L->runtime.main_thread, &mt);
    ps->main_thread_id = mt;
    ps->head = 0;
    ps->gil = 0;
    ps->gc_flag = L->interp.gc != LAYOUT_ABSENT && L->gc.collecting != LAYOUT_ABSENT
                      ? ps->interp + (uint64_t)L->interp.gc + (uint64_t)L->gc.collecting
                      : 0;
    return 0;
}


/* Was the _PyCFrame the frame pointer was read through still the thread's current one at the
 * end of the snapshot? Each C-to-Python call pushes a _PyCFrame on the C stack. A shallower one
 * at the end means ours was popped: what it pointed to may be gone. A deeper one means a nested
 * evaluation began meanwhile (a task step, called from C): ours still names its caller frame,
 * but the thread runs frames above it that this read did not see, so taking the stack as
 * complete would credit the caller (Handle._run) with its callees' time. */
static bool cframe_still_live(const window *w)
{
    if (!w->cframe)
        return true;
    return w->cframe_reread && w->cframe_again == w->cframe;
}

/* Weaker: was the frame chain read through that _PyCFrame real, if maybe not complete (ours is
 * the current one, or a deeper one was pushed above it)? */
#define CFRAME_SPAN (8ull << 20) /* nested evaluations lie within one thread's C stack */
static bool cframe_not_popped(const window *w)
{
    if (!w->cframe)
        return true;
    return w->cframe_reread && w->cframe_again <= w->cframe &&
           w->cframe - w->cframe_again < CFRAME_SPAN;
}

/* 3.11/3.12: a _PyCFrame popped while the snapshot ran, and pushed again at the same address
 * by the next call from C (the next callback) before its end, passes cframe_still_live; the
 * frame pointer read through it in between is dead memory, and so can be the frames it leads
 * to. An innermost frame in the data-stack chunk must lie below the chunk's top as read after
 * the snapshot: frames above it are not on the stack. */
static bool innermost_below_top(const window *w, uint64_t frame)
{
    if (!w->top_again || !w->len || frame < w->base || frame >= w->base + w->len)
        return true;
    return frame < w->top_again;
}

static void reverse(aprof_thread_sample *t, uint64_t *keys, uint64_t *addrs)
{
    uint32_t n = t->nframes;
    for (uint32_t i = 0; i < n / 2; i++) {
        aprof_frame f = t->frames[i];
        t->frames[i] = t->frames[n - 1 - i];
        t->frames[n - 1 - i] = f;
        uint64_t o = t->owners[i];
        t->owners[i] = t->owners[n - 1 - i];
        t->owners[n - 1 - i] = o;
        uint64_t k = keys[i];
        keys[i] = keys[n - 1 - i];
        keys[n - 1 - i] = k;
        k = addrs[i];
        addrs[i] = addrs[n - 1 - i];
        addrs[n - 1 - i] = k;
    }
}

/* Who the thread is, from its thread state; its run state is read right before its stack, so
 * that both describe the sampled moment. */
static void set_identity(pystack *ps, aprof_thread_sample *t, const uint8_t *ts)
{
    uint64_t thread_id = rd64(ts, ps->L->tstate.thread_id);
    t->py_thread_id = thread_id;
    t->tid = tid_of(ps, ts, thread_id);
    t->is_main = ps->main_thread_id && thread_id == ps->main_thread_id;
    t->name = ps->names.lookup ? ps->names.lookup(ps->names.ud, thread_id, t->tid, t->is_main)
                               : NULL;
    if (ps->states.read && !ps->in_second_read && !ps->in_reread)
        t->state = thread_state_of_letter(ps->states.read(ps->states.ud, t->tid));
}

/* Read one thread's stack as a new thread of out. ts: its thread state, copied just before; or,
 * with `predicted`, as the last sample copied it: the thread state is then copied again in the
 * snapshot's own syscall (3.13+) and ts gets that fresh copy. Returns 0, -1 when out of memory,
 * or PYSTACK_NO_TSTATE (predicted only) when the thread state could not be read. */
int pystack_sample_thread(pystack *ps, uint64_t tstate, uint8_t *ts, bool predicted,
                          aprof_sample *out)
{
    const py_layout *L = ps->L;
    aprof_thread_sample *t = sample_add_thread(out, APROF_MAX_FRAMES);
    if (!t)
        return -1;
    ps->stats.threads_read++;
    uint64_t where = 0, frame = 0;
    window w;
    ps->callback_frame_addr = 0;
    ps->run_once_at = -1;
    ps->keys_usable = false;
    if (!ps->in_second_read) {
        ps->c1.valid = false;
        ps->ntiles = 0;
    }
    ps->verified_in_chunk = 0;
    set_identity(ps, t, ts);
    int snap;
    if (predicted) {
        uint8_t fresh[TSTATE_READ];
        snap = pystack_snapshot_frames(ps, ts, tstate, fresh, &where, &frame, &w);
        if (snap == SNAPSHOT_NO_TSTATE) {
            out->nthreads--;
            return PYSTACK_NO_TSTATE;
        }
        memcpy(ts, fresh, ps->tstate_size);
        if (snap == SNAPSHOT_MISPREDICTED) {
            ps->stats.mispredicted++;
            snap = pystack_snapshot_frames(ps, ts, tstate, NULL, &where, &frame, &w);
        }
    } else {
        snap = pystack_snapshot_frames(ps, ts, tstate, NULL, &where, &frame, &w);
    }
    if (predicted && rd64(ts, L->tstate.thread_id) != t->py_thread_id)
        set_identity(ps, t, ts); /* the thread state now belongs to another thread */
    if (snap != 0) {
        t->flags |= TSF_TORN;
    } else {
        loop_marks lm = {.handle_index = -1, .entry_index = -1, .run_once_index = -1};
        t->nframes = pystack_walk_frames(ps, frame, &w, t, &lm);
        reverse(t, ps->keys, ps->addrs);
        ps->run_once_at = lm.run_once_index >= 0 && (uint32_t)lm.run_once_index < t->nframes
                              ? (int32_t)(t->nframes - 1 - (uint32_t)lm.run_once_index)
                              : -1;
        ps->callback_frame_addr = pystack_apply_loop_marks(t, &lm);
        /* Keys may be compared with another read's when the walk itself found a well-formed
         * chain through a _PyCFrame not popped meanwhile: each frame was real when copied. */
        bool below_top = innermost_below_top(&w, frame);
        ps->keys_usable = !(t->flags & TSF_TORN) && cframe_not_popped(&w) && below_top;
        /* The stack is trustworthy only if the innermost frame did not move while the one
         * snapshot syscall copied the frames. */
        bool consistent = w.again_ok && w.again == frame && cframe_still_live(&w) && below_top;
        /* (a thread state with no frame at all, a thread that has not run Python yet, has no
         * code to check) */
        if (consistent && frame && w.code_again_addr == frame) {
            /* the code the innermost frame runs and its caller, as copied by the snapshot, must
             * still be them */
            uint8_t fb[FRAME_READ];
            if (pystack_frame_bytes(ps, &w, frame, fb, ps->frame_read) < 0 ||
                rd64(fb, L->frame.code) != rd64(w.code_again_buf, L->frame.code - w.code_again_lo) ||
                rd64(fb, L->frame.previous) !=
                    rd64(w.code_again_buf, L->frame.previous - w.code_again_lo))
                consistent = false;
        }
        /* Frames read after the snapshot (a coroutine's frame lives in its generator object,
         * 3.10 frame objects anywhere on the heap) show the thread as it is later: a coroutine
         * frame may have returned from the callees the snapshot still shows above it and moved
         * on to a newer line, and 3.10 recycles frame objects for other calls. The innermost
         * frame must still be the same one after the walk. */
        if (!w.all_in_snapshot && consistent)
            consistent = pystack_unchanged_since_walk(ps, &w, where, frame, t);
        if (!consistent)
            t->flags |= TSF_TORN;
        outer_memo *om = &ps->outer[(tstate >> 6) % PREFETCH_SLOTS];
        if (consistent)
            pystack_remember_outer(ps, om, tstate, t);
        else if (!ps->in_second_read)
            ps->verified_in_chunk = pystack_verify_outer(ps, om, tstate, &w);
        if (ps->in_second_read)
            ps->ntiles = pystack_tiles_verify(ps, &w);
        else if (!consistent)
            pystack_tiles_keep_first(ps, &w, frame);
        *w.pf = w.next; /* last: until here w.pf describes what prefetch_buf holds */
    }
    if (t->nframes == 0 && !(t->flags & TSF_TORN))
        t->flags |= TSF_NO_PYTHON;
    if (t->flags & TSF_TORN)
        ps->stats.torn++;
    return 0;
}

/* The thread state holding the GIL, 0 when it is free, or 1 when it cannot be known. */
static uint64_t gil_holder(pystack *ps)
{
    const py_layout *L = ps->L;
    uint64_t gil, holder_off, locked_off;
    if (L->runtime.gil_last_holder != LAYOUT_ABSENT) {
        gil = ps->rt->runtime_addr;
        holder_off = (uint64_t)L->runtime.gil_last_holder;
        locked_off = (uint64_t)L->runtime.gil_locked;
    } else if (L->interp.gil != LAYOUT_ABSENT) {
        if (!ps->gil && mem_read_u64(ps->m, ps->interp + (uint64_t)L->interp.gil, &ps->gil) != 0)
            return 1;
        gil = ps->gil;
        holder_off = (uint64_t)L->interp.gil_last_holder;
        locked_off = (uint64_t)L->interp.gil_locked;
    } else {
        return 1;
    }
    uint64_t holder;
    int32_t locked;
    if (!mem_ptr_ok(gil, true) || mem_read_u64(ps->m, gil + holder_off, &holder) != 0 ||
        mem_read(ps->m, gil + locked_off, &locked, 4) != 0)
        return 1;
    return locked ? holder : 0;
}

/* A thread read while the interpreter's collecting flag was set ran the collection if it held
 * the GIL (the collector runs with it held). Its stack, consistent as a collecting thread's
 * Python frames do not move, then ends in "<GC>". `holder`: the GIL holder of this sample, read
 * here on first need. */
static void mark_gc(pystack *ps, aprof_thread_sample *t, uint64_t tstate, uint64_t *holder,
                    bool *holder_read)
{
    if (t->flags & TSF_TORN)
        return;
    if (!*holder_read) {
        *holder = gil_holder(ps);
        *holder_read = true;
    }
    if (*holder != tstate)
        return; /* another thread collects (or who holds the GIL cannot be read) */
    t->flags |= TSF_GC;
    if (ps->gc_leaf && t->nframes < APROF_MAX_FRAMES)
        t->frames[t->nframes++] = (aprof_frame){ps->gc_mark, "", 0, FRAME_MARK, 0, 0};
}

/* Is the thread state in ts the first of its interpreter's list? */
static bool is_head(const pystack *ps, const uint8_t *ts)
{
    return rd64(ts, ps->L->tstate.prev) == 0 && rd64(ts, ps->L->tstate.interp) == ps->interp;
}

/* Of two reads that claim one OS thread, is `a` the better witness of it? A read with frames
 * beats one without (a thread state that has not run yet), then a consistent stack beats a
 * torn one, then a loop thread's (or a probed step's) beats none, then more frames. */
static bool better_witness(const aprof_thread_sample *a, const aprof_thread_sample *b)
{
    if ((a->nframes > 0) != (b->nframes > 0))
        return a->nframes > 0;
    bool ta = (a->flags & TSF_TORN) != 0, tb = (b->flags & TSF_TORN) != 0;
    if (ta != tb)
        return !ta;
    bool la = a->loop != LOOP_NONE, lb = b->loop != LOOP_NONE;
    if (la != lb)
        return la;
    return a->nframes > b->nframes;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* 3.10 and 3.11 create a new thread's state in the thread that starts it, with that thread's
 * ids; the new thread sets its own when it runs. Until then two thread states name one OS
 * thread, and the new one (no frames yet, read as torn) would be a second sample of the
 * starting thread: an <unreadable> one, twice the thread's weight, and a loop thread seen busy
 * with something unknown at the moment a callback starts a thread. Of the entries
 * [first, nthreads) that share a tid, the better witness is kept (the order of the others is
 * unchanged). Returns how many were dropped, -1 when out of memory (nothing dropped). */
static int drop_shared_tids(pystack *ps, aprof_sample *out, uint32_t first)
{
    uint32_t n = out->nthreads - first;
    if (n < 2)
        return 0;
    if (!grow_array((void **)&ps->tid_keys, &ps->cap_tid_keys, n, sizeof(*ps->tid_keys), 64,
                    PYSTACK_MAX_THREADS) ||
        !grow_array((void **)&ps->tid_drop, &ps->cap_tid_drop, n, 1, 64, PYSTACK_MAX_THREADS))
        return -1;
    for (uint32_t i = 0; i < n; i++)
        ps->tid_keys[i] = (uint64_t)(uint32_t)out->threads[first + i].tid << 32 | i;
    qsort(ps->tid_keys, n, sizeof(*ps->tid_keys), cmp_u64);
    memset(ps->tid_drop, 0, n);
    bool any = false;
    for (uint32_t i = 1; i < n; i++) {
        uint64_t a = ps->tid_keys[i - 1], b = ps->tid_keys[i];
        if (a >> 32 != b >> 32 || (int32_t)(a >> 32) <= 0)
            continue; /* (no tid known: nothing to compare) */
        uint32_t ia = (uint32_t)a, ib = (uint32_t)b;
        /* the loser is dropped and the winner carries on to the next comparison */
        if (better_witness(&out->threads[first + ib], &out->threads[first + ia])) {
            ps->tid_drop[ia] = 1;
        } else {
            ps->tid_drop[ib] = 1;
            ps->tid_keys[i] = a;
        }
        any = true;
    }
    if (!any)
        return 0;
    uint32_t w = first;
    for (uint32_t i = first; i < out->nthreads; i++) {
        if (ps->tid_drop[i - first])
            continue; /* its slot keeps its frame arrays, past the end */
        if (w != i) {
            aprof_thread_sample tmp = out->threads[w];
            out->threads[w] = out->threads[i];
            out->threads[i] = tmp;
        }
        w++;
    }
    int dropped = (int)(out->nthreads - w);
    out->nthreads = w;
    ps->stats.shared_tid += (uint64_t)dropped;
    return dropped;
}

int pystack_sample(pystack *ps, aprof_sample *out, uint64_t now_ns)
{
    uint32_t first = out->nthreads;
    const py_layout *L = ps->L;
    mem_begin_sample(ps->m);
    ps->now_ns = now_ns;
    if (!ps->interp && init_interp(ps) != 0)
        return -1;
    uint64_t holder = ps->want_gil ? gil_holder(ps) : 1;
    uint64_t tstate;
    if (threads_head(ps, now_ns, false, &tstate) != 0) {
        ps->interp = 0; /* reread next time */
        return -1;
    }
    size_t tsize = ps->tstate_size;
    int count = 0;
    bool head_checked = false;
    uint64_t gc_holder = holder;
    bool gc_holder_read = holder != 1;
    for (int guard = 0; tstate && guard < PYSTACK_MAX_THREADS; guard++) {
        uint8_t ts[TSTATE_READ];
        if (!mem_ptr_ok(tstate, true))
            break;
        ps->gc_seen = false;
        /* 3.13+: the thread state as the last sample copied it picks what to copy, and is
         * copied again in the same syscall as the frames (one syscall per thread, not two) */
        ts_memo *tm = &ps->ts_memo[(tstate >> 6) % PREFETCH_SLOTS];
        bool predicted = ps->predict && tm->tstate == tstate;
        if (predicted)
            memcpy(ts, tm->bytes, tsize);
        else if (mem_read_direct(ps->m, tstate, ts, tsize) != (ssize_t)tsize)
            break; /* the list changed under us; what we have is still good */
        if (!predicted && count == 0 && !head_checked && !is_head(ps, ts)) {
            /* Not the head any more: a thread was created, or the cached head exited. */
            head_checked = true;
            if (threads_head(ps, now_ns, true, &tstate) != 0)
                return -1;
            continue;
        }
        int rc = pystack_sample_thread(ps, tstate, ts, predicted, out);
        if (rc == PYSTACK_NO_TSTATE) {
            tm->tstate = 0;
            break;
        }
        if (rc != 0)
            return -1;
        tm->tstate = tstate;
        memcpy(tm->bytes, ts, tsize);
        if (predicted && count == 0 && !head_checked && !is_head(ps, ts)) {
            out->nthreads--; /* read from a cached head that is not the head any more */
            head_checked = true;
            if (threads_head(ps, now_ns, true, &tstate) != 0)
                return -1;
            continue;
        }
        head_checked = true;
        if (out->threads[out->nthreads - 1].tid <= 0 &&
            (L->tstate.native_thread_id != LAYOUT_ABSENT || ps->pthread_tid_offset >= 0)) {
            /* A thread state not bound to an OS thread yet (being created) or any more: there
             * is no thread to attribute it to. */
            out->nthreads--;
            tstate = rd64(ts, L->tstate.next);
            continue;
        }
        aprof_thread_sample *t = &out->threads[out->nthreads - 1];
        if (t->flags & TSF_TORN)
            t = pystack_read_stopped(ps, tstate, tsize, out);
        if (t && (t->flags & TSF_TORN) && !(t->flags & TSF_PARTIAL))
            t = pystack_confirm_torn(ps, tstate, tsize, out);
        if (!t)
            return -1;
        if (ps->gc_seen)
            mark_gc(ps, t, tstate, &gc_holder, &gc_holder_read);
        pystack_update_step_probe(ps, tstate, t);
        if (holder != 1)
            out->threads[out->nthreads - 1].holds_gil = holder == tstate;
        count++;
        tstate = rd64(ts, L->tstate.next);
    }
    int dropped = drop_shared_tids(ps, out, first);
    return dropped < 0 ? -1 : count - dropped;
}
