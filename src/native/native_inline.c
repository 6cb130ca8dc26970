#include "native_inline.h"

#include "grow.h"
#include "hash.h"
#include "hmap.h"

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
    Dwarf *dbg;
    Dwarf_Off cu;
    inline_range *r;
    size_t n;
} cu_entry;

struct inline_index {
    cu_entry *cus;
    size_t n, cap;
    hmap map; /* (dbg, cu) -> index in cus */
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
    if (!ix || hmap_init(&ix->map, 64) != 0) {
        free(ix);
        return NULL;
    }
    return ix;
}

void inline_index_clear(inline_index *ix)
{
    for (size_t i = 0; i < ix->n; i++)
        free(ix->cus[i].r);
    ix->n = 0;
    hmap_clear(&ix->map);
}

void inline_index_free(inline_index *ix)
{
    if (!ix)
        return;
    inline_index_clear(ix);
    free(ix->cus);
    hmap_free(&ix->map);
    free(ix);
}

typedef struct cu_query {
    const inline_index *ix;
    Dwarf *dbg;
    Dwarf_Off cu;
} cu_query;

static bool cu_is(const void *ctx, uint32_t idx)
{
    const cu_query *q = ctx;
    return q->ix->cus[idx].dbg == q->dbg && q->ix->cus[idx].cu == q->cu;
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
        if (!grow_array((void **)&b->r, &b->cap, b->n + 1, sizeof(*b->r), 256, MAX_RANGES)) {
            b->oom = true;
            return;
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
    uint32_t h = hash32(hash_combine((uint64_t)(uintptr_t)dbg, off));
    cu_query q = {ix, dbg, off};
    uint32_t idx = hmap_find(&ix->map, h, cu_is, &q);
    if (idx == HMAP_NONE) {
        if (!grow_array((void **)&ix->cus, &ix->cap, ix->n + 1, sizeof(*ix->cus), 64, SIZE_MAX))
            return false;
        if (hmap_insert(&ix->map, h, (uint32_t)ix->n) != 0)
            return false;
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
        idx = (uint32_t)ix->n++;
        ix->cus[idx] = (cu_entry){dbg, off, b.r, b.n};
    }
    const cu_entry *e = &ix->cus[idx];
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
