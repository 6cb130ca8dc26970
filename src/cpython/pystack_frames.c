/* One thread's frames: the snapshot syscall that copies them (the data-stack chunk, the
 * prefetched frames, the rereads that bracket them), decoding a frame, the walk of the chain
 * with its loop marks, and the recheck of frames read after the snapshot. */
#include "pystack_internal.h"
#include "read_batch.h"

#include <stdlib.h>
#include <string.h>

#define WINDOW_SLACK 4096u /* bytes copied above datastack_top */

/* The snapshot's ranges: the thread state (a predicted snapshot), the frame pointer, the
 * prefetched frames' key fields (3.11+), the chunk, the innermost frame, the prefetched frames,
 * the frame pointer again, the code reread (3.10) or cframe reread (3.11/3.12), datastack_top;
 * then the code fingerprints. */
_Static_assert(7 + 2 * PREFETCH_MAX + PREFETCH_CODES <= READ_BATCH_MAX,
               "READ_BATCH_MAX holds every range of the snapshot");

static bool prefetched(const prefetch_set *pf, uint64_t addr)
{
    for (uint32_t i = 0; i < pf->n; i++)
        if (pf->addr[i] == addr)
            return true;
    return false;
}

/* Did a snapshot chosen from the thread state of the last sample (pred) copy what one chosen
 * from the fresh copy would have: the same chunk, its top inside the copied window, and the
 * innermost frame in the window, among the prefetched frames, or copied as the predicted leaf? */
static bool prediction_held(const pystack *ps, const uint8_t *pred, const uint8_t *fresh,
                            const window *w, uint64_t base, size_t len, bool window_copied,
                            bool leaf_copied)
{
    const py_layout *L = ps->L;
    if (!window_copied || !len ||
        rd64(fresh, L->tstate.datastack_chunk) != rd64(pred, L->tstate.datastack_chunk))
        return false;
    if (L->tstate.datastack_limit != LAYOUT_ABSENT &&
        rd64(fresh, L->tstate.datastack_limit) != rd64(pred, L->tstate.datastack_limit))
        return false;
    uint64_t top = rd64(fresh, L->tstate.datastack_top);
    if (top < base || top > base + len)
        return false;
    uint64_t p = rd64(fresh, L->tstate.frame);
    if (!mem_ptr_ok(p, true) || (p >= base && p + ps->frame_read <= base + len) ||
        prefetched(w->pf, p))
        return true;
    return leaf_copied && p == w->leaf;
}

/* Find the thread's innermost frame and copy its current data-stack chunk (where its newest
 * frames live, 3.11+) with a single process_vm_readv. 3.11/3.12 keep the innermost frame in a
 * _PyCFrame on the C stack (tstate->cframe->current_frame); that pointer is read in the same
 * syscall. *where is the address the frame pointer was read from, for the recheck. */
int pystack_snapshot_frames(pystack *ps, const uint8_t *ts, uint64_t tstate, uint8_t *ts_fresh,
                            uint64_t *where, uint64_t *frame, window *w)
{
    const py_layout *L = ps->L;
    /* A predicted snapshot needs the frame pointer's address without the thread state: it is
     * in the thread state itself (3.13+), not behind a _PyCFrame. */
    if (ts_fresh && (L->tstate.cframe_current_frame != LAYOUT_ABSENT ||
                     L->tstate.datastack_chunk == LAYOUT_ABSENT))
        return SNAPSHOT_MISPREDICTED;
    w->base = 0;
    w->chunk = 0;
    w->len = 0;
    w->top = 0;
    w->pf_loaded = 0;
    w->pf_early = 0;
    w->innermost = 0;
    w->again_ok = false;
    w->all_in_snapshot = true;
    w->cframe = w->cframe_again = 0;
    w->cframe_reread = false;
    w->leaf = 0;
    w->leaf_ok = false;
    w->leaf_prev = 0;
    w->nlate = 0;
    w->next.tstate = tstate;
    w->next.n = 0;
    w->next.ncode = 0;
    w->pf = &ps->prefetch[(tstate >> 6) % PREFETCH_SLOTS];
    if (w->pf->tstate != tstate) {
        w->pf->tstate = tstate;
        w->pf->n = 0;
        w->pf->ncode = 0;
    }
    uint64_t p = rd64(ts, L->tstate.frame);
    read_batch b; /* every range below, in this order, copied by one process_vm_readv */
    rb_init(&b);
    /* Predicted: the thread state itself is copied first, and what follows was chosen from
     * its copy of the last sample; checked against the fresh copy below. */
    size_t ts_at = ts_fresh ? rb_add(&b, tstate, ts_fresh, ps->tstate_size) : READ_BATCH_NONE;
    /* The innermost-frame pointer is read (again) in this same syscall, first: the thread
     * state was copied a few microseconds earlier, and a busy thread may have moved since. */
    if (L->tstate.cframe_current_frame == LAYOUT_ABSENT) {
        *where = tstate + (uint64_t)L->tstate.frame;
    } else {
        if (!mem_ptr_ok(p, true))
            return -1;
        *where = p + (uint64_t)L->tstate.cframe_current_frame;
        w->cframe = p;
    }
    size_t where_at = rb_add(&b, *where, frame, 8);
    /* The prefetched frames' caller, code and instruction, before the chunk as well as (whole)
     * after it (3.11+). A coroutine frame is not in the chunk: copied only after it, it can
     * show the coroutine moved on from the call the chunk's copy holds (the callee returned
     * while the chunk was copied) to a newer call at the same address, which brings the frame
     * pointer back to where it was (pystack_frame_bytes). A prefetched frame freed and unmapped
     * since the last sample stops this copy before the chunk: that sample reads its frames one
     * by one, and the next sample's set no longer has it. */
    size_t early_at = rb_next(&b);
    uint32_t nearly = ps->key_len ? w->pf->n : 0; /* (key_len: 0 without a data stack) */
    for (uint32_t i = 0; i < nearly; i++)
        rb_add(&b, w->pf->addr[i] + ps->key_lo, ps->early_keys + (size_t)i * KEY_SPAN_MAX,
               ps->key_len);
    uint64_t base = 0;
    size_t len = 0;
    size_t window_at = READ_BATCH_NONE;
    if (L->tstate.datastack_chunk != LAYOUT_ABSENT) {
        uint64_t chunk = rd64(ts, L->tstate.datastack_chunk);
        uint64_t top = rd64(ts, L->tstate.datastack_top);
        w->top = top;
        /* Frames pushed since the thread state was copied lie just above its datastack_top:
         * copy a little beyond it, within the chunk (datastack_limit is its end). */
        uint64_t limit = L->tstate.datastack_limit != LAYOUT_ABSENT
                             ? rd64(ts, L->tstate.datastack_limit) : top;
        if (limit > top)
            top = limit - top > WINDOW_SLACK ? top + WINDOW_SLACK : limit;
        if (!ps->window) {
            ps->window = malloc(WINDOW_MAX);
            ps->window_cap = ps->window ? WINDOW_MAX : 0;
        }
        if (ps->window && mem_ptr_ok(chunk, true) && top > chunk) {
            base = top - chunk > WINDOW_MAX ? top - WINDOW_MAX : chunk;
            len = (size_t)(top - base);
            window_at = rb_add(&b, base, ps->window, len);
        }
    }
    /* 3.10 and 3.13+ name the innermost frame in the thread state itself: when neither the
     * data-stack copy nor the prefetched frames hold it (a new 3.10 frame object, a coroutine
     * frame not seen last time), copy it in this syscall too. */
    size_t leaf_at = READ_BATCH_NONE;
    if (L->tstate.cframe_current_frame == LAYOUT_ABSENT && mem_ptr_ok(p, true) &&
        !(len && p >= base && p + ps->frame_read <= base + len) && !prefetched(w->pf, p)) {
        w->leaf = p;
        leaf_at = rb_add(&b, p, w->leaf_buf, ps->frame_read);
    }
    size_t pf_at = rb_next(&b); /* the prefetched frames, one range each from here */
    for (uint32_t i = 0; i < w->pf->n; i++)
        rb_add(&b, w->pf->addr[i], ps->prefetch_buf + (size_t)i * FRAME_READ, ps->frame_read);
    /* The interpreter's gc.collecting (pystack.c: mark_gc), inside the bracket: read after the
     * bracket closed, it once said "collecting" for the stack of the step before the one that
     * called gc.collect() (the step ended, the next began and collected, between the copies). */
    size_t gc_at = READ_BATCH_NONE;
    ps->gc_flag_copy = 0;
    if (ps->gc_flag)
        gc_at = rb_add(&b, ps->gc_flag, &ps->gc_flag_copy, sizeof(ps->gc_flag_copy));
    /* Last, the frame pointer again: if it did not move, everything copied before it in this
     * same syscall belongs to that one stack. */
    size_t bracket_last = rb_add(&b, *where, &w->again, 8); /* the bracket's last range */
    /* 3.10 hands a returned frame object to the next call: the same pointer can then name a
     * newer frame. The pointer is known before this syscall (it is in the thread state), so
     * that frame's code object is reread last as well. (On 3.11+ data-stack slots are reused
     * the same way, but this costs a page more per sample there: see docs/limits.md.) */
    w->code_again_addr = 0;
    loff ca = L->frame.code, cb = L->frame.previous;
    loff clo = ca < cb ? ca : cb, chi = ca < cb ? cb : ca;
    if (L->instr_kind == INSTR_LASTI_INDEX && mem_ptr_ok(p, true) &&
        (size_t)(chi - clo) + 8 <= sizeof(w->code_again_buf)) {
        /* and its caller: the next call of the same code (another coroutine's) reuses it */
        w->code_again_addr = p;
        w->code_again_lo = clo;
        bracket_last = rb_add(&b, p + (uint64_t)clo, w->code_again_buf, (size_t)(chi - clo) + 8);
    }
    /* 3.11/3.12: the _PyCFrame copied with the thread state lives on the C stack of the
     * evaluation that pushed it, and each C-to-Python call (a task step) runs in a _PyCFrame
     * of its own. The thread state's cframe pointer is reread last and must be the same (see
     * cframe_still_live in pystack.c). */
    if (w->cframe) {
        bracket_last = rb_add(&b, tstate + (uint64_t)L->tstate.frame, &w->cframe_again, 8);
        w->cframe_reread = true;
    }
    /* 3.11+: datastack_top again, after the bracket: frames below both readings of it were on
     * the stack when they were copied (pystack_verify_outer, for stacks that stay torn). */
    size_t top_at = READ_BATCH_NONE;
    w->top_again = 0;
    if (w->top)
        top_at = rb_add(&b, tstate + (uint64_t)L->tstate.datastack_top, &w->top_again, 8);
    /* The code objects of the last walk: a code object freed and its address reused by another
     * would otherwise be named after the old one. Not part of the stack's consistency, so after
     * the rereads: the copy between the two frame-pointer reads stays as short as it can. */
    size_t codes_at = rb_next(&b); /* the fingerprint spans, one range each from here */
    uint32_t span_off, span_len;
    codecache_fingerprint_span(ps->cc, &span_off, &span_len);
    uint32_t ncheck = 0;
    for (uint32_t i = 0; i < w->pf->ncode && span_len <= sizeof(ps->code_span[0]); i++) {
        code_info *ci = codecache_peek(ps->cc, w->pf->code[i]);
        if (!ci || !code_info_needs_confirm(ci, ps->now_ns))
            continue;
        ps->code_check[ncheck++] = w->pf->code[i];
        rb_add(&b, w->pf->code[i] + span_off, ps->code_span[ncheck - 1], span_len);
    }
    /* The kernel copies the ranges in order and stops at the first it cannot read: a range
     * copied means all those before it were too. */
    rb_read(&b, ps->m);
    /* as of this copy: a later one (a torn read's stopped read) overrides an earlier one's */
    ps->gc_seen = gc_at != READ_BATCH_NONE && rb_copied(&b, gc_at) && ps->gc_flag_copy;
    if (ts_fresh) {
        if (!rb_copied(&b, ts_at))
            return SNAPSHOT_NO_TSTATE;
        if (!prediction_held(ps, ts, ts_fresh, w, base, len, rb_copied(&b, window_at),
                             rb_copied(&b, leaf_at)))
            return SNAPSHOT_MISPREDICTED;
        ts = ts_fresh;
        w->top = rd64(ts, L->tstate.datastack_top);
    }
    if (!rb_copied(&b, where_at))
        return -1;
    if (rb_copied(&b, window_at)) {
        w->base = base;
        w->len = len;
        w->chunk = base == rd64(ts, L->tstate.datastack_chunk) ? base : 0;
    }
    w->leaf_ok = rb_copied(&b, leaf_at);
    w->pf_loaded = (uint32_t)rb_copied_count(&b, pf_at, w->pf->n);
    w->pf_early = (uint32_t)rb_copied_count(&b, early_at, nearly);
    w->innermost = *frame;
    size_t confirmed = rb_copied_count(&b, codes_at, ncheck);
    for (size_t i = 0; i < confirmed; i++) {
        code_info *ci = codecache_peek(ps->cc, ps->code_check[i]);
        if (ci)
            codecache_confirm(ps->cc, ci, ps->code_span[i], ps->now_ns);
    }
    w->again_ok = rb_copied(&b, bracket_last);
    if (!rb_copied(&b, top_at))
        w->top_again = 0;
    return 0;
}

/* A frame's bytes: from the snapshot when it holds them (0), else read now (1); -1 unreadable. */
int pystack_frame_bytes(pystack *ps, window *w, uint64_t addr, uint8_t *out, size_t len)
{
    if (w->len && addr >= w->base && addr + len <= w->base + w->len) {
        memcpy(out, ps->window + (addr - w->base), len);
        return 0;
    }
    if (w->leaf_ok && addr == w->leaf && len <= sizeof(w->leaf_buf)) {
        memcpy(out, w->leaf_buf, len);
        return 0;
    }
    if (w->next.n < PREFETCH_MAX)
        w->next.addr[w->next.n++] = addr;
    for (uint32_t i = 0; i < w->pf_loaded; i++) {
        if (w->pf->addr[i] != addr)
            continue;
        const uint8_t *copy = ps->prefetch_buf + (size_t)i * FRAME_READ;
        /* A calling frame whose span of caller, code and instruction changed between its copy
         * before the chunk and its copy after: its callee in the chunk's copy may be one it has
         * returned from since (a coroutine then at a newer line, "calling" a function it no
         * longer calls). It is read again now, as a late frame, and the final recheck
         * (pystack_unchanged_since_walk) decides. Unchanged, it called that callee all along. */
        if (i < w->pf_early && addr != w->innermost &&
            memcmp(ps->early_keys + (size_t)i * KEY_SPAN_MAX, copy + ps->key_lo, ps->key_len)) {
            ps->stats.moved_callers++;
            break;
        }
        memcpy(out, copy, len);
        return 0;
    }
    w->all_in_snapshot = false;
    return mem_read(ps->m, addr, out, len) == 0 ? 1 : -1;
}

/* A frame's identity for comparing two reads of one stack: the same frame (address), called
 * from the same caller, running the same code, at the same instruction. */
static uint64_t frame_key(uint64_t addr, uint64_t prev, uint64_t code, uint64_t instr)
{
    uint64_t h = addr * 0x9e3779b97f4a7c15ull;
    h = (h ^ (h >> 29) ^ prev) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 31) ^ code) * 0x94d049bb133111ebull;
    return (h ^ (h >> 32) ^ instr) * 0x9e3779b97f4a7c15ull;
}

uint64_t pystack_frame_key_of_bytes(const pystack *ps, uint64_t addr, const uint8_t *fb)
{
    const py_layout *L = ps->L;
    return frame_key(addr, rd64(fb, L->frame.previous),
                     layout_ref_address(L, rd64(fb, L->frame.code)), rd64(fb, L->frame.instr));
}

/* A frame read after the snapshot shows the thread later than the rest: a coroutine may have
 * returned from the callees the snapshot shows and moved on, and 3.10 hands a returned frame
 * object (still holding its last line) to the next call of the same code. Such frames are read
 * again in the final recheck (pystack_unchanged_since_walk). */
static void note_late(pystack *ps, window *w, uint64_t frame, uint64_t key, uint64_t owner_obj)
{
    /* The innermost ones, which change first: a deep stack read in part outside the snapshot
     * (older data-stack chunks, 3.10 frame objects beyond the prefetch set) would otherwise
     * never pass, and its outer frames are the least likely to move. */
    if (w->nlate >= LATE_MAX)
        return;
    uint64_t state = 0;
    if (owner_obj && ps->L->gen.frame_state != LAYOUT_ABSENT)
        state = owner_obj + (uint64_t)ps->L->gen.frame_state;
    else if (owner_obj && ps->L->frame.state != LAYOUT_ABSENT)
        state = frame + (uint64_t)ps->L->frame.state; /* 3.10: in the frame object */
    w->late_addr[w->nlate] = frame;
    w->late_key[w->nlate] = key;
    w->late_state[w->nlate++] = state;
}

static void note_code(prefetch_set *next, uint64_t code)
{
    for (uint32_t i = 0; i < next->ncode; i++)
        if (next->code[i] == code)
            return;
    if (next->ncode < PREFETCH_CODES)
        next->code[next->ncode++] = code;
}

/* Turn one frame (fb: ps->frame_read bytes copied from frame_addr) into an aprof_frame. *prev
 * gets the next-outer frame; *owner_obj the generator/coroutine owning the frame (0 if none);
 * *role what the frame's code is to the asyncio layer. */
decode_result pystack_decode_frame(pystack *ps, const uint8_t *fb, uint64_t frame_addr,
                                   int32_t *co_flags, aprof_frame *out, uint64_t *prev,
                                   uint64_t *owner_obj, uint8_t *role)
{
    *role = ROLE_NONE;
    const py_layout *L = ps->L;
    *prev = rd64(fb, L->frame.previous);
    *owner_obj = 0;
    uint64_t code = layout_ref_address(L, rd64(fb, L->frame.code));
    int owner = L->frame.owner != LAYOUT_ABSENT ? fb[L->frame.owner] : OWNER_THREAD;
    if (L->facts.entry == ENTRY_SHIM_FRAME && owner == L->facts.owner_cstack)
        return DECODE_SKIP_SHIM;
    if (L->frame.gen != LAYOUT_ABSENT)
        *owner_obj = rd64(fb, L->frame.gen);
    else if (owner == OWNER_GENERATOR && L->gen.iframe != LAYOUT_ABSENT)
        *owner_obj = frame_addr - (uint64_t)L->gen.iframe;
    uint64_t raw = L->instr_kind == INSTR_LASTI_INDEX ? (uint64_t)rd32(fb, L->frame.instr)
                                                      : rd64(fb, L->frame.instr);
    int64_t off;
    code_info *ci = codecache_locate(ps->cc, ps->m, code, L->instr_kind, raw, ps->now_ns, &off);
    if (!ci)
        return DECODE_BAD;
    /* 3.11+: a frame that has not reached its first traceable instruction is not yet visible
     * to Python either (it is being set up); CPython skips it too. */
    if (L->instr_kind == INSTR_POINTER && owner != OWNER_GENERATOR &&
        off < (int64_t)ci->firsttraceable * 2)
        return DECODE_SKIP;
    bool entry = L->facts.entry == ENTRY_FLAG ? fb[L->frame.is_entry] != 0
                                              : L->facts.entry == ENTRY_EVERY_FRAME;
    *out = code_info_frame(ci, L->linetable_kind, off);
    out->flags = entry ? FRAMEF_ENTRY : 0;
    *role = ci->role;
    *co_flags = ci->flags;
    return DECODE_OK;
}

/* Walk one thread's frame chain innermost-first into t->frames; returns the count. Also notes
 * what the asyncio layer needs: loop frames, the innermost Handle._run and its `self`. */
uint32_t pystack_walk_frames(pystack *ps, uint64_t frame, window *w, aprof_thread_sample *t,
                             loop_marks *lm)
{
    uint32_t n = 0;
    uint8_t fb[FRAME_READ];
    /* Brent's cycle detection: a torn read can link frames into a loop (a frame freed and
     * reused further up the same chain); without this the walk would spin to the cap. */
    uint64_t tortoise = 0;
    uint32_t power = 1, lam = 0;
    uint64_t inner = 0; /* the frame kept just before this one */
    for (uint32_t steps = 0; frame; steps++) {
        if (steps >= APROF_MAX_FRAMES * 2 || n >= t->cap_frames) {
            t->flags |= TSF_TRUNCATED;
            break;
        }
        if (frame == tortoise) {
            t->flags |= TSF_TORN;
            break;
        }
        if (++lam == power) {
            tortoise = frame;
            power *= 2;
            lam = 0;
        }
        int late = mem_ptr_ok(frame, true) ? pystack_frame_bytes(ps, w, frame, fb, ps->frame_read)
                                           : -1;
        if (late < 0) {
            t->flags |= TSF_TORN;
            break;
        }
        uint64_t prev, owner_obj;
        uint8_t role;
        int32_t co_flags = 0;
        decode_result r =
            pystack_decode_frame(ps, fb, frame, &co_flags, &t->frames[n], &prev, &owner_obj, &role);
        if (steps == 0)
            w->leaf_prev = prev; /* the innermost frame's caller, for the final recheck */
        if (r == DECODE_BAD) {
            t->flags |= TSF_TORN;
            break;
        }
        if (r == DECODE_OK) {
            uint64_t code = layout_ref_address(ps->L, rd64(fb, ps->L->frame.code));
            note_code(&w->next, code);
            ps->keys[n] = frame_key(frame, prev, code, rd64(fb, ps->L->frame.instr));
            ps->addrs[n] = frame;
            if (late)
                note_late(ps, w, frame, ps->keys[n], owner_obj);
            switch (role) {
            case ROLE_RUN_ONCE:
                if (lm->run_once_index < 0)
                    lm->run_once_index = (int32_t)n;
                lm->asyncio_loop = true;
                break;
            case ROLE_RUN_FOREVER:
                lm->asyncio_loop = true;
                break;
            case ROLE_HANDLE_RUN:
                if (lm->handle_index < 0) {
                    lm->handle_index = (int32_t)n;
                    lm->handle_inner_frame = n > 0 ? inner : frame;
                    memcpy(&lm->handle, fb + ps->L->frame.localsplus, 8);
                }
                break;
            case ROLE_SELECT:
                lm->leaf_select |= n == 0;
                break;
            case ROLE_LOOP_ENTRY:
                if (lm->entry_index < 0) {
                    lm->entry_index = (int32_t)n; /* innermost runner frame */
                    lm->entry_inner_frame = inner;
                }
                break;
            }
            inner = frame;
            t->owners[n++] = owner_obj;
            /* A thread's outermost frame is never a generator's: a generator frame without a
             * caller is a suspended one. Reaching it means the innermost-frame pointer was read
             * while CPython was switching frames (3.11/3.12 publish a new _PyCFrame before
             * filling it in), or (3.10) the chain ran into frame objects of coroutines that
             * finished, which no longer name their generator but still run generator code. */
            if (!prev && (owner_obj || (co_flags & CO_GENERATOR_LIKE)))
                t->flags |= TSF_TORN;
        } else if (r == DECODE_SKIP_SHIM && n > 0) {
            t->frames[n - 1].flags |= FRAMEF_ENTRY; /* the frame inside the shim began a call */
        }
        frame = prev;
    }
    return n;
}

static uint64_t callback_identity(uint64_t handle, uint64_t coro, const char *fn)
{
    uint64_t h = handle ^ (coro * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)(uintptr_t)fn << 1);
    return h ? h : 1;
}

/* Turn the marks of an innermost-first walk into the thread's loop fields (frames now
 * outermost first). Returns the target address of the callback frame, 0 when none. */
uint64_t pystack_apply_loop_marks(aprof_thread_sample *t, const loop_marks *lm)
{
    uint32_t n = t->nframes;
    if (lm->asyncio_loop) {
        t->loop = LOOP_ASYNCIO;
        t->loop_idle = lm->leaf_select;
        if (lm->handle_index >= 0) {
            /* The callback starts just inside Handle._run; when it is C code (a future's
             * callback, a C task step) Handle._run itself is the innermost Python frame. */
            uint32_t outer = n - 1 - (uint32_t)lm->handle_index;
            t->callback_frame = (int32_t)(outer + 1 < n ? outer + 1 : outer);
            /* The Handle's address alone could be reused by the next callback run once the
             * old Handle is freed; the coroutine and function it runs tell them apart. */
            t->callback_id = callback_identity(lm->handle, t->owners[t->callback_frame],
                                               t->frames[t->callback_frame].name);
            return lm->handle_inner_frame;
        }
    } else if (lm->entry_index >= 0) {
        /* A runner (asyncio.run / uvloop.run) with no Python loop frames: the loop is native.
         * Frames inside the innermost runner frame are the running callback or task step. */
        t->loop = LOOP_NATIVE;
        if (lm->entry_index > 0) {
            t->callback_frame = (int32_t)(n - (uint32_t)lm->entry_index);
            uint64_t owner = t->owners[t->callback_frame];
            t->callback_id = owner ? owner : (uint64_t)(uintptr_t)t->frames[t->callback_frame].name;
            return lm->entry_inner_frame;
        }
    }
    return 0;
}

/* After a walk that had to read some frames on its own: is the innermost frame still the same
 * frame (pointer, and the object at it still runs the same code object from the same caller)?
 * Comparing the pointer alone would miss a frame object freed and reused for another call
 * (3.10 recycles frame objects). */
bool pystack_unchanged_since_walk(pystack *ps, window *w, uint64_t where, uint64_t frame,
                                  const aprof_thread_sample *t)
{
    const py_layout *L = ps->L;
    uint64_t again = 0;
    uint8_t fb[FRAME_READ];
    int8_t states[LATE_MAX];
    uint8_t *late_buf = ps->late_buf;
    enum { MAXV = 2 + 2 * LATE_MAX };
    uint64_t addrs[MAXV] = {frame, where};
    void *dsts[MAXV] = {fb, &again};
    size_t lens[MAXV] = {ps->frame_read, 8};
    size_t n = 2, want = ps->frame_read + 8;
    for (uint32_t i = 0; i < w->nlate; i++) {
        addrs[n] = w->late_addr[i];
        dsts[n] = late_buf + (size_t)i * FRAME_READ;
        lens[n++] = ps->frame_read;
        want += ps->frame_read;
        if (w->late_state[i]) {
            addrs[n] = w->late_state[i];
            dsts[n] = &states[i];
            lens[n++] = 1;
            want++;
        }
    }
    if (!mem_ptr_ok(frame, true) || mem_readv(ps->m, addrs, dsts, lens, n) != (ssize_t)want ||
        again != frame)
        return false;
    for (uint32_t i = 0; i < w->nlate; i++) {
        if (pystack_frame_key_of_bytes(ps, w->late_addr[i], late_buf + (size_t)i * FRAME_READ) !=
            w->late_key[i])
            return false;
        /* not executing any more: a coroutine suspended since was read after its step ended */
        if (w->late_state[i] && states[i] != ps->L->facts.fs_executing)
            return false;
    }
    if (t->nframes == 0)
        return true;
    /* Same caller as the walk saw: a newer call at the same address from another coroutine
     * (the next task step) would otherwise pass. */
    if (rd64(fb, L->frame.previous) != w->leaf_prev)
        return false;
    code_info *ci = codecache_get(ps->cc, ps->m, layout_ref_address(L, rd64(fb, L->frame.code)));
    const aprof_frame *inner = &t->frames[t->nframes - 1];
    return ci && ci->name == inner->name && ci->file == inner->file;
}
