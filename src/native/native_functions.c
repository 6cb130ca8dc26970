/* Function ranges from .eh_frame_hdr and .eh_frame (see native_functions.h). */
#include "native_functions.h"

#include <dwarf.h>
#include <gelf.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEGMENTS 16
#define MAX_FDES (1u << 22)        /* far beyond any real module */
#define MAX_SCAN_BYTES (4u << 20)  /* one function's code scanned for jumps */

typedef struct segment {
    uint64_t vaddr, filesz, offset;
    const uint8_t *bytes; /* file contents, fetched on first use; NULL until then */
    bool fetched;
} segment;

struct native_functions {
    Elf *elf;
    segment seg[MAX_SEGMENTS];
    size_t nseg;
    fn_range *fns; /* sorted by start */
    size_t n;
};

static uint32_t u32_at(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* n bytes of the file at virtual address vaddr, or NULL when they are not all in one loaded
 * segment's file image. */
static const uint8_t *bytes_at(native_functions *f, uint64_t vaddr, uint64_t n)
{
    for (size_t i = 0; i < f->nseg; i++) {
        segment *s = &f->seg[i];
        if (vaddr < s->vaddr || vaddr - s->vaddr > s->filesz || n > s->filesz - (vaddr - s->vaddr))
            continue;
        if (!s->fetched) {
            Elf_Data *d = elf_getdata_rawchunk(f->elf, (int64_t)s->offset, s->filesz, ELF_T_BYTE);
            s->bytes = d && d->d_buf && d->d_size == s->filesz ? d->d_buf : NULL;
            s->fetched = true;
        }
        return s->bytes ? s->bytes + (vaddr - s->vaddr) : NULL;
    }
    return NULL;
}

/* The .eh_frame_hdr search table: (initial location, FDE address) pairs, both datarel sdata4
 * from the header's own address. */
static bool load_table(native_functions *f, const GElf_Phdr *ph)
{
    const uint8_t *h = bytes_at(f, ph->p_vaddr, ph->p_filesz);
    if (!h || ph->p_filesz < 12 || h[0] != 1 || h[3] != (DW_EH_PE_datarel | DW_EH_PE_sdata4))
        return false;
    /* eh_frame_ptr and fde_count: only the usual 4-byte encodings */
    if ((h[1] & 0x0f) != DW_EH_PE_sdata4 || (h[2] & 0x0f) != DW_EH_PE_udata4)
        return false;
    uint64_t count = u32_at(h + 8);
    if (count == 0 || count > MAX_FDES || 12 + count * 8 > ph->p_filesz)
        return false;
    f->fns = malloc(count * sizeof *f->fns);
    if (!f->fns)
        return false;
    const uint8_t *t = h + 12;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t start = ph->p_vaddr + (uint64_t)(int64_t)(int32_t)u32_at(t + i * 8);
        uint64_t fde = ph->p_vaddr + (uint64_t)(int64_t)(int32_t)u32_at(t + i * 8 + 4);
        /* length, CIE pointer, pc_begin (pcrel sdata4), pc_range (udata4): GCC's and clang's
         * encoding on x86-64. An FDE whose pc_begin does not decode to the table's start has
         * another encoding: left out rather than guessed. */
        const uint8_t *p = bytes_at(f, fde, 16);
        if (!p || u32_at(p) == 0xffffffffu || u32_at(p) < 12)
            continue;
        uint64_t begin = fde + 8 + (uint64_t)(int64_t)(int32_t)u32_at(p + 8);
        uint64_t range = u32_at(p + 12);
        if (begin != start || range == 0)
            continue;
        if (f->n && start < f->fns[f->n - 1].start)
            continue; /* the table must be sorted; an entry out of order is dropped */
        f->fns[f->n++] = (fn_range){start, start + range};
    }
    return f->n > 0;
}

native_functions *native_functions_load(Elf *elf)
{
    size_t nph = 0;
    if (!elf || elf_getphdrnum(elf, &nph) != 0)
        return NULL;
    native_functions *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->elf = elf;
    GElf_Phdr hdr = {0};
    bool have_hdr = false;
    for (size_t i = 0; i < nph; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(elf, (int)i, &ph))
            continue;
        if (ph.p_type == PT_LOAD && f->nseg < MAX_SEGMENTS && ph.p_filesz > 0)
            f->seg[f->nseg++] = (segment){ph.p_vaddr, ph.p_filesz, ph.p_offset, NULL, false};
        else if (ph.p_type == PT_GNU_EH_FRAME) {
            hdr = ph;
            have_hdr = true;
        }
    }
    if (!have_hdr || !load_table(f, &hdr)) {
        native_functions_free(f);
        return NULL;
    }
    return f;
}

void native_functions_free(native_functions *f)
{
    if (!f)
        return;
    free(f->fns);
    free(f);
}

static const fn_range *find(const native_functions *f, uint64_t vaddr)
{
    size_t lo = 0, hi = f->n;
    while (lo < hi) { /* first range starting after vaddr */
        size_t mid = lo + (hi - lo) / 2;
        if (f->fns[mid].start <= vaddr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const fn_range *r = &f->fns[lo - 1];
    return vaddr < r->end ? r : NULL;
}

bool native_functions_find(const native_functions *f, uint64_t vaddr, fn_range *out)
{
    const fn_range *r = f ? find(f, vaddr) : NULL;
    if (r)
        *out = *r;
    return r != NULL;
}

/* Call fn(target, arg) for every 32-bit relative jump (jmp rel32, jcc rel32) the bytes of
 * range r seem to hold. A plain byte scan: an opcode byte inside another instruction can look
 * like one, which is why callers ask for jumps both ways. Stops when fn returns true. */
static bool scan_jumps(native_functions *f, const fn_range *r,
                       bool (*fn)(uint64_t target, void *arg), void *arg)
{
    uint64_t len = r->end - r->start;
    const uint8_t *code = len <= MAX_SCAN_BYTES ? bytes_at(f, r->start, len) : NULL;
    if (!code)
        return false;
    for (uint64_t i = 0; i + 5 <= len; i++) {
        uint64_t next, rel_at;
        if (code[i] == 0xe9) {
            next = i + 5;
            rel_at = i + 1;
        } else if (code[i] == 0x0f && i + 6 <= len && (code[i + 1] & 0xf0) == 0x80) {
            next = i + 6;
            rel_at = i + 2;
        } else {
            continue;
        }
        uint64_t target = r->start + next + (uint64_t)(int64_t)(int32_t)u32_at(code + rel_at);
        if (fn(target, arg))
            return true;
    }
    return false;
}

typedef struct back_jump {
    const fn_range *entry;
} back_jump;

static bool into_middle_of_entry(uint64_t target, void *arg)
{
    const back_jump *b = arg;
    return target > b->entry->start && target < b->entry->end;
}

typedef struct part_search {
    native_functions *f;
    const fn_range *entry;
    fn_range *out;
    size_t n, max;
} part_search;

static bool consider_part(uint64_t target, void *arg)
{
    part_search *s = arg;
    if (target >= s->entry->start && target < s->entry->end)
        return false; /* a jump within the entry part */
    const fn_range *r = find(s->f, target);
    if (!r || target == r->start)
        return false; /* outside known code, or a tail call to a function's entry */
    for (size_t i = 0; i < s->n; i++)
        if (s->out[i].start == r->start)
            return false;
    back_jump b = {s->entry};
    if (!scan_jumps(s->f, r, into_middle_of_entry, &b))
        return false;
    s->out[s->n++] = *r;
    return s->n >= s->max;
}

size_t native_functions_split_parts(native_functions *f, uint64_t entry, fn_range *out,
                                    size_t max)
{
    const fn_range *e = f ? find(f, entry) : NULL;
    if (!e || max == 0)
        return 0;
    part_search s = {f, e, out, 0, max};
    scan_jumps(s.f, e, consider_part, &s);
    return s.n;
}
