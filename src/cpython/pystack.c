#include "pystack.h"


#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_MAX (256u * 1024u)
#define WINDOW_SLACK 4096u /* bytes copied above datastack_top */
#define TSTATE_READ 512u
#define FRAME_READ 384u /* upper bound of ps->frame_read */
#define HEAD_REFRESH_NS 20000000ull /* reread interp->threads.head at least this often */
#define LATE_MAX 16 /* coroutine frames read after the snapshot whose state is rechecked */

/* Frame owner values (enum _frameowner in pycore_frame.h). */
enum { OWNER_THREAD = 0, OWNER_GENERATOR = 1, OWNER_FRAME_OBJECT = 2, OWNER_CSTACK = 3 };

static size_t max_offset(const loff *fields, size_t n)
{
    loff hi = 0;
    for (size_t i = 0; i < n; i++)
        if (fields[i] > hi)
            hi = fields[i];
    return (size_t)hi;
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
    ps->vframes = malloc(APROF_MAX_FRAMES * sizeof(*ps->vframes));
    ps->late_buf = malloc((size_t)LATE_MAX * FRAME_READ);
    ps->vowners = malloc(APROF_MAX_FRAMES * sizeof(*ps->vowners));
    ps->vkeys = malloc(APROF_MAX_FRAMES * sizeof(*ps->vkeys));
    ps->unreadable = strtab_intern_cstr(st, "<unreadable>");
    if (!ps->cc || !ps->prefetch || !ps->prefetch_buf || !ps->probes || !ps->keys ||
        !ps->prev_keys || !ps->addrs || !ps->outer || !ps->vframes || !ps->vowners ||
        !ps->late_buf || !ps->vkeys ||
        !ps->unreadable)
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
    return 0;
}

void pystack_free(pystack *ps)
{
    codecache_free(ps->cc);
    free(ps->window);
    free(ps->prefetch);
    free(ps->prefetch_buf);
    free(ps->probes);
    free(ps->keys);
    free(ps->prev_keys);
    free(ps->addrs);
    free(ps->outer);
    free(ps->vframes);
    free(ps->vkeys);
    ps->vkeys = NULL;
    free(ps->late_buf);
    ps->late_buf = NULL;
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

static uint32_t rd32(const uint8_t *buf, loff off)
{
    uint32_t v;
    memcpy(&v, buf + off, 4);
    return v;
}

static uint64_t rd64(const uint8_t *buf, loff off)
{
    uint64_t v;
    memcpy(&v, buf + off, 8);
    return v;
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

typedef struct window {
    uint64_t base;       /* data-stack chunk copy */
    size_t len;
    uint64_t top;        /* the thread state's datastack_top, as copied with it (3.11+) */
    uint64_t top_again;  /* ... and reread after the snapshot bracket, 0 when not read */
    prefetch_set *pf;    /* this thread's prefetch set (addresses to fetch / fetched) */
    uint32_t pf_loaded;  /* how many of pf->addr were fetched into ps->prefetch_buf */
    prefetch_set next;   /* frames read outside the chunk this time: next sample's set */
    uint64_t again;      /* the innermost-frame pointer reread at the end of the snapshot */
    uint64_t code_again_addr;  /* 3.10: that frame, whose f_code and f_back are reread after */
    uint8_t code_again_buf[32]; /* ... into this (the span of the two fields) */
    loff code_again_lo;
    uint64_t cframe, cframe_again; /* 3.11/3.12: tstate->cframe as copied, and reread last */
    bool cframe_reread;  /* ... whether cframe_again was read */
    uint64_t leaf;       /* the innermost frame as the thread state named it, when its copy */
    bool leaf_ok;        /* ... in leaf_buf came from the snapshot */
    uint8_t leaf_buf[FRAME_READ];
    bool again_ok;       /* ... and that read succeeded */
    bool all_in_snapshot;/* every frame of the walk came from the snapshot syscall */
    uint64_t leaf_prev;  /* the innermost kept frame's caller, as the walk saw it */
    /* Frames read after the snapshot, one by one: each is read again with the final recheck
     * and must not have changed (key), and a coroutine's state must still be "executing". */
    uint32_t nlate;
    uint64_t late_addr[LATE_MAX], late_key[LATE_MAX];
    uint64_t late_state[LATE_MAX]; /* where its state byte lives, 0 for plain function frames */
} window;

static bool prefetched(const prefetch_set *pf, uint64_t addr)
{
    for (uint32_t i = 0; i < pf->n; i++)
        if (pf->addr[i] == addr)
            return true;
    return false;
}

/* Find the thread's innermost frame and copy its current data-stack chunk (where its newest
 * frames live, 3.11+) with a single process_vm_readv. 3.11/3.12 keep the innermost frame in a
 * _PyCFrame on the C stack (tstate->cframe->current_frame); that pointer is read in the same
 * syscall. *where is the address the frame pointer was read from, for the recheck. */
static int locate_frames(pystack *ps, const uint8_t *ts, uint64_t tstate, uint64_t *where,
                         uint64_t *frame, window *w)
{
    const py_layout *L = ps->L;
    w->base = 0;
    w->len = 0;
    w->top = 0;
    w->pf_loaded = 0;
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
    uint64_t addrs[6 + PREFETCH_MAX + PREFETCH_CODES];
    void *dsts[6 + PREFETCH_MAX + PREFETCH_CODES];
    size_t lens[6 + PREFETCH_MAX + PREFETCH_CODES], n = 0;
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
    addrs[n] = *where;
    dsts[n] = frame;
    lens[n++] = 8;
    uint64_t base = 0;
    size_t len = 0;
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
            addrs[n] = base;
            dsts[n] = ps->window;
            lens[n++] = len;
        }
    }
    /* 3.10 and 3.13+ name the innermost frame in the thread state itself: when neither the
     * data-stack copy nor the prefetched frames hold it (a new 3.10 frame object, a coroutine
     * frame not seen last time), copy it in this syscall too. */
    size_t leaf_at = SIZE_MAX;
    if (L->tstate.cframe_current_frame == LAYOUT_ABSENT && mem_ptr_ok(p, true) &&
        !(len && p >= base && p + ps->frame_read <= base + len) && !prefetched(w->pf, p)) {
        w->leaf = p;
        leaf_at = n;
        addrs[n] = p;
        dsts[n] = w->leaf_buf;
        lens[n++] = ps->frame_read;
    }
    size_t fixed = n;
    for (uint32_t i = 0; i < w->pf->n; i++) {
        addrs[n] = w->pf->addr[i];
        dsts[n] = ps->prefetch_buf + (size_t)i * FRAME_READ;
        lens[n++] = ps->frame_read;
    }
    /* Last, the frame pointer again: if it did not move, everything copied before it in this
     * same syscall belongs to that one stack. */
    addrs[n] = *where;
    dsts[n] = &w->again;
    lens[n++] = 8;
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
        addrs[n] = p + (uint64_t)clo;
        dsts[n] = w->code_again_buf;
        lens[n++] = (size_t)(chi - clo) + 8;
    }
    /* 3.11/3.12: the _PyCFrame copied with the thread state lives on the C stack of the
     * evaluation that pushed it, and each C-to-Python call (a task step) runs in a _PyCFrame
     * of its own. The thread state's cframe pointer is reread last and must be the same (see
     * cframe_still_live). */
    if (w->cframe) {
        addrs[n] = tstate + (uint64_t)L->tstate.frame;
        dsts[n] = &w->cframe_again;
        lens[n++] = 8;
        w->cframe_reread = true;
    }
    size_t bracket_end = n;
    /* 3.11+: datastack_top again, after the bracket: frames below both readings of it were on
     * the stack when they were copied (verify_outer, for stacks that stay torn). */
    size_t top_at = SIZE_MAX;
    w->top_again = 0;
    if (w->top) {
        top_at = n;
        addrs[n] = tstate + (uint64_t)L->tstate.datastack_top;
        dsts[n] = &w->top_again;
        lens[n++] = 8;
    }
    /* The code objects of the last walk: a code object freed and its address reused by another
     * would otherwise be named after the old one. Not part of the stack's consistency, so after
     * the rereads: the copy between the two frame-pointer reads stays as short as it can. */
    size_t codes_at = n;
    uint32_t span_off, span_len;
    codecache_fingerprint_span(ps->cc, &span_off, &span_len);
    uint32_t ncheck = 0;
    for (uint32_t i = 0; i < w->pf->ncode && span_len <= sizeof(ps->code_span[0]); i++) {
        code_info *ci = codecache_peek(ps->cc, w->pf->code[i]);
        if (!ci || !code_info_needs_confirm(ci, ps->now_ns))
            continue;
        ps->code_check[ncheck++] = w->pf->code[i];
        addrs[n] = w->pf->code[i] + span_off;
        dsts[n] = ps->code_span[ncheck - 1];
        lens[n++] = span_len;
    }
    ssize_t got = mem_readv(ps->m, addrs, dsts, lens, n);
    ssize_t need = (ssize_t)lens[0];
    if (got < need)
        return -1;
    /* The kernel copies the ranges in order and stops at the first it cannot read. */
    size_t done = 0, ok = 0;
    for (size_t i = 0; i < n && done + lens[i] <= (size_t)got; i++, ok++)
        done += lens[i];
    if (len && ok >= (leaf_at != SIZE_MAX ? leaf_at : fixed)) {
        w->base = base;
        w->len = len;
    }
    w->leaf_ok = leaf_at != SIZE_MAX && ok > leaf_at;
    w->pf_loaded = ok > fixed ? (uint32_t)(ok - fixed) : 0;
    if (w->pf_loaded > w->pf->n)
        w->pf_loaded = w->pf->n;
    for (size_t i = codes_at; i < ok && i < codes_at + ncheck; i++) {
        code_info *ci = codecache_peek(ps->cc, ps->code_check[i - codes_at]);
        if (ci)
            codecache_confirm(ps->cc, ci, ps->code_span[i - codes_at], ps->now_ns);
    }
    w->again_ok = ok >= bracket_end;
    if (top_at == SIZE_MAX || ok <= top_at)
        w->top_again = 0;
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

/* A frame's bytes: from the snapshot when it holds them (0), else read now (1); -1 unreadable. */
static int read_frame(pystack *ps, window *w, uint64_t addr, uint8_t *out, size_t len)
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
        if (w->pf->addr[i] == addr) {
            memcpy(out, ps->prefetch_buf + (size_t)i * FRAME_READ, len);
            return 0;
        }
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

static uint64_t key_of_bytes(const pystack *ps, uint64_t addr, const uint8_t *fb)
{
    const py_layout *L = ps->L;
    return frame_key(addr, rd64(fb, L->frame.previous), rd64(fb, L->frame.code),
                     rd64(fb, L->frame.instr));
}

/* A frame read after the snapshot shows the thread later than the rest: a coroutine may have
 * returned from the callees the snapshot shows and moved on, and 3.10 hands a returned frame
 * object (still holding its last line) to the next call of the same code. Such frames are read
 * again in the final recheck (unchanged_since_walk). */
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

/* What a walk notices for the event-loop view of a thread. */
typedef struct loop_marks {
    bool asyncio_loop;     /* run_forever / _run_once seen */
    bool leaf_select;      /* innermost frame is a selector's select() */
    int32_t handle_index;  /* innermost-first index of the innermost Handle._run, -1 */
    uint64_t handle;       /* its self */
    int32_t entry_index;   /* innermost-first index of the innermost runner frame, -1 */
    /* target addresses of the frames the running callback starts in: the frame just inside
     * that Handle._run (or Handle._run itself when it is innermost), just inside that runner */
    uint64_t handle_inner_frame, entry_inner_frame;
} loop_marks;

typedef enum decode_result { DECODE_OK, DECODE_SKIP, DECODE_SKIP_SHIM, DECODE_BAD } decode_result;

/* Turn one frame (fb: ps->frame_read bytes copied from frame_addr) into an aprof_frame. *prev
 * gets the next-outer frame; *owner_obj the generator/coroutine owning the frame (0 if none);
 * *role what the frame's code is to the asyncio layer. */
static decode_result decode_frame(pystack *ps, const uint8_t *fb, uint64_t frame_addr,
                                  aprof_frame *out, uint64_t *prev, uint64_t *owner_obj,
                                  uint8_t *role)
{
    *role = ROLE_NONE;
    const py_layout *L = ps->L;
    *prev = rd64(fb, L->frame.previous);
    *owner_obj = 0;
    uint64_t code = rd64(fb, L->frame.code);
    int owner = L->frame.owner != LAYOUT_ABSENT ? fb[L->frame.owner] : OWNER_THREAD;
    if (owner == OWNER_CSTACK && ps->rt->minor >= 12)
        return DECODE_SKIP_SHIM;
    if (L->frame.gen != LAYOUT_ABSENT)
        *owner_obj = rd64(fb, L->frame.gen);
    else if (owner == OWNER_GENERATOR && L->gen.iframe != LAYOUT_ABSENT)
        *owner_obj = frame_addr - (uint64_t)L->gen.iframe;
    code_info *ci = codecache_get_fresh(ps->cc, ps->m, code, ps->now_ns);
    if (!ci)
        return DECODE_BAD;
    uint64_t raw = L->instr_kind == INSTR_LASTI_INDEX ? (uint64_t)rd32(fb, L->frame.instr)
                                                      : rd64(fb, L->frame.instr);
    int64_t off;
    if (!code_info_offset(ci, L->instr_kind, raw, &off)) {
        /* The code object at this address is not the one cached (freed and reused), or the
         * frame is torn. Reload once. */
        codecache_invalidate(ps->cc, code);
        ci = codecache_get(ps->cc, ps->m, code);
        if (!ci || !code_info_offset(ci, L->instr_kind, raw, &off))
            return DECODE_BAD;
    }
    /* 3.11+: a frame that has not reached its first traceable instruction is not yet visible
     * to Python either (it is being set up); CPython skips it too. */
    if (L->instr_kind == INSTR_POINTER && owner != OWNER_GENERATOR &&
        off < (int64_t)ci->firsttraceable * 2)
        return DECODE_SKIP;
    bool entry = L->frame.is_entry != LAYOUT_ABSENT ? fb[L->frame.is_entry] != 0
                                                    : ps->rt->minor <= 10;
    *out = code_info_frame(ci, L->linetable_kind, off);
    out->flags = entry ? FRAMEF_ENTRY : 0;
    *role = ci->role;
    return DECODE_OK;
}

int pystack_read_frame(pystack *ps, uint64_t frame_addr, aprof_frame *out, uint64_t *prev,
                       uint64_t *owner_obj)
{
    uint8_t fb[FRAME_READ];
    uint8_t role;
    if (!mem_ptr_ok(frame_addr, true) || mem_read(ps->m, frame_addr, fb, ps->frame_read) != 0)
        return -1;
    switch (decode_frame(ps, fb, frame_addr, out, prev, owner_obj, &role)) {
    case DECODE_OK: return 1;
    case DECODE_SKIP:
    case DECODE_SKIP_SHIM: return 0;
    default: return -1;
    }
}

/* Walk one thread's frame chain innermost-first into t->frames; returns the count. Also notes
 * what the asyncio layer needs: loop frames, the innermost Handle._run and its `self`. */
static uint32_t walk_frames(pystack *ps, uint64_t frame, window *w, aprof_thread_sample *t,
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
        int late = mem_ptr_ok(frame, true) ? read_frame(ps, w, frame, fb, ps->frame_read) : -1;
        if (late < 0) {
            t->flags |= TSF_TORN;
            break;
        }
        uint64_t prev, owner_obj;
        uint8_t role;
        decode_result r = decode_frame(ps, fb, frame, &t->frames[n], &prev, &owner_obj, &role);
        if (steps == 0)
            w->leaf_prev = prev; /* the innermost frame's caller, for the final recheck */
        if (r == DECODE_BAD) {
            t->flags |= TSF_TORN;
            break;
        }
        if (r == DECODE_OK) {
            uint64_t code = rd64(fb, ps->L->frame.code);
            note_code(&w->next, code);
            ps->keys[n] = frame_key(frame, prev, code, rd64(fb, ps->L->frame.instr));
            ps->addrs[n] = frame;
            if (late)
                note_late(ps, w, frame, ps->keys[n], owner_obj);
            switch (role) {
            case ROLE_RUN_FOREVER:
            case ROLE_RUN_ONCE:
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
             * filling it in). */
            if (!prev && owner_obj)
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
static uint64_t apply_loop_marks(aprof_thread_sample *t, const loop_marks *lm)
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

/* After a walk that had to read some frames on its own: is the innermost frame still the same
 * frame (pointer, and the object at it still runs the same code object from the same caller)?
 * Comparing the pointer alone would miss a frame object freed and reused for another call
 * (3.10 recycles frame objects). */
static bool unchanged_since_walk(pystack *ps, window *w, uint64_t where, uint64_t frame,
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
        if (key_of_bytes(ps, w->late_addr[i], late_buf + (size_t)i * FRAME_READ) !=
            w->late_key[i])
            return false;
        /* FRAME_EXECUTING is 0 on every version: a coroutine suspended since was read after
         * its step ended */
        if (w->late_state[i] && states[i] != 0)
            return false;
    }
    if (t->nframes == 0)
        return true;
    /* Same caller as the walk saw: a newer call at the same address from another coroutine
     * (the next task step) would otherwise pass. */
    if (rd64(fb, L->frame.previous) != w->leaf_prev)
        return false;
    code_info *ci = codecache_get(ps->cc, ps->m, rd64(fb, L->frame.code));
    const aprof_frame *inner = &t->frames[t->nframes - 1];
    return ci && ci->name == inner->name && ci->file == inner->file;
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
    return 0;
}

/* A consistent stack: remember its outer frames that lie in the data-stack chunk (3.11+). */
static void remember_outer(pystack *ps, outer_memo *om, uint64_t tstate,
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
static uint32_t verify_outer(pystack *ps, const outer_memo *om, uint64_t tstate, const window *w)
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
        if (!fb || key_of_bytes(ps, om->addr[n], fb) != om->key[n])
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
        decode_result r = decode_frame(ps, fb, c, &f, &prev, &owner_obj, &role);
        if (r == DECODE_BAD)
            break;
        if (r == DECODE_OK) {
            ps->vframes[n] = f;
            ps->vkeys[n] = key_of_bytes(ps, c, fb);
            ps->vowners[n++] = owner_obj;
        }
        cur = c;
    }
    return n;
}

/* Read one thread's stack (its thread state already copied into ts) as a new thread of out. */
static int sample_thread(pystack *ps, uint64_t tstate, const uint8_t *ts, aprof_sample *out)
{
    const py_layout *L = ps->L;
    uint64_t thread_id = rd64(ts, L->tstate.thread_id);
    aprof_thread_sample *t = sample_add_thread(out, APROF_MAX_FRAMES);
    if (!t)
        return -1;
    ps->stats.threads_read++;
    t->py_thread_id = thread_id;
    t->tid = tid_of(ps, ts, thread_id);
    t->is_main = ps->main_thread_id && thread_id == ps->main_thread_id;
    t->name = ps->names.lookup ? ps->names.lookup(ps->names.ud, thread_id, t->tid, t->is_main)
                               : NULL;
    if (ps->states.read && !ps->in_second_read)
        t->state = thread_state_of_letter(ps->states.read(ps->states.ud, t->tid));
    uint64_t where = 0, frame = 0;
    window w;
    ps->callback_frame_addr = 0;
    ps->keys_usable = false;
    ps->verified_in_chunk = 0;
    if (locate_frames(ps, ts, tstate, &where, &frame, &w) != 0) {
        t->flags |= TSF_TORN;
    } else {
        loop_marks lm = {.handle_index = -1, .entry_index = -1};
        t->nframes = walk_frames(ps, frame, &w, t, &lm);
        reverse(t, ps->keys, ps->addrs);
        ps->callback_frame_addr = apply_loop_marks(t, &lm);
        /* Keys may be compared with another read's when the walk itself found a well-formed
         * chain through a _PyCFrame not popped meanwhile: each frame was real when copied. */
        bool below_top = innermost_below_top(&w, frame);
        ps->keys_usable = !(t->flags & TSF_TORN) && cframe_not_popped(&w) && below_top;
        /* The stack is trustworthy only if the innermost frame did not move while the one
         * snapshot syscall copied the frames. */
        bool consistent = w.again_ok && w.again == frame && cframe_still_live(&w) && below_top;
        if (consistent && w.code_again_addr == frame) {
            /* the code the innermost frame runs and its caller, as copied by the snapshot, must
             * still be them */
            uint8_t fb[FRAME_READ];
            if (read_frame(ps, &w, frame, fb, ps->frame_read) < 0 ||
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
            consistent = unchanged_since_walk(ps, &w, where, frame, t);
        if (!consistent)
            t->flags |= TSF_TORN;
        outer_memo *om = &ps->outer[(tstate >> 6) % PREFETCH_SLOTS];
        if (consistent)
            remember_outer(ps, om, tstate, t);
        else if (!ps->in_second_read)
            ps->verified_in_chunk = verify_outer(ps, om, tstate, &w);
        *w.pf = w.next; /* last: until here w.pf describes what prefetch_buf holds */
    }
    if (t->nframes == 0 && !(t->flags & TSF_TORN))
        t->flags |= TSF_NO_PYTHON;
    if (t->flags & TSF_TORN)
        ps->stats.torn++;
    return 0;
}

/* A thread whose first read was torn keeps the outer frames its two reads agree on (same frame
 * keys, compared from the outermost), or those verified in the first read's copy of the data
 * stack if more, then an <unreadable> mark. A frame found identical by two reads a few
 * microseconds apart, with all its callers, was on the stack then; what changed between them
 * (the innermost calls) is not guessed. */
static void keep_verified_part(pystack *ps, uint64_t tstate, aprof_thread_sample *t,
                               bool comparable, bool second_usable)
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
    if (v > m) {
        m = v;
        memcpy(t->frames, ps->vframes, m * sizeof(*t->frames));
        memcpy(t->owners, ps->vowners, m * sizeof(*t->owners));
    }
    if (m >= t->cap_frames)
        m = t->cap_frames - 1;
    t->nframes = m;
    t->frames[m] = (aprof_frame){ps->unreadable, "", 0, FRAME_MARK, 0};
    t->owners[m] = 0;
    t->nframes = m + 1;
    t->flags = (t->flags & ~(uint32_t)(TSF_NO_PYTHON | TSF_TRUNCATED)) | TSF_TORN | TSF_PARTIAL;
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
 * read's own copy of the data stack (verify_outer) may reach further. Returns the thread's
 * sample (flagged TSF_TORN | TSF_PARTIAL), NULL when out of memory. */
static aprof_thread_sample *read_again(pystack *ps, uint64_t tstate, size_t tsize,
                                       aprof_sample *out)
{
    aprof_thread_sample *t = &out->threads[out->nthreads - 1];
    bool first_usable = ps->keys_usable;
    ps->confirm_cb = 0;
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
        uint8_t state = t->state;                  /* ... and so do the run state */
        pid_t tid = t->tid;                        /* ... and the thread's identity (a thread */
        uint64_t py_id = t->py_thread_id;          /* ending meanwhile reads as tid 0) */
        const char *name = t->name;
        bool is_main = t->is_main;
        out->nthreads--;
        ps->stats.retried++;
        ps->in_second_read = true;
        int rc = sample_thread(ps, tstate, ts2, out);
        ps->in_second_read = false;
        ps->verified_in_chunk = verified;
        if (rc != 0)
            return NULL;
        t = &out->threads[out->nthreads - 1];
        t->state = state;
        t->tid = tid;
        t->py_thread_id = py_id;
        t->name = name;
        t->is_main = is_main;
        /* A readable second read of a busy loop names the callback running a few microseconds
         * after the sampled moment: the stall detector may use that (step_probe_update), the
         * profile may not. An idle one says nothing: the first read found the loop busy. */
        if (!(t->flags & TSF_TORN) && t->loop != LOOP_NONE && !t->loop_idle && t->callback_id) {
            ps->confirm_cb = t->callback_id;
            ps->confirm_loop = t->loop;
        }
    } else {
        first_usable = false;
        ps->keys_usable = false; /* no second read: nothing to compare with */
    }
    bool second_usable = ps->keys_usable;
    keep_verified_part(ps, tstate, t, first_usable && second_usable, second_usable);
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
static void step_probe_update(pystack *ps, uint64_t tstate, aprof_thread_sample *t)
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
        return; /* waiting in its selector when the read began (read_again) */
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
    /* FRAME_EXECUTING is 0 on every version: the step's coroutine is on the stack. Anything
     * else (suspended at an await, finished) means the step ended. */
    if (state == 0) {
        t->callback_id = sp->callback_id;
    } else {
        t->callback_id = 0;
        sp->state_addr = 0;
        probe_from_second_read(ps, t); /* which run followed, if the second read saw it */
    }
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

int pystack_sample(pystack *ps, aprof_sample *out, uint64_t now_ns)
{
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
    for (int guard = 0; tstate && guard < PYSTACK_MAX_THREADS; guard++) {
        uint8_t ts[TSTATE_READ];
        if (!mem_ptr_ok(tstate, true) ||
            mem_read_direct(ps->m, tstate, ts, tsize) != (ssize_t)tsize)
            break; /* the list changed under us; what we have is still good */
        if (count == 0 && !head_checked &&
            (rd64(ts, L->tstate.prev) != 0 || rd64(ts, L->tstate.interp) != ps->interp)) {
            /* Not the head any more: a thread was created, or the cached head exited. */
            head_checked = true;
            if (threads_head(ps, now_ns, true, &tstate) != 0)
                return -1;
            continue;
        }
        head_checked = true;
        if (sample_thread(ps, tstate, ts, out) != 0)
            return -1;
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
            t = read_again(ps, tstate, tsize, out);
        if (!t)
            return -1;
        step_probe_update(ps, tstate, t);
        if (holder != 1)
            out->threads[out->nthreads - 1].holds_gil = holder == tstate;
        count++;
        tstate = rd64(ts, L->tstate.next);
    }
    return count;
}
