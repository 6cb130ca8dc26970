#include "native_inline.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
#define MAX_RANGES (1u << 22)

typedef struct inline_range {
    Dwarf_Addr lo, hi;   /* CU addresses (without the module's bias) */
    const char *file;
    int line;
} inline_range;

typedef struct cu_entry {
    Dwarf *dbg;          /* NULL: empty slot */
    Dwarf_Off cu;
    inline_range *r;
    size_t n;
} cu_entry;

struct inline_index {
    cu_entry *slots;
    size_t cap, used;
};

typedef struct builder {
    inline_range *r;
    size_t n, cap;
    Dwarf_Files *files;
    size_t nfiles;
    bool oom;
} builder;

inline_index *inline_index_new(void)
{
    inline_index *ix = calloc(1, sizeof(*ix));
    if (!ix)
        return NULL;
    ix->cap = 64;
    ix->slots = calloc(ix->cap, sizeof(*ix->slots));
    if (!ix->slots) {
        free(ix);
        return NULL;
    }
    return ix;
}

void inline_index_clear(inline_index *ix)
{
    for (size_t i = 0; i < ix->cap; i++)
        free(ix->slots[i].r);
    memset(ix->slots, 0, ix->cap * sizeof(*ix->slots));
    ix->used = 0;
}

void inline_index_free(inline_index *ix)
{
    if (!ix)
        return;
    inline_index_clear(ix);
    free(ix->slots);
    free(ix);
}

static size_t slot_hash(const inline_index *ix, Dwarf *dbg, Dwarf_Off cu)
{
    uint64_t k = ((uint64_t)(uintptr_t)dbg * 0x9e3779b97f4a7c15ull) ^ (cu * 0xc2b2ae3d27d4eb4full);
    return (size_t)(k >> 17) & (ix->cap - 1);
}

static cu_entry *find_slot(inline_index *ix, Dwarf *dbg, Dwarf_Off cu)
{
    size_t i = slot_hash(ix, dbg, cu);
    while (ix->slots[i].dbg && !(ix->slots[i].dbg == dbg && ix->slots[i].cu == cu))
        i = (i + 1) & (ix->cap - 1);
    return &ix->slots[i];
}

static int grow(inline_index *ix)
{
    size_t cap = ix->cap * 2;
    cu_entry *old = ix->slots, *ns = calloc(cap, sizeof(*ns));
    if (!ns)
        return -1;
    size_t oldcap = ix->cap;
    ix->slots = ns;
    ix->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].dbg)
            *find_slot(ix, old[i].dbg, old[i].cu) = old[i];
    free(old);
    return 0;
}

static void add_ranges(builder *b, Dwarf_Die *die)
{
    Dwarf_Attribute attr;
    Dwarf_Word cf = 0, cl = 0;
    if (dwarf_formudata(dwarf_attr(die, DW_AT_call_file, &attr), &cf) != 0 ||
        dwarf_formudata(dwarf_attr(die, DW_AT_call_line, &attr), &cl) != 0 || cl == 0 ||
        cl >= INT32_MAX || !b->files || cf >= b->nfiles)
        return;
    const char *file = dwarf_filesrc(b->files, cf, NULL, NULL);
    if (!file)
        return;
    Dwarf_Addr base = 0, lo = 0, hi = 0;
    ptrdiff_t off = 0;
    while ((off = dwarf_ranges(die, off, &base, &lo, &hi)) > 0) {
        if (hi <= lo)
            continue;
        if (b->n == b->cap) {
            size_t cap = b->cap ? b->cap * 2 : 256;
            inline_range *nr = cap <= MAX_RANGES ? realloc(b->r, cap * sizeof(*nr)) : NULL;
            if (!nr) {
                b->oom = true;
                return;
            }
            b->r = nr;
            b->cap = cap;
        }
        b->r[b->n++] = (inline_range){lo, hi, file, (int)cl};
    }
}

/* Collect the outermost inlined calls below die (inside a function when in_function). */
static void walk(builder *b, Dwarf_Die *die, bool in_function, int depth)
{
    Dwarf_Die child;
    if (depth > MAX_DEPTH || b->oom || dwarf_child(die, &child) != 0)
        return;
    do {
        switch (dwarf_tag(&child)) {
        case DW_TAG_inlined_subroutine:
            if (in_function)
                add_ranges(b, &child); /* outermost: what is inside it is its own business */
            break;
        case DW_TAG_subprogram:
            walk(b, &child, true, depth + 1);
            break;
        case DW_TAG_lexical_block:
        case DW_TAG_namespace:
        case DW_TAG_class_type:
        case DW_TAG_structure_type:
            walk(b, &child, in_function, depth + 1);
            break;
        default:
            break;
        }
    } while (!b->oom && dwarf_siblingof(&child, &child) == 0);
}

static int by_lo(const void *a, const void *b)
{
    const inline_range *x = a, *y = b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

bool inline_index_call_site(inline_index *ix, Dwfl_Module *mod, Dwarf_Addr addr,
                            const char **file, int *line)
{
    Dwarf_Addr bias = 0;
    Dwarf_Die *cu = dwfl_module_addrdie(mod, addr, &bias);
    if (!cu)
        return false;
    Dwarf *dbg = dwarf_cu_getdwarf(cu->cu);
    Dwarf_Off off = dwarf_dieoffset(cu);
    if (!dbg)
        return false;
    if ((ix->used + 1) * 4 > ix->cap * 3 && grow(ix) != 0)
        return false;
    cu_entry *e = find_slot(ix, dbg, off);
    if (!e->dbg) {
        builder b = {0};
        if (dwarf_getsrcfiles(cu, &b.files, &b.nfiles) != 0)
            b.files = NULL;
        walk(&b, cu, false, 0);
        if (b.oom) {
            free(b.r);
            b.r = NULL;
            b.n = 0;
        }
        if (b.n)
            qsort(b.r, b.n, sizeof(*b.r), by_lo);
        *e = (cu_entry){dbg, off, b.r, b.n};
        ix->used++;
    }
    Dwarf_Addr pc = addr - bias;
    size_t lo = 0, hi = e->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e->r[mid].lo <= pc)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || pc >= e->r[lo - 1].hi)
        return false;
    *file = e->r[lo - 1].file;
    *line = e->r[lo - 1].line;
    return true;
}
