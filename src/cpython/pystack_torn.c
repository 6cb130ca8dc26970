/* Torn reads of a thread's stack: the outer frames remembered from its last consistent read,
 * those verified in a torn read's own copy of the data stack, the confirming second read and
 * what is kept of the stack, and the task-step probe of a torn loop thread. */
#include "pystack_internal.h"
#include "proc.h"

#include <string.h>

/* A consistent stack: remember its outer frames that lie in the data-stack chunk (3.11+). */
void pystack_remember_outer(pystack *ps, outer_memo *om, uint64_t tstate,
                            const aprof_thread_sample *t)
{
    om->tstate = tstate;
    om->n = 0;
    for (uint32_t i = 0; i < t->nframes && i < OUTER_MAX; i++) {
        om->addr[i] = ps->addrs[i];
        om->key[i] = ps->keys[i];
        om->frame[i] = t->frames[i];
        om->owner[i] = t->owners[i];
        om->n = i + 1;
    }
}

/* This read's copy of the frame at addr: in the data-stack chunk below `end`, or among the
 * frames prefetched in the snapshot (3.10 frame objects, coroutine frames); NULL if neither. A
 * frame outside the chunk is only ever compared whole with a remembered one (key), which has a
 * caller and stands at a call: a returned frame keeps its memory but not that state. */
static const uint8_t *copy_of(const pystack *ps, const window *w, uint64_t addr, uint64_t end)
{
    if (w->len && addr >= w->base && addr + ps->frame_read <= end)
        return ps->window + (addr - w->base);
    if (w->len && addr >= w->base && addr < w->base + w->len)
        return NULL; /* in the chunk, but above its top: not on the stack */
    for (uint32_t i = 0; i < w->pf_loaded; i++)
        if (w->pf->addr[i] == addr)
            return ps->prefetch_buf + (size_t)i * FRAME_READ;
    return NULL;
}

/* A torn read: its verified outer frames, into ps->vframes / ps->vowners.
 * Every frame below the thread's datastack_top in its current chunk is on its stack, so a frame
 * that lies below both readings of the top (before and after the snapshot) was on the stack
 * when it was copied. These are:
 *  - the remembered outer frames of the last consistent read still found identical (same
 *    caller, code, instruction) in this read's copy of the chunk;
 *  - then, upward from the last of them, each frame of the copy whose `previous` names the one
 *    before (a Python-to-Python call) and that decodes to a real code object and instruction.
 * It stops at the first frame whose caller is not in the chunk (a coroutine's frame lives in
 * its generator, and 3.12+ C-stack shims): what runs above is not guessed. */
uint32_t pystack_verify_outer(pystack *ps, const outer_memo *om, uint64_t tstate,
                              const window *w)
{
    const py_layout *L = ps->L;
    if (om->tstate != tstate)
        return 0;
    uint64_t end = 0; /* chunk frames must end below this */
    if (w->len && w->top && w->top_again) {
        uint64_t top = w->top < w->top_again ? w->top : w->top_again;
        end = w->base + w->len < top ? w->base + w->len : top;
    }
    uint32_t n = 0;
    while (n < om->n && n < APROF_MAX_FRAMES) {
        const uint8_t *fb = copy_of(ps, w, om->addr[n], end);
        if (!fb || pystack_frame_key_of_bytes(ps, om->addr[n], fb) != om->key[n])
            break;
        ps->vframes[n] = om->frame[n];
        ps->vowners[n] = om->owner[n];
        ps->vkeys[n] = om->key[n];
        n++;
    }
    ps->vmemo = n;
    if (n == 0)
        return 0;
    uint64_t cur = om->addr[n - 1];
    if (cur < w->base || cur >= end)
        return n; /* the last one is not in the chunk: nothing to scan above it */
    uint64_t poff = (uint64_t)L->frame.previous;
    /* a callee frame starts after its caller's header: scan 8-byte slots above it */
    for (uint64_t c = cur + 8; n < APROF_MAX_FRAMES && c + ps->frame_read <= end; c += 8) {
        if (rd64(ps->window + (c - w->base), (loff)poff) != cur)
            continue;
        const uint8_t *fb = ps->window + (c - w->base);
        uint64_t prev, owner_obj;
        uint8_t role;
        aprof_frame f;
        int owner = L->frame.owner != LAYOUT_ABSENT ? fb[L->frame.owner] : OWNER_THREAD;
        if (owner != OWNER_THREAD)
            break;
        int32_t co_flags;
        decode_result r = pystack_decode_frame(ps, fb, c, &co_flags, &f, &prev, &owner_obj, &role);
        if (r == DECODE_BAD)
            break;
        if (r == DECODE_OK) {
            ps->vframes[n] = f;
            ps->vkeys[n] = pystack_frame_key_of_bytes(ps, c, fb);
            ps->vowners[n++] = owner_obj;
        }
        cur = c;
    }
    return n;
}

/* A thread whose first read was torn keeps the outer frames its two reads agree on (same frame
 * keys, compared from the outermost), or those verified in the first read's copy of the data
 * stack if more, then an <unreadable> mark. A frame found identical by two reads a few
 * microseconds apart, with all its callers, was on the stack then; what changed between them
 * (the innermost calls) is not guessed. */
static void keep_verified_part(pystack *ps, uint64_t tstate, aprof_thread_sample *t,
                               bool comparable, bool second_usable, bool use_tiles)
{
    uint32_t m = 0;
    if (comparable)
        while (m < t->nframes && m < ps->prev_nkeys && ps->keys[m] == ps->prev_keys[m])
            m++;
    /* Two reads can agree on dead memory too (a chain of frames that have returned, unchanged
     * since): what they agree on counts only from the thread's own outermost frame, as its last
     * consistent stack had it. */
    const outer_memo *om = &ps->outer[(tstate >> 6) % PREFETCH_SLOTS];
    bool have_memo = om->tstate == tstate && om->n > 0;
    bool anchored = !have_memo || (ps->prev_nkeys > 0 && ps->prev_keys[0] == om->key[0]);
    if (!anchored)
        m = 0;
    if (comparable && anchored && m == t->nframes && m == ps->prev_nkeys &&
        !(t->flags & TSF_TRUNCATED)) {
        /* Both reads found the very same stack, innermost frame and instruction included: it
         * is the stack of that moment. */
        t->flags &= ~(uint32_t)TSF_TORN;
        if (t->nframes == 0)
            t->flags |= TSF_NO_PYTHON;
        ps->stats.confirmed++;
        return;
    }
    /* The frames verified in the first read's copy of the chunk may reach further (the walk
     * itself can break inside a task step that ended). Those found by the upward scan were
     * seen once, in one copy that a call may have overwritten half-way: they stand only as far
     * as the second read found them too (same depth, same key). */
    uint32_t v = ps->verified_in_chunk;
    if (v > ps->vmemo) {
        uint32_t j = ps->vmemo;
        if (second_usable)
            while (j < v && j < t->nframes && ps->keys[j] == ps->vkeys[j])
                j++;
        v = j;
    }
    bool complete = false;
    if (v > m) {
        m = v;
        memcpy(t->frames, ps->vframes, m * sizeof(*t->frames));
        memcpy(t->owners, ps->vowners, m * sizeof(*t->owners));
    }
    /* The tiles of the data stack both copies agree on (pystack_tiles.c) usually reach much
     * further: through the task step's coroutines, up to the calls that change too fast. */
    if (use_tiles && ps->ntiles > m) {
        m = ps->ntiles < t->cap_frames ? ps->ntiles : t->cap_frames;
        memcpy(t->frames, ps->tframes, m * sizeof(*t->frames));
        memcpy(t->owners, ps->towners, m * sizeof(*t->owners));
        complete = ps->tiles_leaf;
    }
    if (m >= t->cap_frames)
        m = t->cap_frames - 1;
    t->nframes = m;
    if (!complete) {
        t->frames[m] = (aprof_frame){ps->unreadable, "", 0, FRAME_MARK, 0};
        t->owners[m] = 0;
        t->nframes = m + 1;
    }
    t->flags = (t->flags & ~(uint32_t)(TSF_NO_PYTHON | TSF_TRUNCATED | TSF_MARKED)) | TSF_TORN |
               TSF_PARTIAL | (complete ? 0u : (uint32_t)TSF_MARKED);
    t->loop_idle = 0;
    t->callback_frame = -1;
    t->callback_id = 0;
    ps->stats.partial++;
}

/* The first read of a thread's stack was torn. The sample stands for that moment, so a second
 * read, a few microseconds later, is not taken in its place: retrying until a read succeeds
 * would prefer the moments when the thread is easy to read (waiting, not running), and credit
 * busy time to idle code. The second read only confirms: the outer frames both reads found
 * identical were on the stack at the sampled moment. The outer frames verified in the first
 * read's own copy of the data stack (pystack_verify_outer) may reach further. Returns the thread's
 * sample (flagged TSF_TORN | TSF_PARTIAL), NULL when out of memory. */
aprof_thread_sample *pystack_confirm_torn(pystack *ps, uint64_t tstate, size_t tsize,
                                          aprof_sample *out)
{
    aprof_thread_sample *t = &out->threads[out->nthreads - 1];
    bool first_usable = ps->keys_usable;
    ps->confirm_cb = 0;
    /* A torn read of a thread state that names no thread of the target now (freed since the
     * thread list was read: a stale list entry, or a thread that ended meanwhile) is not kept:
     * its identity may be garbage. It is dropped, and counted so. */
    if (!proc_thread_exists(ps->rt->pid, t->tid)) {
        t->flags = (t->flags & ~(uint32_t)TSF_PARTIAL) | TSF_TORN;
        t->nframes = 0;
        return t;
    }
    /* An event loop whose first read began in its selector was waiting at the sampled moment:
     * it woke while read. Its selector frame, read first, stays the leaf (below). */
    bool first_idle = t->loop != LOOP_NONE && t->loop_idle && t->nframes > 0;
    aprof_frame idle_leaf = first_idle ? t->frames[t->nframes - 1] : (aprof_frame){0};
    uint8_t idle_loop = t->loop;
    uint8_t ts2[TSTATE_READ];
    if (mem_read_direct(ps->m, tstate, ts2, tsize) == (ssize_t)tsize) {
        ps->prev_nkeys = t->nframes;
        memcpy(ps->prev_keys, ps->keys, t->nframes * sizeof(*ps->keys));
        uint32_t verified = ps->verified_in_chunk; /* vframes stay the first read's */
        thread_identity id = thread_identity_of(t); /* ... and so does the identity */
        out->nthreads--;
        ps->stats.retried++;
        pystack_tiles_discover(ps, tstate);
        ps->in_second_read = true;
        int rc = pystack_sample_thread(ps, tstate, ts2, false, out);
        ps->in_second_read = false;
        ps->verified_in_chunk = verified;
        if (rc != 0)
            return NULL;
        t = &out->threads[out->nthreads - 1];
        thread_identity_restore(t, &id);
        /* A readable second read of a busy loop names the callback running a few microseconds
         * after the sampled moment: the stall detector may use that
         * (pystack_update_step_probe), the profile may not. An idle one says nothing: the first
         * read found the loop busy. */
        if (!(t->flags & TSF_TORN) && t->loop != LOOP_NONE && !t->loop_idle && t->callback_id) {
            ps->confirm_cb = t->callback_id;
            ps->confirm_loop = t->loop;
        }
    } else {
        first_usable = false;
        ps->keys_usable = false; /* no second read: nothing to compare with */
    }
    bool second_usable = ps->keys_usable;
    keep_verified_part(ps, tstate, t, first_usable && second_usable, second_usable, !first_idle);
    if (first_idle && (t->flags & TSF_PARTIAL) && t->nframes < t->cap_frames) {
        /* verified outer frames, <unreadable>, then the selector: idle at the sampled moment */
        t->owners[t->nframes] = 0;
        t->frames[t->nframes++] = idle_leaf;
        t->loop = idle_loop;
        t->loop_idle = 1;
    }
    return t;
}

/* A torn loop-thread sample whose second read was readable and busy: the callback that read
 * found running stands for the one running now (TSF_STEP_PROBED, see stall_detector_feed). */
static void probe_from_second_read(pystack *ps, aprof_thread_sample *t)
{
    if (!(t->flags & TSF_PARTIAL) || !ps->confirm_cb || t->loop_idle)
        return;
    t->flags |= TSF_STEP_PROBED;
    t->loop = ps->confirm_loop;
    t->loop_idle = 0;
    t->callback_frame = -1;
    t->callback_id = ps->confirm_cb;
}

/* After the final try of a thread: a consistent loop-thread sample names the task step to
 * probe later (its coroutine's state byte); a torn one is given what that probe says. */
void pystack_update_step_probe(pystack *ps, uint64_t tstate, aprof_thread_sample *t)
{
    const py_layout *L = ps->L;
    step_probe *sp = &ps->probes[(tstate >> 6) % PREFETCH_SLOTS];
    if (!(t->flags & TSF_TORN)) {
        sp->tstate = tstate;
        sp->state_addr = 0;
        int32_t cb = t->callback_frame;
        if (t->loop == LOOP_NONE || !t->callback_id || cb < 0 || (uint32_t)cb >= t->nframes ||
            !t->owners || !t->owners[cb])
            return;
        if (L->gen.frame_state != LAYOUT_ABSENT) {
            sp->state_addr = t->owners[cb] + (uint64_t)L->gen.frame_state;
        } else if (L->frame.state != LAYOUT_ABSENT && ps->callback_frame_addr) {
            /* 3.10: the state lives in the coroutine's frame object */
            sp->state_addr = ps->callback_frame_addr + (uint64_t)L->frame.state;
        }
        sp->callback_id = t->callback_id;
        sp->loop = t->loop;
        return;
    }
    if (t->loop_idle)
        return; /* waiting in its selector when the read began (pystack_confirm_torn) */
    if (sp->tstate != tstate || !sp->state_addr) {
        probe_from_second_read(ps, t);
        return;
    }
    int8_t state;
    if (mem_read_direct(ps->m, sp->state_addr, &state, 1) != 1) {
        sp->state_addr = 0;
        probe_from_second_read(ps, t);
        return;
    }
    t->flags |= TSF_STEP_PROBED;
    t->loop = sp->loop;
    t->loop_idle = 0;
    t->callback_frame = -1;
    /* Executing: the step's coroutine is on the stack. Anything else (suspended at an await,
     * finished) means the step ended. */
    if (state == ps->L->facts.fs_executing) {
        t->callback_id = sp->callback_id;
    } else {
        t->callback_id = 0;
        sp->state_addr = 0;
        probe_from_second_read(ps, t); /* which run followed, if the second read saw it */
    }
}
