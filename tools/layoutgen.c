/* layoutgen: read struct layouts from DWARF, the source of truth for src/cpython/layouts.c.
 *
 *   layoutgen FILE PATH...                       print "PATH VALUE" for each path
 *   layoutgen --check MINOR LIBPYTHON ASYNCIO_SO compare layout_table with DWARF (exit 1 if any
 *                                                field differs)
 *   layoutgen --emit MINOR LIBPYTHON ASYNCIO_SO  print the C initializer of the table for MINOR
 *   layoutgen --coverage [BINARY]                check that every member of py_layout (read from
 *                                                the DWARF of BINARY, default: this program) is
 *                                                described by layout_fields[] or is a known
 *                                                hand-written fact
 *
 * Path syntax:
 *   Type.member.member   byte offset of a (nested) member. Type is a struct/union tag or a
 *                        typedef name; anonymous struct/union members are searched through.
 *                        For a bitfield: the byte holding its lowest bit.
 *   bit:Type.member      bit index (0-7) of a bitfield's lowest bit within that byte
 *   sizeof:Type          size of a type; sizeof:Type.member is the size of a member
 *
 * Exit codes: 0 ok, 1 mismatches (--check/--coverage) or unresolved paths, 2 usage/IO error.
 */
#include "layouts.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef DW_TAG_atomic_type
#define DW_TAG_atomic_type 0x47
#endif

#define MAX_PATH_DEPTH 16
#define MAX_PEEL 64 /* typedef/qualifier chains are short; bound them anyway */

/* ---- a DWARF file with an index of its named top-level types ---- */

typedef struct type_entry {
    const char *name;
    Dwarf_Off off;
    bool is_tag; /* struct/union tag (complete definition) rather than typedef */
} type_entry;

typedef struct dwfile {
    const char *path;
    int fd;
    Dwarf *dw;
    type_entry *types;
    size_t ntypes, cap;
} dwfile;

static int cmp_entry(const void *a, const void *b)
{
    const type_entry *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return (int)y->is_tag - (int)x->is_tag; /* tags first */
}

static bool is_complete_aggregate(Dwarf_Die *die)
{
    int tag = dwarf_tag(die);
    if (tag != DW_TAG_structure_type && tag != DW_TAG_union_type)
        return false;
    return !dwarf_hasattr(die, DW_AT_declaration);
}

static int index_add(dwfile *f, const char *name, Dwarf_Off off, bool is_tag)
{
    if (f->ntypes == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 4096;
        type_entry *n = realloc(f->types, ncap * sizeof *n);
        if (!n)
            return -1;
        f->types = n;
        f->cap = ncap;
    }
    f->types[f->ntypes++] = (type_entry){ name, off, is_tag };
    return 0;
}

static void dwfile_close(dwfile *f)
{
    if (f->dw)
        dwarf_end(f->dw);
    if (f->fd >= 0)
        close(f->fd);
    free(f->types);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

static int dwfile_open(dwfile *f, const char *path)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        fprintf(stderr, "layoutgen: %s: %s\n", path, strerror(errno));
        return -1;
    }
    f->dw = dwarf_begin(f->fd, DWARF_C_READ);
    if (!f->dw) {
        fprintf(stderr, "layoutgen: %s: no DWARF (%s)\n", path, dwarf_errmsg(-1));
        close(f->fd);
        return -1;
    }
    Dwarf_CU *cu = NULL;
    Dwarf_Die cudie, subdie;
    uint8_t unit_type;
    Dwarf_Half version;
    while (dwarf_get_units(f->dw, cu, &cu, &version, &unit_type, &cudie, &subdie) == 0) {
        Dwarf_Die child;
        if (dwarf_child(&cudie, &child) != 0)
            continue;
        do {
            int tag = dwarf_tag(&child);
            const char *name = dwarf_diename(&child);
            if (!name)
                continue;
            bool tagged = is_complete_aggregate(&child);
            if ((tagged || tag == DW_TAG_typedef) &&
                index_add(f, name, dwarf_dieoffset(&child), tagged) != 0) {
                fprintf(stderr, "layoutgen: out of memory\n");
                dwfile_close(f);
                return -1;
            }
        } while (dwarf_siblingof(&child, &child) == 0);
    }
    if (f->ntypes == 0) {
        fprintf(stderr, "layoutgen: %s: no type information (stripped?)\n", path);
        dwfile_close(f);
        return -1;
    }
    qsort(f->types, f->ntypes, sizeof *f->types, cmp_entry);
    return 0;
}

/* First index entry named `name` (tags sort before typedefs). */
static const type_entry *index_find(const dwfile *f, const char *name)
{
    size_t lo = 0, hi = f->ntypes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(f->types[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < f->ntypes && strcmp(f->types[lo].name, name) == 0)
        return &f->types[lo];
    return NULL;
}

/* Follow typedefs and qualifiers; turn a struct declaration into its definition. */
static int peel(const dwfile *f, Dwarf_Die *die)
{
    for (int i = 0; i < MAX_PEEL; i++) {
        int tag = dwarf_tag(die);
        if (tag == DW_TAG_typedef || tag == DW_TAG_const_type || tag == DW_TAG_volatile_type ||
            tag == DW_TAG_restrict_type || tag == DW_TAG_atomic_type) {
            Dwarf_Attribute at;
            if (!dwarf_attr(die, DW_AT_type, &at) || !dwarf_formref_die(&at, die))
                return -1; /* typedef of void */
            continue;
        }
        if ((tag == DW_TAG_structure_type || tag == DW_TAG_union_type) &&
            dwarf_hasattr(die, DW_AT_declaration)) {
            const char *name = dwarf_diename(die);
            const type_entry *e = name ? index_find(f, name) : NULL;
            if (!e || !e->is_tag || !dwarf_offdie(f->dw, e->off, die))
                return -1;
        }
        return 0;
    }
    return -1;
}

static int resolve_type(const dwfile *f, const char *name, Dwarf_Die *out)
{
    const type_entry *e = index_find(f, name);
    if (!e || !dwarf_offdie(f->dw, e->off, out))
        return -1;
    return peel(f, out);
}

/* Bit offset of a member from the start of its parent. */
static int member_bit_offset(Dwarf_Die *m, uint64_t *bits)
{
    Dwarf_Attribute at;
    Dwarf_Word w;
    if (dwarf_attr(m, DW_AT_data_bit_offset, &at)) {
        if (dwarf_formudata(&at, &w) != 0)
            return -1;
        *bits = w;
        return 0;
    }
    uint64_t byte = 0;
    if (dwarf_attr(m, DW_AT_data_member_location, &at)) {
        if (dwarf_formudata(&at, &w) == 0) {
            byte = w;
        } else {
            Dwarf_Op *ops;
            size_t n;
            if (dwarf_getlocation(&at, &ops, &n) != 0 || n != 1 || ops[0].atom != DW_OP_plus_uconst)
                return -1;
            byte = ops[0].number;
        }
    } /* else a union member: offset 0 */
    uint64_t total = byte * 8;
    if (dwarf_attr(m, DW_AT_bit_offset, &at)) {
        /* DWARF 2/3 bitfield: counted from the most significant bit of the storage unit */
        Dwarf_Word bit_offset, bit_size, byte_size;
        Dwarf_Attribute a2, a3;
        if (dwarf_formudata(&at, &bit_offset) != 0 || !dwarf_attr(m, DW_AT_bit_size, &a2) ||
            dwarf_formudata(&a2, &bit_size) != 0 || !dwarf_attr(m, DW_AT_byte_size, &a3) ||
            dwarf_formudata(&a3, &byte_size) != 0)
            return -1;
        total += byte_size * 8 - bit_offset - bit_size;
    }
    *bits = total;
    return 0;
}

/* Find `name` among the members of aggregate `agg`, looking inside anonymous members. */
static int find_member(const dwfile *f, Dwarf_Die *agg, const char *name, uint64_t *bits,
                       Dwarf_Die *member, int depth)
{
    Dwarf_Die child;
    if (depth > MAX_PATH_DEPTH || dwarf_child(agg, &child) != 0)
        return -1;
    do {
        if (dwarf_tag(&child) != DW_TAG_member)
            continue;
        uint64_t off;
        if (member_bit_offset(&child, &off) != 0)
            continue;
        const char *mname = dwarf_diename(&child);
        if (mname && strcmp(mname, name) == 0) {
            *bits = off;
            *member = child;
            return 0;
        }
        if (!mname) {
            Dwarf_Attribute at;
            Dwarf_Die t;
            uint64_t inner;
            if (dwarf_attr(&child, DW_AT_type, &at) && dwarf_formref_die(&at, &t) &&
                peel(f, &t) == 0 && find_member(f, &t, name, &inner, member, depth + 1) == 0) {
                *bits = off + inner;
                return 0;
            }
        }
    } while (dwarf_siblingof(&child, &child) == 0);
    return -1;
}

typedef struct path_result {
    uint64_t bits;     /* bit offset from the start of the outermost type */
    bool bitfield;     /* the last member is a bitfield */
    Dwarf_Die type;    /* type of the last element (peeled) */
    bool has_type;
} path_result;

static int eval_members(const dwfile *f, const char *path, path_result *r)
{
    char buf[512];
    if (strlen(path) >= sizeof buf)
        return -1;
    strcpy(buf, path);
    char *save = NULL;
    char *tok = strtok_r(buf, ".", &save);
    if (!tok || resolve_type(f, tok, &r->type) != 0)
        return -1;
    r->has_type = true;
    r->bits = 0;
    r->bitfield = false;
    int depth = 0;
    while ((tok = strtok_r(NULL, ".", &save)) != NULL) {
        if (++depth > MAX_PATH_DEPTH || r->bitfield || !r->has_type)
            return -1;
        int tag = dwarf_tag(&r->type);
        if (tag != DW_TAG_structure_type && tag != DW_TAG_union_type)
            return -1;
        Dwarf_Die m;
        uint64_t bits;
        if (find_member(f, &r->type, tok, &bits, &m, 0) != 0)
            return -1;
        r->bits += bits;
        r->bitfield = dwarf_hasattr(&m, DW_AT_bit_size);
        Dwarf_Attribute at;
        r->has_type = dwarf_attr(&m, DW_AT_type, &at) && dwarf_formref_die(&at, &r->type) &&
                      peel(f, &r->type) == 0;
    }
    return 0;
}

/* Evaluate a path (see the syntax at the top). 0 on success. */
static int eval_path(const dwfile *f, const char *path, int64_t *value)
{
    path_result r;
    if (strncmp(path, "sizeof:", 7) == 0) {
        Dwarf_Word size;
        if (eval_members(f, path + 7, &r) != 0 || r.bitfield || !r.has_type ||
            dwarf_aggregate_size(&r.type, &size) != 0)
            return -1;
        *value = (int64_t)size;
        return 0;
    }
    if (strncmp(path, "bit:", 4) == 0) {
        if (eval_members(f, path + 4, &r) != 0 || !r.bitfield)
            return -1;
        *value = (int64_t)(r.bits % 8);
        return 0;
    }
    if (eval_members(f, path, &r) != 0)
        return -1;
    *value = (int64_t)(r.bits / 8);
    return 0;
}

/* ---- the built-in table ---- */

static int64_t absent_value(const layout_field *lf)
{
    switch (lf->kind) {
    case LF_SIZE8: return 0;
    case LF_BIT8: return LAYOUT_NOT_BITFIELD;
    default: return LAYOUT_ABSENT;
    }
}

static int64_t table_value(const py_layout *l, const layout_field *lf)
{
    const unsigned char *p = (const unsigned char *)l + lf->offset;
    if (lf->kind == LF_SIZE8 || lf->kind == LF_BIT8)
        return *p;
    loff v;
    memcpy(&v, p, sizeof v);
    return v;
}

static int parse_minor(const char *s, unsigned *minor)
{
    char *end;
    if (strncmp(s, "3.", 2) == 0)
        s += 2;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || v < APROF_PY_MIN_MINOR || v > APROF_PY_MAX_MINOR) {
        fprintf(stderr, "layoutgen: minor version %s not in %d..%d\n", s, APROF_PY_MIN_MINOR,
                APROF_PY_MAX_MINOR);
        return -1;
    }
    *minor = (unsigned)v;
    return 0;
}

static int open_pair(const char *lib, const char *aio, dwfile *fl, dwfile *fa)
{
    if (dwfile_open(fl, lib) != 0)
        return -1;
    if (dwfile_open(fa, aio) != 0) {
        dwfile_close(fl);
        return -1;
    }
    return 0;
}

static int cmd_check(unsigned minor, const char *lib, const char *aio)
{
    const py_layout *l = layout_for_version(3, minor);
    if (!l) {
        fprintf(stderr, "layoutgen: no built-in table for 3.%u\n", minor);
        return 2;
    }
    dwfile fl, fa;
    if (open_pair(lib, aio, &fl, &fa) != 0)
        return 2;
    int bad = 0, checked = 0;
    for (size_t i = 0; i < layout_field_count; i++) {
        const layout_field *lf = &layout_fields[i];
        const char *path = lf->dwarf[minor - APROF_PY_MIN_MINOR];
        int64_t have = table_value(l, lf), want;
        if (!path) {
            want = absent_value(lf);
        } else if (eval_path(lf->module ? &fa : &fl, path, &want) != 0) {
            printf("UNRESOLVED 3.%u %s: %s not found in %s\n", minor, lf->key, path,
                   lf->module ? aio : lib);
            bad++;
            continue;
        }
        checked++;
        if (have != want) {
            printf("MISMATCH 3.%u %s: table %" PRId64 ", DWARF %" PRId64 " (%s)\n", minor,
                   lf->key, have, want, path ? path : "absent");
            bad++;
        }
    }
    printf("3.%u: %d fields checked, %d mismatches\n", minor, checked, bad);
    dwfile_close(&fl);
    dwfile_close(&fa);
    return bad ? 1 : 0;
}

static const char *instr_kind_name(unsigned k)
{
    return k == INSTR_POINTER ? "INSTR_POINTER" : "INSTR_LASTI_INDEX";
}

static const char *linetable_kind_name(unsigned k)
{
    return k == LINETABLE_311 ? "LINETABLE_311" : "LINETABLE_310";
}

static const char *enum_name(unsigned v, const char *const *names, size_t n)
{
    return v < n ? names[v] : "0";
}

static void print_loff(const char *key, loff v)
{
    if (v == LAYOUT_ABSENT)
        printf(".%s = LAYOUT_ABSENT", key);
    else
        printf(".%s = %d", key, (int)v);
}

/* The hand-written facts of a table, as --emit prints them (copied from the current table). */
static void print_facts(const py_facts *f)
{
    static const char *const entry[] = {"ENTRY_EVERY_FRAME", "ENTRY_FLAG", "ENTRY_SHIM_FRAME"};
    static const char *const yf[] = {"YF_NEXT_OPCODE", "YF_RESUME_OPARG", "YF_FRAME_STATE"};
    static const char *const md[] = {"MANAGED_DICT_NONE", "MANAGED_DICT_VALUES_PTR",
                                     "MANAGED_DICT_TAGGED", "MANAGED_DICT_INLINE"};
    printf("    .facts = {.entry = %s, .owner_cstack = %u, .yf = %s, .yf_op = {%u, %u, %u},\n",
           enum_name(f->entry, entry, 3), f->owner_cstack, enum_name(f->yf, yf, 3), f->yf_op[0],
           f->yf_op[1], f->yf_op[2]);
    printf("              .fs_created = %d, .fs_suspended_yield_from = %d, .fs_completed = %d,\n",
           f->fs_created, f->fs_suspended_yield_from, f->fs_completed);
    printf("              .fs_executing = %d, .yf_slot_depth = %u,\n", f->fs_executing,
           f->yf_slot_depth);
    printf("              .managed_dict = %s, ", enum_name(f->managed_dict, md, 4));
    print_loff("managed_dict_offset", f->managed_dict_offset);
    printf(",\n              ");
    print_loff("managed_values_offset", f->managed_values_offset);
    printf(", .debug_offsets = %u", f->debug_offsets);
    if (f->code_tag_bits)
        printf(", .code_tag_bits = %u", f->code_tag_bits);
    if (f->task_registry)
        printf(",\n              .task_registry = TASK_REGISTRY_THREAD_LISTS");
    printf("},\n");
}

static int cmd_emit(unsigned minor, const char *lib, const char *aio)
{
    const py_layout *prev = layout_for_version(3, minor);
    dwfile fl, fa;
    if (open_pair(lib, aio, &fl, &fa) != 0)
        return 2;
    int bad = 0;
    printf("static const py_layout layout_3_%u = {\n", minor);
    printf("    .version = 0x03%02x, .name = \"3.%u\",\n", minor, minor);
    if (prev) {
        printf("    .instr_kind = %s, .linetable_kind = %s,\n", instr_kind_name(prev->instr_kind),
               linetable_kind_name(prev->linetable_kind));
        printf("    .longobj.tagged = %u, .dict.dk_size_is_log2 = %u,\n", prev->longobj.tagged,
               prev->dict.dk_size_is_log2);
        print_facts(&prev->facts);
    } else {
        printf("    /* TODO: instr_kind, linetable_kind, longobj.tagged, dict.dk_size_is_log2, "
               "facts */\n");
    }
    for (size_t i = 0; i < layout_field_count; i++) {
        const layout_field *lf = &layout_fields[i];
        const char *path = lf->dwarf[minor - APROF_PY_MIN_MINOR];
        int64_t v;
        if (!path) {
            printf("    .%s = %s,\n", lf->key,
                   lf->kind == LF_OFFSET ? "LAYOUT_ABSENT"
                   : lf->kind == LF_BIT8 ? "LAYOUT_NOT_BITFIELD" : "0");
        } else if (eval_path(lf->module ? &fa : &fl, path, &v) == 0) {
            printf("    .%s = %" PRId64 ",\n", lf->key, v);
        } else {
            printf("    .%s = LAYOUT_ABSENT, /* UNRESOLVED: %s */\n", lf->key, path);
            fprintf(stderr, "layoutgen: unresolved %s\n", path);
            bad++;
        }
    }
    printf("};\n");
    dwfile_close(&fl);
    dwfile_close(&fa);
    return bad ? 1 : 0;
}

/* ---- coverage: every leaf member of py_layout must be described ---- */

static const char *const hand_written[] = {
    "version", "name", "instr_kind", "linetable_kind", "longobj.tagged", "dict.dk_size_is_log2",
};

static bool described(const char *key, uint64_t off)
{
    if (strncmp(key, "facts.", 6) == 0)
        return true; /* py_facts: hand-written, checked by the runtime probe */
    for (size_t i = 0; i < sizeof hand_written / sizeof hand_written[0]; i++)
        if (strcmp(key, hand_written[i]) == 0)
            return true;
    for (size_t i = 0; i < layout_field_count; i++)
        if (strcmp(layout_fields[i].key, key) == 0)
            return layout_fields[i].offset == off;
    return false;
}

static int walk_leaves(const dwfile *f, Dwarf_Die *agg, const char *prefix, uint64_t base,
                       int depth, int *count)
{
    Dwarf_Die child;
    int bad = 0;
    if (depth > MAX_PATH_DEPTH || dwarf_child(agg, &child) != 0)
        return 1;
    do {
        if (dwarf_tag(&child) != DW_TAG_member)
            continue;
        const char *name = dwarf_diename(&child);
        uint64_t bits;
        if (!name || member_bit_offset(&child, &bits) != 0) {
            printf("COVERAGE: unnamed or unreadable member under '%s'\n", prefix);
            bad++;
            continue;
        }
        char key[256];
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", name);
        Dwarf_Attribute at;
        Dwarf_Die t;
        if (dwarf_attr(&child, DW_AT_type, &at) && dwarf_formref_die(&at, &t) &&
            peel(f, &t) == 0 && dwarf_tag(&t) == DW_TAG_structure_type) {
            bad += walk_leaves(f, &t, key, base + bits / 8, depth + 1, count);
            continue;
        }
        (*count)++;
        if (!described(key, base + bits / 8)) {
            printf("COVERAGE: py_layout.%s is not in layout_fields[]\n", key);
            bad++;
        }
    } while (dwarf_siblingof(&child, &child) == 0);
    return bad;
}

static int cmd_coverage(const char *binary)
{
    dwfile f;
    if (dwfile_open(&f, binary) != 0)
        return 2;
    Dwarf_Die t;
    if (resolve_type(&f, "py_layout", &t) != 0) {
        fprintf(stderr, "layoutgen: %s has no DWARF for py_layout (build with -g)\n", binary);
        dwfile_close(&f);
        return 2;
    }
    int count = 0;
    int bad = walk_leaves(&f, &t, "", 0, 0, &count);
    printf("coverage: %d members of py_layout, %zu described by layout_fields, %d problems\n",
           count, layout_field_count, bad);
    dwfile_close(&f);
    return bad ? 1 : 0;
}

static int cmd_query(const char *file, char **paths, int n)
{
    dwfile f;
    if (dwfile_open(&f, file) != 0)
        return 2;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int64_t v;
        if (eval_path(&f, paths[i], &v) == 0) {
            printf("%s %" PRId64 "\n", paths[i], v);
        } else {
            printf("%s ?\n", paths[i]);
            fprintf(stderr, "layoutgen: %s: cannot resolve %s\n", file, paths[i]);
            bad++;
        }
    }
    dwfile_close(&f);
    return bad ? 1 : 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: layoutgen FILE PATH...\n"
            "       layoutgen --check MINOR LIBPYTHON ASYNCIO_SO\n"
            "       layoutgen --emit MINOR LIBPYTHON ASYNCIO_SO\n"
            "       layoutgen --coverage [BINARY]\n"
            "paths: Type.member.member | bit:Type.member | sizeof:Type[.member]\n");
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--check") == 0 || strcmp(argv[1], "--emit") == 0)) {
        unsigned minor;
        if (argc != 5 || parse_minor(argv[2], &minor) != 0) {
            usage();
            return 2;
        }
        return argv[1][2] == 'c' ? cmd_check(minor, argv[3], argv[4])
                                 : cmd_emit(minor, argv[3], argv[4]);
    }
    if (argc >= 2 && strcmp(argv[1], "--coverage") == 0) {
        if (argc > 3) {
            usage();
            return 2;
        }
        return cmd_coverage(argc == 3 ? argv[2] : "/proc/self/exe");
    }
    if (argc < 3 || argv[1][0] == '-') {
        usage();
        return 2;
    }
    return cmd_query(argv[1], argv + 2, argc - 2);
}
