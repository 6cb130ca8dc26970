#include "codecache.h"

#include "hash.h"

#include "linetable.h"
#include "pyobj.h"
#include "redact.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINETABLE (1u << 20)
#define MAX_CODE_BYTES (1u << 26)

struct codecache {
    strtab *st;
    const py_layout *L;
    uint64_t code_type;
    code_info **slots; /* open addressing by address; NULL = empty, TOMB = deleted */
    size_t cap, count, used;
    bool redact_paths;
};

static code_info tombstone;
#define TOMB (&tombstone)

static size_t slot_of(uint64_t addr, size_t cap)
{
    return hash32(addr) & (cap - 1);
}

codecache *codecache_new(strtab *st, const py_layout *L, uint64_t code_type_addr)
{
    codecache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->st = st;
    c->L = L;
    c->code_type = code_type_addr;
    c->cap = 1024;
    c->slots = calloc(c->cap, sizeof(*c->slots));
    if (!c->slots) {
        free(c);
        return NULL;
    }
    return c;
}

static void free_info(code_info *ci)
{
    if (ci && ci != TOMB) {
        free(ci->linetable);
        free(ci);
    }
}

void codecache_free(codecache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->cap; i++)
        free_info(c->slots[i]);
    free(c->slots);
    free(c);
}

void codecache_redact_paths(codecache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->cap; i++) {
        if (c->slots[i] && c->slots[i] != TOMB)
            free_info(c->slots[i]);
        c->slots[i] = NULL;
    }
    c->count = c->used = 0;
    c->redact_paths = true;
}

static int rehash(codecache *c, size_t ncap)
{
    code_info **ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return -1;
    for (size_t i = 0; i < c->cap; i++) {
        code_info *ci = c->slots[i];
        if (!ci || ci == TOMB)
            continue;
        size_t j = slot_of(ci->addr, ncap);
        while (ns[j])
            j = (j + 1) & (ncap - 1);
        ns[j] = ci;
    }
    free(c->slots);
    c->slots = ns;
    c->cap = ncap;
    c->used = c->count;
    return 0;
}

static uint64_t fingerprint(const uint64_t *fields, size_t n)
{
    return hash_bytes(fields, n * sizeof(uint64_t));
}

/* Pointers whose identity says "same code object": filename, name, linetable. */
static int read_fingerprint_fields(const py_layout *L, const uint8_t *hdr, uint64_t out[3])
{
    memcpy(&out[0], hdr + L->code.filename, 8);
    memcpy(&out[1], hdr + (L->code.qualname != LAYOUT_ABSENT ? L->code.qualname : L->code.name), 8);
    memcpy(&out[2], hdr + L->code.linetable, 8);
    return 0;
}

static size_t header_size(const py_layout *L)
{
    loff fields[] = {L->code.filename, L->code.name, L->code.qualname, L->code.linetable,
                     L->code.firstlineno, L->code.flags, L->code.code, L->code.size,
                     L->code.firsttraceable, L->object.type, L->code.framesize,
                     L->code.nlocalsplus, L->code.stacksize};
    loff hi = 0;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (fields[i] > hi)
            hi = fields[i];
    return (size_t)hi + 8;
}

/* The data-stack slots a frame of this code takes (_PyFrame_NumSlotsForCodeObject): co_framesize
 * (3.12+), or the frame's fixed part (up to localsplus) plus co_nlocalsplus and co_stacksize
 * (3.11). 0 when unknown or implausible. */
#define MAX_FRAME_SLOTS (1u << 20)
static uint32_t frame_bytes_of(const py_layout *L, const uint8_t *hdr)
{
    int32_t slots = -1, a, b;
    if (L->code.framesize != LAYOUT_ABSENT) {
        memcpy(&slots, hdr + L->code.framesize, 4);
    } else if (L->code.nlocalsplus != LAYOUT_ABSENT && L->code.stacksize != LAYOUT_ABSENT) {
        memcpy(&a, hdr + L->code.nlocalsplus, 4);
        memcpy(&b, hdr + L->code.stacksize, 4);
        if (a >= 0 && b >= 0 && a < (int32_t)MAX_FRAME_SLOTS && b < (int32_t)MAX_FRAME_SLOTS)
            slots = (int32_t)(L->frame.localsplus / 8) + a + b;
    }
    return slots > 0 && (uint32_t)slots < MAX_FRAME_SLOTS ? (uint32_t)slots * 8 : 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* co_name on 3.10, co_qualname on 3.11+: "run_forever" or "BaseEventLoop.run_forever". */
static bool is_function(const char *name, const char *fn)
{
    size_t n = strlen(name), k = strlen(fn);
    return strcmp(name, fn) == 0 || (n > k && name[n - k - 1] == '.' && ends_with(name, fn));
}

static uint8_t code_role_of(const char *name, const char *file)
{
    if (ends_with(file, "asyncio/base_events.py")) {
        if (is_function(name, "run_forever"))
            return ROLE_RUN_FOREVER;
        if (is_function(name, "_run_once"))
            return ROLE_RUN_ONCE;
    }
    if (ends_with(file, "asyncio/events.py") && is_function(name, "_run"))
        return ROLE_HANDLE_RUN;
    if (ends_with(file, "/selectors.py") && ends_with(name, "select"))
        return ROLE_SELECT;
    if (ends_with(file, "asyncio/runners.py") || strstr(file, "/uvloop/"))
        return ROLE_LOOP_ENTRY;
    return ROLE_NONE;
}

static code_info *load(codecache *c, mem *m, uint64_t addr)
{
    const py_layout *L = c->L;
    uint8_t hdr[512];
    size_t hsz = header_size(L);
    if (hsz > sizeof(hdr) || mem_read(m, addr, hdr, hsz) != 0)
        return NULL;
    uint64_t type;
    memcpy(&type, hdr + L->object.type, 8);
    if (c->code_type && type != c->code_type)
        return NULL;
    uint64_t fp[3];
    read_fingerprint_fields(L, hdr, fp);
    code_info *ci = calloc(1, sizeof(*ci));
    if (!ci)
        return NULL;
    ci->addr = addr;
    ci->fingerprint = fingerprint(fp, 3);
    pyobj_ctx pc = {m, L};
    if (pyobj_str_intern(&pc, fp[0], c->st, &ci->file) < 0 ||
        pyobj_str_intern(&pc, fp[1], c->st, &ci->name) < 0)
        goto fail;
    if (c->redact_paths && ci->file) {
        char shown[4096];
        if (redact_path(ci->file, shown, sizeof(shown)) &&
            !(ci->file = strtab_intern_cstr(c->st, shown)))
            goto fail;
    }
    int32_t i32;
    memcpy(&i32, hdr + L->code.firstlineno, 4);
    ci->firstlineno = i32;
    memcpy(&i32, hdr + L->code.flags, 4);
    ci->flags = i32;
    size_t n = 0;
    if (pyobj_bytes(&pc, fp[2], NULL, 0, &n) < 0 || n > MAX_LINETABLE ||
        !(ci->linetable = malloc(n ? n : 1)) ||
        pyobj_bytes(&pc, fp[2], ci->linetable, n, NULL) != PYOBJ_OK)
        goto fail;
    ci->linetable_len = (uint32_t)n;
    ci->role = code_role_of(ci->name, ci->file);
    if (L->code.code_adaptive != LAYOUT_ABSENT) {
        int64_t units;
        memcpy(&units, hdr + L->code.size, 8);
        if (units < 0 || (uint64_t)units * 2 > MAX_CODE_BYTES)
            goto fail;
        ci->code_bytes = (uint32_t)units * 2;
        ci->code_start = addr + (uint64_t)L->code.code_adaptive;
        if (L->code.firsttraceable != LAYOUT_ABSENT) {
            memcpy(&i32, hdr + L->code.firsttraceable, 4);
            ci->firsttraceable = i32 > 0 ? (uint32_t)i32 : 0;
        }
        ci->frame_bytes = frame_bytes_of(L, hdr);
    } else {
        uint64_t co_code;
        int64_t size;
        memcpy(&co_code, hdr + L->code.code, 8);
        if (mem_read(m, co_code + (uint64_t)L->bytes.size, &size, 8) != 0 || size < 0 ||
            (uint64_t)size > MAX_CODE_BYTES)
            goto fail;
        ci->code_bytes = (uint32_t)size;
        ci->code_start = co_code + (uint64_t)L->bytes.sval;
    }
    for (int k = 0; k < CODE_LINE_CACHE; k++)
        ci->lc_off[k] = -1;
    return ci;
fail:
    free_info(ci);
    return NULL;
}

static void span_of(const py_layout *L, uint32_t *offset, uint32_t *len)
{
    loff f[] = {L->code.filename, L->code.name, L->code.qualname, L->code.linetable};
    loff lo = f[0], hi = f[0];
    for (size_t i = 1; i < sizeof(f) / sizeof(f[0]); i++) {
        if (f[i] == LAYOUT_ABSENT)
            continue;
        lo = f[i] < lo ? f[i] : lo;
        hi = f[i] > hi ? f[i] : hi;
    }
    *offset = (uint32_t)lo;
    *len = (uint32_t)(hi - lo + 8);
}

void codecache_fingerprint_span(const codecache *c, uint32_t *offset, uint32_t *len)
{
    span_of(c->L, offset, len);
}

bool codecache_confirm(codecache *c, code_info *ci, const uint8_t *span, uint64_t now_ns)
{
    uint32_t off, len;
    span_of(c->L, &off, &len);
    uint8_t hdr[512];
    if (off + len > sizeof(hdr))
        return false;
    memcpy(hdr + off, span, len); /* read_fingerprint_fields() takes header offsets */
    uint64_t fp[3];
    read_fingerprint_fields(c->L, hdr, fp);
    if (fingerprint(fp, 3) == ci->fingerprint) {
        ci->checked_ns = now_ns;
        return true;
    }
    codecache_invalidate(c, ci->addr);
    return false;
}

code_info *codecache_peek(codecache *c, uint64_t addr)
{
    size_t i = slot_of(addr, c->cap);
    for (size_t probe = 0; probe < c->cap; probe++, i = (i + 1) & (c->cap - 1)) {
        code_info *ci = c->slots[i];
        if (!ci)
            return NULL;
        if (ci != TOMB && ci->addr == addr)
            return ci;
    }
    return NULL;
}

code_info *codecache_relocate(codecache *c, mem *m, uint64_t code, uint8_t kind, uint64_t raw,
                              int64_t *off)
{
    codecache_invalidate(c, code);
    code_info *ci = codecache_get(c, m, code);
    return ci && code_info_offset(ci, kind, raw, off) ? ci : NULL;
}

code_info *codecache_get_fresh(codecache *c, mem *m, uint64_t addr, uint64_t now_ns)
{
    code_info *ci = codecache_get(c, m, addr);
    if (!ci)
        return NULL;
    if (ci->checked_ns == 0)
        ci->checked_ns = now_ns; /* just loaded */
    if (!code_info_needs_confirm(ci, now_ns))
        return ci;
    uint32_t off, len;
    span_of(c->L, &off, &len);
    uint8_t span[64];
    if (len > sizeof(span) || mem_read(m, addr + off, span, len) != 0)
        return NULL;
    if (codecache_confirm(c, ci, span, now_ns))
        return ci;
    ci = codecache_get(c, m, addr); /* the address holds another code object now */
    if (ci)
        ci->checked_ns = now_ns;
    return ci;
}

code_info *codecache_get(codecache *c, mem *m, uint64_t addr)
{
    if (!mem_ptr_ok(addr, true))
        return NULL;
    size_t i = slot_of(addr, c->cap);
    size_t first_tomb = SIZE_MAX;
    for (size_t probe = 0; probe < c->cap; probe++, i = (i + 1) & (c->cap - 1)) {
        code_info *ci = c->slots[i];
        if (!ci)
            break;
        if (ci == TOMB) {
            if (first_tomb == SIZE_MAX)
                first_tomb = i;
            continue;
        }
        if (ci->addr == addr)
            return ci;
    }
    code_info *ci = load(c, m, addr);
    if (!ci)
        return NULL;
    if (first_tomb != SIZE_MAX) {
        i = first_tomb;
    } else {
        c->used++;
    }
    c->slots[i] = ci;
    c->count++;
    if (c->used * 2 > c->cap && rehash(c, c->count * 4 > c->cap ? c->cap * 2 : c->cap) != 0) {
        /* Table stays valid, just fuller; next insert retries. */
    }
    /* rehash may have moved ci's slot, but ci itself is stable. */
    return ci;
}

void codecache_invalidate(codecache *c, uint64_t addr)
{
    size_t i = slot_of(addr, c->cap);
    for (size_t probe = 0; probe < c->cap; probe++, i = (i + 1) & (c->cap - 1)) {
        code_info *ci = c->slots[i];
        if (!ci)
            return;
        if (ci != TOMB && ci->addr == addr) {
            free_info(ci);
            c->slots[i] = TOMB;
            c->count--;
            return;
        }
    }
}

void codecache_revalidate(codecache *c, mem *m)
{
    enum { BATCH = 64 };
    const py_layout *L = c->L;
    size_t hsz = header_size(L);
    uint8_t (*hdrs)[512] = malloc(BATCH * sizeof(*hdrs));
    if (!hdrs || hsz > 512) {
        free(hdrs);
        return;
    }
    size_t idx[BATCH];
    uint64_t addrs[BATCH];
    void *dsts[BATCH];
    size_t lens[BATCH];
    size_t i = 0;
    while (i < c->cap) {
        size_t k = 0;
        for (; i < c->cap && k < BATCH; i++) {
            code_info *ci = c->slots[i];
            if (!ci || ci == TOMB)
                continue;
            idx[k] = i;
            addrs[k] = ci->addr;
            dsts[k] = hdrs[k];
            lens[k] = hsz;
            k++;
        }
        if (k == 0)
            break;
        ssize_t got = mem_readv(m, addrs, dsts, lens, k);
        if (got < 0)
            got = 0;
        for (size_t j = 0; j < k; j++) {
            code_info *ci = c->slots[idx[j]];
            bool ok = (size_t)got >= (j + 1) * hsz;
            if (ok) {
                uint64_t fp[3];
                read_fingerprint_fields(L, hdrs[j], fp);
                ok = fingerprint(fp, 3) == ci->fingerprint;
            }
            if (!ok) {
                free_info(ci);
                c->slots[idx[j]] = TOMB;
                c->count--;
            }
        }
        /* A failed range stops the kernel's copy: entries after it were not checked, and are
         * dropped above as a precaution; they are re-read on next use. */
    }
    free(hdrs);
}

bool code_info_offset(const code_info *ci, uint8_t kind, uint64_t raw, int64_t *off)
{
    *off = kind == INSTR_LASTI_INDEX ? (int64_t)(int32_t)(uint32_t)raw * 2
                                           : (int64_t)(raw - ci->code_start);
    /* -2: 3.11/3.12 prev_instr of a frame that has not run its first instruction */
    return *off >= -2 && *off < (int64_t)ci->code_bytes + 2;
}

aprof_frame code_info_frame(code_info *ci, uint8_t table_kind, int64_t off)
{
    int line = off < 0 ? ci->firstlineno : code_info_line(ci, table_kind, (int)off);
    return (aprof_frame){ci->name, ci->file, line < 0 ? 0 : line, FRAME_PYTHON, 0,
                         ci->firstlineno > 0 ? ci->firstlineno : 0};
}

int code_info_line(code_info *ci, uint8_t table_kind, int byte_offset)
{
    for (int k = 0; k < CODE_LINE_CACHE; k++)
        if (ci->lc_off[k] == byte_offset)
            return ci->lc_line[k];
    int line = linetable_line_for_offset(table_kind, ci->linetable, ci->linetable_len,
                                         ci->firstlineno, byte_offset);
    uint32_t slot = ci->lc_next++ % CODE_LINE_CACHE;
    ci->lc_off[slot] = byte_offset;
    ci->lc_line[slot] = line;
    return line;
}
