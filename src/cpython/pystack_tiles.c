/* The verified part of a torn stack, found from the bottom of the data stack (3.11+).
 *
 * A busy thread's innermost frame changes every few hundred nanoseconds, faster than one
 * process_vm_readv copies its stack: the frame pointer read with the copy is stale by the time
 * the frames it names are copied, and a walk from it breaks (a generator that has yielded
 * since, a frame that has returned). The frames near the bottom of the stack do not move.
 *
 * Frames of the thread's current data-stack chunk lie end to end ("tiles"): the first at the
 * start of the chunk, each next one where the last ends (its code's frame size). A tile called
 * from Python names the tile below as its caller; one called through C, or a coroutine's callee,
 * names a frame outside the chunk (a generator's frame, a C-stack entry frame) whose chain of
 * callers leads back to the tile below. So the stack can be walked upward from the bottom,
 * without the frame pointer.
 *
 * A tile is verified when both copies of the chunk (the torn read's, and the read that
 * confirms it a few microseconds later) hold the same frame there (same caller, same code),
 * wholly below the data stack's top as read before and after each copy. A verified tile whose
 * instruction is the same in both copies waited in a call all along: its callee tile is
 * checked next. One whose instruction moved was running: it is the last. Frames outside the
 * chunk between two verified tiles are taken from the second copy: the tile above them was on
 * the stack through both copies, so they were its callers all along.
 *
 * Before the second read, the first copy's tiles name the frames outside the chunk that the
 * second read must copy too (pystack_tiles_discover), so that it holds the whole verified
 * part in one syscall. */
#include "pystack_internal.h"

#include <stdlib.h>
#include <string.h>

#define TILE_HOPS 8    /* frames outside the chunk between two tiles */
#define DISCOVER_ROUNDS 3
#define DISCOVER_MAX 24

/* One copy of a thread's stack: its chunk copy (live below end) and frames outside the chunk
 * copied with it (two lists, frame_read bytes each, FRAME_READ apart). */
typedef struct tile_src {
    const uint8_t *win;
    uint64_t base, end;
    const uint64_t *xaddr;
    const uint8_t *xbuf;
    uint32_t nx;
    const uint64_t *yaddr;
    const uint8_t *ybuf;
    uint32_t ny;
} tile_src;

static const uint8_t *tile_bytes(const pystack *ps, const tile_src *s, uint64_t addr,
                                 uint64_t size)
{
    if (!s->win || addr < s->base || addr + size > s->end || size < ps->frame_read)
        return NULL;
    return s->win + (addr - s->base);
}

static const uint8_t *outside_bytes(const tile_src *s, uint64_t addr)
{
    if (s->win && addr >= s->base && addr < s->end)
        return NULL; /* a frame in the chunk is a tile, never a hop */
    for (uint32_t i = 0; i < s->nx; i++)
        if (s->xaddr[i] == addr)
            return s->xbuf + (size_t)i * FRAME_READ;
    for (uint32_t i = 0; i < s->ny; i++)
        if (s->yaddr[i] == addr)
            return s->ybuf + (size_t)i * FRAME_READ;
    return NULL;
}

/* The size of the tile at fb (its code's frame), 0 when unknown. */
static uint64_t tile_size(pystack *ps, const uint8_t *fb)
{
    uint64_t code = layout_ref_address(ps->L, rd64(fb, ps->L->frame.code));
    if (!mem_ptr_ok(code, true))
        return 0;
    code_info *ci = codecache_get(ps->cc, ps->m, code);
    return ci ? ci->frame_bytes : 0;
}

/* The tile at x when s holds all of it (*fb: its bytes): its size, else 0. */
static uint64_t whole_tile(pystack *ps, const tile_src *s, uint64_t x, const uint8_t **fb)
{
    *fb = tile_bytes(ps, s, x, ps->frame_read);
    uint64_t size = *fb ? tile_size(ps, *fb) : 0;
    return size && tile_bytes(ps, s, x, size) ? size : 0;
}

static uint64_t first_tile(const pystack *ps, const tile_src *s, uint64_t chunk)
{
    const py_layout *L = ps->L;
    if (!s->win || s->base != chunk || chunk + (uint64_t)L->chunk.data + 8 > s->end)
        return 0;
    /* the thread's first chunk skips its first slot (CPython's push_chunk) */
    uint64_t older = rd64(s->win, L->chunk.previous);
    if (older)
        return 0; /* frames below lie in older chunks: not walked from here */
    return chunk + (uint64_t)L->chunk.data + 8;
}

/* Follow a tile's caller through frames outside the chunk down to `parent`. Returns how many
 * hop frames (generator frames kept in hop_frames/hop_owners innermost first), -1 when the chain
 * does not reach parent in s (missing: the first address s lacks, or 0). */
static int follow_hops(pystack *ps, const tile_src *s, uint64_t from, uint64_t parent,
                       aprof_frame *hop_frames, uint64_t *hop_owners, uint64_t *missing)
{
    const py_layout *L = ps->L;
    int n = 0;
    uint64_t h = from;
    *missing = 0;
    for (int k = 0; k < TILE_HOPS; k++) {
        if (h == parent)
            return n;
        if (!mem_ptr_ok(h, true))
            return -1;
        const uint8_t *fb = outside_bytes(s, h);
        if (!fb) {
            if (!(s->win && h >= s->base && h < s->end))
                *missing = h;
            return -1;
        }
        int owner = L->frame.owner != LAYOUT_ABSENT ? fb[L->frame.owner] : OWNER_THREAD;
        uint64_t prev = rd64(fb, L->frame.previous);
        if (L->facts.entry == ENTRY_SHIM_FRAME && owner == L->facts.owner_cstack) {
            h = prev; /* a C-stack entry frame: a link only */
            continue;
        }
        if (owner != OWNER_GENERATOR)
            return -1; /* a thread's own frame outside its current chunk: not this walk's */
        uint64_t p2, owner_obj;
        uint8_t role;
        int32_t co_flags;
        aprof_frame f;
        decode_result r = pystack_decode_frame(ps, fb, h, &co_flags, &f, &p2, &owner_obj, &role);
        if (r == DECODE_BAD)
            return -1;
        if (r == DECODE_OK && hop_frames) {
            hop_frames[n] = f;
            hop_owners[n] = owner_obj;
            n++;
        }
        h = prev;
    }
    return -1;
}

static bool same_frame(const pystack *ps, const uint8_t *a, const uint8_t *b, bool instr)
{
    const py_layout *L = ps->L;
    return rd64(a, L->frame.code) == rd64(b, L->frame.code) &&
           rd64(a, L->frame.previous) == rd64(b, L->frame.previous) &&
           (!instr || rd64(a, L->frame.instr) == rd64(b, L->frame.instr));
}

static uint64_t live_end(const window *w)
{
    if (!w->len || !w->top || !w->top_again)
        return 0;
    uint64_t top = w->top < w->top_again ? w->top : w->top_again;
    return w->base + w->len < top ? w->base + w->len : top;
}

static bool tiles_supported(const pystack *ps)
{
    const py_layout *L = ps->L;
    return L->chunk.data != LAYOUT_ABSENT && L->chunk.previous != LAYOUT_ABSENT &&
           L->tstate.datastack_chunk != LAYOUT_ABSENT && L->frame.owner != LAYOUT_ABSENT;
}

/* End of a torn first read: keep its chunk copy (the second read copies into the other buffer)
 * and what it says about the innermost frame. */
void pystack_tiles_keep_first(pystack *ps, const window *w, uint64_t frame)
{
    first_copy *c = &ps->c1;
    c->valid = false;
    if (!tiles_supported(ps) || !w->chunk || !(c->end = live_end(w)))
        return;
    c->chunk = w->chunk;
    c->base = w->base;
    c->ptr = frame;
    /* 3.11/3.12 read the pointer through a _PyCFrame: it named the innermost frame only if
     * that _PyCFrame was still the thread's current one at the end of the copy */
    c->ptr_is_leaf = !w->cframe || (w->cframe_reread && w->cframe_again == w->cframe);
    c->nx = 0;
    for (uint32_t i = 0; i < w->pf_loaded && c->nx < PREFETCH_MAX; i++)
        c->xaddr[c->nx++] = w->pf->addr[i];
    uint8_t *tmp = ps->window1;
    ps->window1 = ps->window;
    ps->window = tmp; /* NULL at first: the next snapshot allocates it */
    size_t cap = ps->window1_cap;
    ps->window1_cap = ps->window_cap;
    ps->window_cap = cap;
    c->valid = true;
}

static void add_prefetch(prefetch_set *pf, uint64_t addr)
{
    for (uint32_t i = 0; i < pf->n; i++)
        if (pf->addr[i] == addr)
            return;
    if (pf->n < PREFETCH_MAX)
        pf->addr[pf->n++] = addr;
}

/* Before the second read of a torn thread: the frames outside the chunk that link the first
 * copy's tiles, read now when the first copy lacks them (a new task step's coroutine), and put
 * in the thread's prefetch set, so that the second read copies them with its chunk. */
void pystack_tiles_discover(pystack *ps, uint64_t tstate)
{
    const first_copy *c = &ps->c1;
    if (!c->valid)
        return;
    prefetch_set *pf = &ps->prefetch[(tstate >> 6) % PREFETCH_SLOTS];
    if (pf->tstate != tstate)
        return;
    uint64_t daddr[DISCOVER_MAX];
    uint8_t *dbuf = ps->late_buf; /* LATE_MAX * FRAME_READ, free between walks */
    uint32_t nd = 0;
    tile_src s = {ps->window1, c->base, c->end, c->xaddr, ps->prefetch_buf, c->nx,
                  daddr, dbuf, 0};
    for (int round = 0; round < DISCOVER_ROUNDS; round++) {
        uint64_t want[DISCOVER_MAX];
        uint32_t nwant = 0;
        uint64_t x = first_tile(ps, &s, c->chunk), parent = 0;
        for (uint32_t steps = 0; x && steps < APROF_MAX_FRAMES; steps++) {
            const uint8_t *fb;
            uint64_t size = whole_tile(ps, &s, x, &fb);
            if (!size)
                break;
            uint64_t prev = rd64(fb, ps->L->frame.previous), missing;
            if (steps > 0 && prev != parent &&
                follow_hops(ps, &s, prev, parent, NULL, NULL, &missing) < 0 && missing &&
                nwant < DISCOVER_MAX && nd + nwant < DISCOVER_MAX && nd + nwant < LATE_MAX)
                want[nwant++] = missing;
            parent = x;
            x += size;
        }
        if (!nwant)
            break;
        void *dsts[DISCOVER_MAX];
        size_t lens[DISCOVER_MAX];
        for (uint32_t i = 0; i < nwant; i++) {
            dsts[i] = dbuf + (size_t)(nd + i) * FRAME_READ;
            lens[i] = ps->frame_read;
        }
        ssize_t got = mem_readv(ps->m, want, dsts, lens, nwant);
        uint32_t ok = got > 0 ? (uint32_t)((size_t)got / ps->frame_read) : 0;
        for (uint32_t i = 0; i < ok && i < nwant; i++)
            daddr[nd++] = want[i];
        s.ny = nd;
        if (ok < nwant)
            break;
    }
    for (uint32_t i = 0; i < nd; i++)
        add_prefetch(pf, daddr[i]);
    /* the hop frames the first copy already held stay in the set (the walk put them in `next`
     * only if it reached them) */
    uint64_t x = first_tile(ps, &s, c->chunk), parent = 0;
    for (uint32_t steps = 0; x && steps < APROF_MAX_FRAMES; steps++) {
        const uint8_t *fb;
        uint64_t size = whole_tile(ps, &s, x, &fb);
        if (!size)
            break;
        uint64_t h = rd64(fb, ps->L->frame.previous);
        for (int k = 0; steps > 0 && h != parent && k < TILE_HOPS; k++) {
            const uint8_t *hb = outside_bytes(&s, h);
            if (!hb)
                break;
            add_prefetch(pf, h);
            h = rd64(hb, ps->L->frame.previous);
        }
        parent = x;
        x += size;
    }
}

/* In the second read of a torn thread (w: its snapshot, before its prefetch set is replaced):
 * the verified part of the stack, outermost first, into ps->tframes / ps->towners; returns its
 * length. ps->tiles_leaf says whether its last frame was the innermost one at the first read. */
uint32_t pystack_tiles_verify(pystack *ps, const window *w)
{
    const first_copy *c = &ps->c1;
    ps->tiles_leaf = false;
    if (!c->valid || w->chunk != c->chunk)
        return 0;
    uint64_t end2 = live_end(w);
    if (!end2)
        return 0;
    tile_src s1 = {ps->window1, c->base, c->end, NULL, NULL, 0, NULL, NULL, 0};
    tile_src s2 = {ps->window, w->base, end2, w->pf->addr, ps->prefetch_buf, w->pf_loaded,
                   &w->leaf, w->leaf_buf, w->leaf_ok ? 1u : 0u};
    aprof_frame hops[TILE_HOPS];
    uint64_t hop_owners[TILE_HOPS];
    uint32_t n = 0;
    uint64_t x = first_tile(ps, &s2, c->chunk), parent = 0, last = 0;
    if (x != first_tile(ps, &s1, c->chunk))
        return 0;
    for (uint32_t steps = 0; x && steps < APROF_MAX_FRAMES; steps++) {
        const uint8_t *f2 = tile_bytes(ps, &s2, x, ps->frame_read);
        const uint8_t *f1 = tile_bytes(ps, &s1, x, ps->frame_read);
        if (!f1 || !f2 || !same_frame(ps, f1, f2, false))
            break;
        uint64_t size = tile_size(ps, f2);
        if (!size || !tile_bytes(ps, &s1, x, size) || !tile_bytes(ps, &s2, x, size))
            break;
        uint64_t prev, owner_obj, missing;
        uint8_t role;
        int32_t co_flags;
        aprof_frame f;
        decode_result r = pystack_decode_frame(ps, f2, x, &co_flags, &f, &prev, &owner_obj, &role);
        if (r == DECODE_BAD || (owner_obj && r == DECODE_OK))
            break; /* a generator's frame is never a tile */
        if (r == DECODE_OK && role == ROLE_SELECT)
            return 0; /* waiting in its selector by then: it says nothing of the busy moment */
        int nh = 0;
        if (steps > 0 && prev != parent) {
            nh = follow_hops(ps, &s2, prev, parent, hops, hop_owners, &missing);
            if (nh < 0)
                break;
        }
        if (n + (uint32_t)nh + 2 > APROF_MAX_FRAMES)
            break;
        for (int k = nh - 1; k >= 0; k--) { /* hops were found innermost first */
            ps->tframes[n] = hops[k];
            ps->towners[n++] = hop_owners[k];
        }
        if (r == DECODE_OK) {
            ps->tframes[n] = f;
            ps->towners[n++] = owner_obj;
        } else if (r == DECODE_SKIP_SHIM && n > 0) {
            ps->tframes[n - 1].flags |= FRAMEF_ENTRY;
        }
        last = x;
        if (!same_frame(ps, f1, f2, true)) {
            /* it ran between the copies: its position is the first copy's, nearer the
             * sampled moment, and nothing above it is known */
            if (r == DECODE_OK) {
                uint64_t p1, o1;
                uint8_t role1;
                int32_t fl1;
                aprof_frame g;
                if (pystack_decode_frame(ps, f1, x, &fl1, &g, &p1, &o1, &role1) == DECODE_OK)
                    ps->tframes[n - 1] = g;
            }
            break;
        }
        parent = x;
        x += size;
    }
    /* the first read's pointer named the last verified tile: it was the innermost frame */
    ps->tiles_leaf = n > 0 && last && last == c->ptr && c->ptr_is_leaf;
    return n;
}
