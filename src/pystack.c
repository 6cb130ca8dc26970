#include "pystack.h"

#include "pystr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_MAX (256u * 1024u)
#define TSTATE_READ 512u
#define FRAME_READ 128u

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
    if (!ps->cc)
        return -1;
    loff tfields[] = {ps->L->tstate.prev, ps->L->tstate.next, ps->L->tstate.interp,
                      ps->L->tstate.thread_id, ps->L->tstate.native_thread_id,
                      ps->L->tstate.frame, ps->L->tstate.datastack_chunk,
                      ps->L->tstate.datastack_top};
    if (max_offset(tfields, sizeof(tfields) / sizeof(tfields[0])) + 8 > TSTATE_READ)
        return -1;
    loff ffields[] = {ps->L->frame.previous, ps->L->frame.code, ps->L->frame.instr,
                      ps->L->frame.owner};
    if (max_offset(ffields, sizeof(ffields) / sizeof(ffields[0])) + 8 > FRAME_READ)
        return -1;
    return 0;
}

void pystack_free(pystack *ps)
{
    codecache_free(ps->cc);
    free(ps->window);
    ps->cc = NULL;
    ps->window = NULL;
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

/* Where the pointer to the thread's innermost frame is, and its value. 3.11/3.12 keep it in a
 * _PyCFrame on the C stack, reached through tstate->cframe. */
static int current_frame(pystack *ps, const uint8_t *ts, uint64_t *where, uint64_t *frame)
{
    const py_layout *L = ps->L;
    uint64_t p = rd64(ts, L->tstate.frame);
    if (L->tstate.cframe_current_frame == LAYOUT_ABSENT) {
        *where = 0;
        *frame = p;
        return 0;
    }
    if (!mem_ptr_ok(p, true))
        return -1;
    *where = p + (uint64_t)L->tstate.cframe_current_frame;
    return mem_read_u64(ps->m, *where, frame);
}

typedef struct window {
    uint64_t base;
    size_t len;
} window;

/* Copy the thread's current data-stack chunk (where its newest frames live) in one read. */
static window load_window(pystack *ps, const uint8_t *ts)
{
    window w = {0, 0};
    const py_layout *L = ps->L;
    if (L->tstate.datastack_chunk == LAYOUT_ABSENT)
        return w;
    uint64_t chunk = rd64(ts, L->tstate.datastack_chunk);
    uint64_t top = rd64(ts, L->tstate.datastack_top);
    if (!mem_ptr_ok(chunk, true) || top <= chunk)
        return w;
    uint64_t base = top - chunk > WINDOW_MAX ? top - WINDOW_MAX : chunk;
    size_t len = (size_t)(top - base);
    if (ps->window_cap < len) {
        uint8_t *nw = realloc(ps->window, WINDOW_MAX);
        if (!nw)
            return w;
        ps->window = nw;
        ps->window_cap = WINDOW_MAX;
    }
    ssize_t n = mem_read_direct(ps->m, base, ps->window, len);
    if (n > 0) {
        w.base = base;
        w.len = (size_t)n;
    }
    return w;
}

static int read_frame(pystack *ps, const window *w, uint64_t addr, uint8_t *out, size_t len)
{
    if (w->len && addr >= w->base && addr + len <= w->base + w->len) {
        memcpy(out, ps->window + (addr - w->base), len);
        return 0;
    }
    return mem_read(ps->m, addr, out, len);
}

/* Walk one thread's frame chain innermost-first into frames[]; returns the count, sets flags. */
static uint32_t walk_frames(pystack *ps, uint64_t frame, const window *w, aprof_frame *frames,
                            uint32_t cap, uint32_t *flags)
{
    const py_layout *L = ps->L;
    uint32_t n = 0;
    uint8_t fb[FRAME_READ];
    for (uint32_t steps = 0; frame; steps++) {
        if (steps >= APROF_MAX_FRAMES * 2 || n >= cap) {
            *flags |= TSF_TRUNCATED;
            break;
        }
        if (!mem_ptr_ok(frame, true) || read_frame(ps, w, frame, fb, FRAME_READ) != 0) {
            *flags |= TSF_TORN;
            break;
        }
        uint64_t prev = rd64(fb, L->frame.previous);
        uint64_t code = rd64(fb, L->frame.code);
        int owner = L->frame.owner != LAYOUT_ABSENT ? fb[L->frame.owner] : OWNER_THREAD;
        if (owner == OWNER_CSTACK && ps->rt->minor >= 12) {
            frame = prev;
            continue;
        }
        code_info *ci = codecache_get(ps->cc, ps->m, code);
        if (!ci) {
            *flags |= TSF_TORN;
            break;
        }
        int64_t off;
        if (ps->L->instr_kind == INSTR_LASTI_INDEX) {
            int32_t lasti;
            memcpy(&lasti, fb + L->frame.instr, 4);
            off = (int64_t)lasti * 2;
        } else {
            off = (int64_t)(rd64(fb, L->frame.instr) - ci->code_start);
        }
        if (off >= (int64_t)ci->code_bytes + 2 || off < -2) {
            /* The code object at this address is not the one cached (freed and reused), or
             * the frame is torn. Reload once. */
            codecache_invalidate(ps->cc, code);
            ci = codecache_get(ps->cc, ps->m, code);
            if (!ci || off >= (int64_t)ci->code_bytes + 2 || off < -2) {
                *flags |= TSF_TORN;
                break;
            }
        }
        /* 3.11+: a frame that has not reached its first traceable instruction is not yet
         * visible to Python either (it is being set up); CPython skips it too. */
        if (ps->L->instr_kind == INSTR_POINTER && owner != OWNER_GENERATOR &&
            off < (int64_t)ci->firsttraceable * 2) {
            frame = prev;
            continue;
        }
        int line = off < 0 ? ci->firstlineno : code_info_line(ci, L->linetable_kind, (int)off);
        frames[n++] = (aprof_frame){ci->name, ci->file, line < 0 ? 0 : line, FRAME_PYTHON};
        frame = prev;
    }
    return n;
}

static void reverse(aprof_frame *f, uint32_t n)
{
    for (uint32_t i = 0; i < n / 2; i++) {
        aprof_frame t = f[i];
        f[i] = f[n - 1 - i];
        f[n - 1 - i] = t;
    }
}

int pystack_sample(pystack *ps, aprof_sample *out)
{
    const py_layout *L = ps->L;
    mem_begin_sample(ps->m);
    if (!ps->interp) {
        ps->interp = pyruntime_first_interp(ps->rt, ps->m);
        if (!ps->interp)
            return -1;
        uint64_t mt = 0;
        if (L->runtime.main_thread != LAYOUT_ABSENT)
            mem_read_u64(ps->m, ps->rt->runtime_addr + (uint64_t)L->runtime.main_thread, &mt);
        ps->main_thread_id = mt;
    }
    uint64_t tstate;
    if (mem_read_u64(ps->m, ps->interp + (uint64_t)L->interp.threads_head, &tstate) != 0) {
        ps->interp = 0; /* reread next time */
        return -1;
    }
    int count = 0;
    for (int guard = 0; tstate && guard < PYSTACK_MAX_THREADS; guard++) {
        uint8_t ts[TSTATE_READ];
        if (!mem_ptr_ok(tstate, true) || mem_read(ps->m, tstate, ts, TSTATE_READ) != 0)
            break; /* the list changed under us; what we have is still good */
        uint64_t next = rd64(ts, L->tstate.next);
        uint64_t thread_id = rd64(ts, L->tstate.thread_id);
        aprof_thread_sample *t = sample_add_thread(out, APROF_MAX_FRAMES);
        if (!t)
            return -1;
        count++;
        ps->stats.threads_read++;
        t->py_thread_id = thread_id;
        t->tid = tid_of(ps, ts, thread_id);
        t->is_main = ps->main_thread_id && thread_id == ps->main_thread_id;
        t->name = ps->names.lookup ? ps->names.lookup(ps->names.ud, thread_id, t->tid) : NULL;
        uint64_t where = 0, frame = 0;
        if (current_frame(ps, ts, &where, &frame) != 0) {
            t->flags |= TSF_TORN;
        } else {
            window w = load_window(ps, ts);
            t->nframes = walk_frames(ps, frame, &w, t->frames, t->cap_frames, &t->flags);
            reverse(t->frames, t->nframes);
            /* The stack is trustworthy only if the innermost frame did not move meanwhile. */
            uint64_t again = 0;
            int rc = where ? mem_read_direct(ps->m, where, &again, 8) == 8 ? 0 : -1
                           : mem_read_direct(ps->m, tstate + (uint64_t)L->tstate.frame, &again,
                                             8) == 8 ? 0 : -1;
            if (rc != 0 || again != frame)
                t->flags |= TSF_TORN;
        }
        if (t->nframes == 0 && !(t->flags & TSF_TORN))
            t->flags |= TSF_NO_PYTHON;
        if (t->flags & TSF_TORN)
            ps->stats.torn++;
        tstate = next;
    }
    return count;
}
