/* Coroutine chains: following a suspended task's coroutine down what it awaits (cr_await /
 * gi_yieldfrom, the way CPython's _PyGen_yf does on each version), one frame per coroutine. */
#include "asyncio_internal.h"

#include <string.h>

/* ---- coroutine chains (mirrors _PyGen_yf of each version) --------------------------------- */

/* What the chain walk needs of one generator/coroutine, read in one or two copies. */
typedef struct gen_view {
    uint64_t type;
    uint64_t frame;      /* 3.10: its PyFrameObject; 3.11+: the frame embedded in the object */
    int8_t state;        /* gi_frame_state (3.11+), f_state (3.10): facts.fs_* give the values */
    uint64_t code;       /* the frame's code object */
    uint64_t instr;      /* 3.11+: prev_instr / instr_ptr */
    int32_t lasti;       /* 3.10: f_lasti */
    int32_t stacktop;    /* 3.10: f_stackdepth; 3.11+: stacktop (index into localsplus) */
    uint64_t valuestack; /* 3.10 */
} gen_view;

#define GEN_READ 320u

/* Read generator/coroutine g. false when it has no frame any more (it finished) or cannot be
 * read. The caller has checked that g is a generator or coroutine. */
static bool read_gen(asyncio_reader *r, uint64_t g, gen_view *v)
{
    const py_layout *L = r->L;
    uint8_t buf[GEN_READ];
    memset(v, 0, sizeof(*v));
    if (L->gen.iframe != LAYOUT_ABSENT) {
        loff hi = L->frame.code > L->frame.instr ? L->frame.code : L->frame.instr;
        hi = hi > L->frame.stacktop ? hi : L->frame.stacktop;
        hi = hi > L->frame.stackpointer ? hi : L->frame.stackpointer;
        size_t n = (size_t)L->gen.iframe + (size_t)hi + 8;
        if (n > sizeof buf || !rd(r, g, buf, n))
            return false;
        v->state = (int8_t)buf[L->gen.frame_state];
        if (v->state >= L->facts.fs_completed)
            return false;
        const uint8_t *fb = buf + L->gen.iframe;
        v->frame = g + (uint64_t)L->gen.iframe;
        v->code = layout_ref_address(L, ld64(fb, L->frame.code));
        v->instr = ld64(fb, L->frame.instr);
        if (L->frame.stacktop != LAYOUT_ABSENT) {
            memcpy(&v->stacktop, fb + L->frame.stacktop, 4);
        } else {
            /* 3.14+: a pointer to the top of the value stack, within the frame */
            uint64_t sp = ld64(fb, L->frame.stackpointer);
            uint64_t base = v->frame + (uint64_t)L->frame.localsplus;
            v->stacktop = sp >= base && sp - base < (8u << 20) && (sp - base) % 8 == 0
                              ? (int32_t)((sp - base) / 8) : -1;
        }
        return true;
    }
    /* 3.10: gi_frame, then the frame object */
    uint64_t frame;
    if (!rd_ptr(r, g + (uint64_t)L->gen.frame, &frame) || !mem_ptr_ok(frame, true))
        return false;
    loff hi = L->frame.code;
    loff fields[] = {L->frame.instr, L->frame.stacktop, L->frame.valuestack, L->frame.state};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        hi = fields[i] > hi ? fields[i] : hi;
    if ((size_t)hi + 8 > sizeof buf || !rd(r, frame, buf, (size_t)hi + 8))
        return false;
    v->frame = frame;
    v->code = layout_ref_address(L, ld64(buf, L->frame.code));
    memcpy(&v->lasti, buf + L->frame.instr, 4);
    memcpy(&v->stacktop, buf + L->frame.stacktop, 4);
    v->valuestack = ld64(buf, L->frame.valuestack);
    v->state = (int8_t)buf[L->frame.state]; /* f_state: the same values for these states */
    return true;
}

/* The object a suspended generator/coroutine is awaiting (`yield from` / `await`), 0 when none:
 * what CPython's _PyGen_yf returns on each version. */
static uint64_t gen_yf(asyncio_reader *r, const gen_view *v)
{
    const py_layout *L = r->L;
    uint64_t slot;
    if (v->stacktop <= 0 || v->stacktop > (1 << 20))
        return 0;
    const py_facts *F = &L->facts;
    if (F->yf == YF_NEXT_OPCODE) {
        /* the next instruction is YIELD_FROM: the awaited object is on top of the stack */
        uint64_t co_code;
        uint8_t op;
        if (v->lasti < 0 || !rd_ptr(r, v->code + (uint64_t)L->code.code, &co_code) ||
            !rd(r, co_code + (uint64_t)L->bytes.sval + ((uint64_t)v->lasti + 1) * 2, &op, 1) ||
            op != F->yf_op[0])
            return 0;
        slot = v->valuestack + (uint64_t)(v->stacktop - F->yf_slot_depth) * 8;
    } else {
        if (F->yf == YF_FRAME_STATE) {
            if (v->state != F->fs_suspended_yield_from)
                return 0;
        } else {
            /* not started, or the next instruction is not RESUME with oparg >= 2 */
            uint8_t next[2];
            if (v->state >= F->fs_completed || v->state == F->fs_created ||
                !rd(r, v->instr + 2, next, 2))
                return 0;
            bool resume = false;
            for (size_t k = 0; k < sizeof F->yf_op; k++)
                resume |= F->yf_op[k] && next[0] == F->yf_op[k];
            if (!resume || next[1] < 2)
                return 0;
        }
        if (v->stacktop < F->yf_slot_depth)
            return 0;
        slot = v->frame + (uint64_t)L->frame.localsplus +
               (uint64_t)(v->stacktop - F->yf_slot_depth) * 8;
    }
    uint64_t yf;
    if (!rd_ptr(r, slot, &yf))
        return 0;
    yf = layout_ref_address(L, yf); /* 3.14+: a tagged _PyStackRef */
    return mem_ptr_ok(yf, true) ? yf : 0;
}

/* The locals and value stack of a generator's frame (at most cap slots). */
uint32_t ar_gen_slots(asyncio_reader *r, uint64_t g, uint64_t *out, uint32_t cap)
{
    const py_layout *L = r->L;
    gen_view v;
    if (!(ar_classify(r, g) & (TC_CORO | TC_GEN)) || !read_gen(r, g, &v) || v.stacktop < 0 ||
        v.stacktop > (1 << 20))
        return 0;
    uint64_t first = v.frame + (uint64_t)L->frame.localsplus, n = (uint64_t)v.stacktop;
    if (L->frame.valuestack != LAYOUT_ABSENT) { /* 3.10: the value stack is elsewhere */
        if (v.valuestack < first || v.valuestack - first > (1u << 20))
            return 0;
        n += (v.valuestack - first) / 8;
    }
    if (n > cap)
        n = cap;
    if (!n || !rd(r, first, out, (size_t)n * 8))
        return 0;
    return (uint32_t)n;
}

/* Decode a suspended generator's frame from its view (read through the reader's own page cache:
 * thousands of coroutines scattered over the heap would thrash the session's small one), with
 * the frame decoder of thread stacks (codecache_locate). 1 with *out filled, -1 when
 * unreadable. */
static int decode_gen_frame(asyncio_reader *r, const gen_view *v, aprof_frame *out)
{
    const py_layout *L = r->L;
    uint64_t raw = L->instr_kind == INSTR_LASTI_INDEX ? (uint64_t)(uint32_t)v->lasti : v->instr;
    int64_t off;
    code_info *ci = codecache_locate(r->t.cc, r->c.m, v->code, L->instr_kind, raw, 0, &off);
    if (!ci)
        return -1;
    *out = code_info_frame(ci, L->linetable_kind, off);
    return 1;
}

bool ar_add_frame(async_snapshot *out, const aprof_frame *f)
{
    if (!ar_grow((void **)&out->frames, &out->cap_frames, out->nframes + 1, sizeof(aprof_frame),
                 ASYNC_MAX_FRAMES)) {
        out->flags |= ASF_FRAMES_TRUNCATED;
        return false;
    }
    out->frames[out->nframes++] = *f;
    return true;
}

/* Follow a task's coroutine down its await chain, appending one frame per coroutine. */
void ar_walk_chain(asyncio_reader *r, async_snapshot *out, async_task *t, task_work *w,
                   chain *ch)
{
    ch->n = 0;
    ch->end = 0;
    uint64_t g = t->coro;
    while (g) {
        uint32_t cls = ar_classify(r, g);
        if (!(cls & (TC_CORO | TC_GEN))) {
            ch->end = g;
            return;
        }
        if (ch->n >= ASYNC_MAX_DEPTH) {
            t->flags |= ATF_STACK_TRUNCATED;
            return;
        }
        gen_view v;
        if (!read_gen(r, g, &v))
            return; /* finished: no frame, awaits nothing */
        if (ch->n == 0) {
            if (v.state == r->L->facts.fs_executing && t->state != ATS_RUNNING)
                t->flags |= ATF_CHANGED; /* read as waiting, but its coroutine runs now */
            w->instr_addr = v.frame + (uint64_t)r->L->frame.instr;
            w->instr_len = r->L->instr_kind == INSTR_LASTI_INDEX ? 4 : 8;
            w->instr = r->L->instr_kind == INSTR_LASTI_INDEX ? (uint64_t)(uint32_t)v.lasti : v.instr;
        }
        ch->coro[ch->n] = g;
        ch->frame[ch->n] = ASYNC_NO_INDEX;
        aprof_frame f;
        int rc = decode_gen_frame(r, &v, &f);
        if (rc < 0) {
            t->flags |= ATF_PARTIAL;
            ch->n++;
            return;
        }
        if (rc > 0) {
            if (!ar_add_frame(out, &f)) {
                t->flags |= ATF_STACK_TRUNCATED;
                ch->n++;
                return;
            }
            ch->frame[ch->n] = out->nframes - 1;
        }
        ch->n++;
        g = gen_yf(r, &v);
    }
}
