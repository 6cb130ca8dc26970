/* _Py_DebugOffsets validation and layout override (see debug_offsets.h).
 *
 * The per-version descriptions below give, for each published uint64, its byte offset inside
 * _Py_DebugOffsets as read from the DWARF of that version's libpython (tests/unit/
 * test_debug_offsets.c checks every offset with tools/layoutgen), and the py_layout field it
 * overrides. Published values that aprof does not use have no entry.
 */
#include "debug_offsets.h"

#include <stdbool.h>
#include <string.h>

#define DBGOFF_MAX_OFFSET (1u << 24) /* no CPython struct is anywhere near 16 MiB */

/* 3.13.x (struct size 584). Section `size` members bound the offsets of their section. */
enum {
    RT_SIZE_13 = 24,
    IS_SIZE_13 = 48,
    TS_SIZE_13 = 152,
    IF_SIZE_13 = 224,
    CO_SIZE_13 = 272,
    PO_SIZE_13 = 352,
    TO_SIZE_13 = 368,
    TU_SIZE_13 = 400,
    LI_SIZE_13 = 424,
    DI_SIZE_13 = 448,
    LO_SIZE_13 = 488,
    BY_SIZE_13 = 512,
    UN_SIZE_13 = 536,
    GC_SIZE_13 = 568,
};

static const dbgoff_field fields_3_13[] = {
    { "runtime_state", "interpreters_head", 40, "runtime.interpreters_head", RT_SIZE_13 },
    { "interpreter_state", "next", 64, "interp.next", IS_SIZE_13 },
    { "interpreter_state", "threads_head", 72, "interp.threads_head", IS_SIZE_13 },
    { "interpreter_state", "imports_modules", 88, "interp.modules", IS_SIZE_13 },
    { "interpreter_state", "gc", 80, "interp.gc", IS_SIZE_13 },
    { "gc", "collecting", 576, "gc.collecting", GC_SIZE_13 },
    { "interpreter_state", "ceval_gil", 112, "interp.gil", IS_SIZE_13 },
    /* 3.13 publishes these from the start of PyInterpreterState (interp->_gil.locked); our
     * fields count from the _gil_runtime_state that interp->ceval.gil points to, so subtract
     * the published offset of interp->_gil (gil_runtime_state, at 120) */
    { "interpreter_state", "gil_runtime_state_locked", 136, "interp.gil_locked", IS_SIZE_13, 120 },
    { "interpreter_state", "gil_runtime_state_holder", 144, "interp.gil_last_holder", IS_SIZE_13,
      120 },
    { "thread_state", "prev", 160, "tstate.prev", TS_SIZE_13 },
    { "thread_state", "next", 168, "tstate.next", TS_SIZE_13 },
    { "thread_state", "interp", 176, "tstate.interp", TS_SIZE_13 },
    { "thread_state", "current_frame", 184, "tstate.frame", TS_SIZE_13 },
    { "thread_state", "thread_id", 192, "tstate.thread_id", TS_SIZE_13 },
    { "thread_state", "native_thread_id", 200, "tstate.native_thread_id", TS_SIZE_13 },
    { "thread_state", "datastack_chunk", 208, "tstate.datastack_chunk", TS_SIZE_13 },
    { "interpreter_frame", "previous", 232, "frame.previous", IF_SIZE_13 },
    { "interpreter_frame", "executable", 240, "frame.code", IF_SIZE_13 },
    { "interpreter_frame", "instr_ptr", 248, "frame.instr", IF_SIZE_13 },
    { "interpreter_frame", "localsplus", 256, "frame.localsplus", IF_SIZE_13 },
    { "interpreter_frame", "owner", 264, "frame.owner", IF_SIZE_13 },
    { "code_object", "filename", 280, "code.filename", CO_SIZE_13 },
    { "code_object", "name", 288, "code.name", CO_SIZE_13 },
    { "code_object", "qualname", 296, "code.qualname", CO_SIZE_13 },
    { "code_object", "linetable", 304, "code.linetable", CO_SIZE_13 },
    { "code_object", "firstlineno", 312, "code.firstlineno", CO_SIZE_13 },
    { "code_object", "co_code_adaptive", 344, "code.code_adaptive", CO_SIZE_13 },
    { "pyobject", "ob_type", 360, "object.type", PO_SIZE_13 },
    { "type_object", "tp_name", 376, "type.name", TO_SIZE_13 },
    { "type_object", "tp_flags", 392, "type.flags", TO_SIZE_13 },
    { "tuple_object", "ob_item", 408, "tuple.items", TU_SIZE_13 },
    { "tuple_object", "ob_size", 416, "tuple.size", TU_SIZE_13 },
    { "list_object", "ob_item", 432, "list.items", LI_SIZE_13 },
    { "list_object", "ob_size", 440, "list.size", LI_SIZE_13 },
    { "dict_object", "ma_keys", 456, "dict.keys", DI_SIZE_13 },
    { "dict_object", "ma_values", 464, "dict.values", DI_SIZE_13 },
    { "long_object", "lv_tag", 496, "longobj.size_or_tag", LO_SIZE_13 },
    { "long_object", "ob_digit", 504, "longobj.digits", LO_SIZE_13 },
    { "bytes_object", "ob_size", 520, "bytes.size", BY_SIZE_13 },
    { "bytes_object", "ob_sval", 528, "bytes.sval", BY_SIZE_13 },
    { "unicode_object", "state", 544, "unicode.state", UN_SIZE_13 },
    { "unicode_object", "length", 552, "unicode.length", UN_SIZE_13 },
    { "unicode_object", "asciiobject_size", 560, "unicode.ascii_data", UN_SIZE_13 },
};

/* 3.14.x (struct size 760): checked against the DWARF of Debian's python3.14d; its release
 * build publishes the same values for every section aprof reads. */
enum {
    RT_SIZE_14 = 24,
    IS_SIZE_14 = 48,
    TS_SIZE_14 = 176,
    IF_SIZE_14 = 248,
    CO_SIZE_14 = 312,
    PO_SIZE_14 = 400,
    TO_SIZE_14 = 416,
    TU_SIZE_14 = 448,
    LI_SIZE_14 = 472,
    SE_SIZE_14 = 496,
    DI_SIZE_14 = 528,
    LO_SIZE_14 = 568,
    BY_SIZE_14 = 592,
    UN_SIZE_14 = 616,
    GC_SIZE_14 = 648,
    GE_SIZE_14 = 664,
};

static const dbgoff_field fields_3_14[] = {
    { "runtime_state", "interpreters_head", 40, "runtime.interpreters_head", RT_SIZE_14 },
    { "interpreter_state", "next", 64, "interp.next", IS_SIZE_14 },
    { "interpreter_state", "threads_head", 72, "interp.threads_head", IS_SIZE_14 },
    { "interpreter_state", "threads_main", 80, "interp.threads_main", IS_SIZE_14 },
    { "interpreter_state", "imports_modules", 96, "interp.modules", IS_SIZE_14 },
    { "interpreter_state", "gc", 88, "interp.gc", IS_SIZE_14 },
    { "gc", "collecting", 656, "gc.collecting", GC_SIZE_14 },
    { "interpreter_state", "ceval_gil", 120, "interp.gil", IS_SIZE_14 },
    /* from the start of PyInterpreterState, like 3.13: made relative to interp->_gil */
    { "interpreter_state", "gil_runtime_state_locked", 144, "interp.gil_locked", IS_SIZE_14, 128 },
    { "interpreter_state", "gil_runtime_state_holder", 152, "interp.gil_last_holder", IS_SIZE_14,
      128 },
    { "thread_state", "prev", 184, "tstate.prev", TS_SIZE_14 },
    { "thread_state", "next", 192, "tstate.next", TS_SIZE_14 },
    { "thread_state", "interp", 200, "tstate.interp", TS_SIZE_14 },
    { "thread_state", "current_frame", 208, "tstate.frame", TS_SIZE_14 },
    { "thread_state", "thread_id", 216, "tstate.thread_id", TS_SIZE_14 },
    { "thread_state", "native_thread_id", 224, "tstate.native_thread_id", TS_SIZE_14 },
    { "thread_state", "datastack_chunk", 232, "tstate.datastack_chunk", TS_SIZE_14 },
    { "interpreter_frame", "previous", 256, "frame.previous", IF_SIZE_14 },
    { "interpreter_frame", "executable", 264, "frame.code", IF_SIZE_14 },
    { "interpreter_frame", "instr_ptr", 272, "frame.instr", IF_SIZE_14 },
    { "interpreter_frame", "localsplus", 280, "frame.localsplus", IF_SIZE_14 },
    { "interpreter_frame", "owner", 288, "frame.owner", IF_SIZE_14 },
    { "interpreter_frame", "stackpointer", 296, "frame.stackpointer", IF_SIZE_14 },
    { "code_object", "filename", 320, "code.filename", CO_SIZE_14 },
    { "code_object", "name", 328, "code.name", CO_SIZE_14 },
    { "code_object", "qualname", 336, "code.qualname", CO_SIZE_14 },
    { "code_object", "linetable", 344, "code.linetable", CO_SIZE_14 },
    { "code_object", "firstlineno", 352, "code.firstlineno", CO_SIZE_14 },
    { "code_object", "co_code_adaptive", 384, "code.code_adaptive", CO_SIZE_14 },
    { "pyobject", "ob_type", 408, "object.type", PO_SIZE_14 },
    { "type_object", "tp_name", 424, "type.name", TO_SIZE_14 },
    { "type_object", "tp_flags", 440, "type.flags", TO_SIZE_14 },
    { "tuple_object", "ob_item", 456, "tuple.items", TU_SIZE_14 },
    { "tuple_object", "ob_size", 464, "tuple.size", TU_SIZE_14 },
    { "list_object", "ob_item", 480, "list.items", LI_SIZE_14 },
    { "list_object", "ob_size", 488, "list.size", LI_SIZE_14 },
    { "set_object", "used", 504, "set.used", SE_SIZE_14 },
    { "set_object", "table", 512, "set.table", SE_SIZE_14 },
    { "set_object", "mask", 520, "set.mask", SE_SIZE_14 },
    { "dict_object", "ma_keys", 536, "dict.keys", DI_SIZE_14 },
    { "dict_object", "ma_values", 544, "dict.values", DI_SIZE_14 },
    { "long_object", "lv_tag", 576, "longobj.size_or_tag", LO_SIZE_14 },
    { "long_object", "ob_digit", 584, "longobj.digits", LO_SIZE_14 },
    { "bytes_object", "ob_size", 600, "bytes.size", BY_SIZE_14 },
    { "bytes_object", "ob_sval", 608, "bytes.sval", BY_SIZE_14 },
    { "unicode_object", "state", 624, "unicode.state", UN_SIZE_14 },
    { "unicode_object", "length", 632, "unicode.length", UN_SIZE_14 },
    { "unicode_object", "asciiobject_size", 640, "unicode.ascii_data", UN_SIZE_14 },
    { "gen_object", "gi_name", 672, "gen.name", GE_SIZE_14 },
    { "gen_object", "gi_iframe", 680, "gen.iframe", GE_SIZE_14 },
    { "gen_object", "gi_frame_state", 688, "gen.frame_state", GE_SIZE_14 },
};

/* 3.15.x (struct size 888): checked against the DWARF of Debian's python3.15d; the thread
 * state gains base_frame and last_profiled_frame(_seq), the type object tp_basicsize and
 * tp_dictoffset, and a heap type section appears. */
enum {
    RT_SIZE_15 = 24,
    IS_SIZE_15 = 48,
    TS_SIZE_15 = 176,
    IF_SIZE_15 = 312,
    CO_SIZE_15 = 376,
    PO_SIZE_15 = 464,
    TO_SIZE_15 = 480,
    HT_SIZE_15 = 528,
    TU_SIZE_15 = 544,
    LI_SIZE_15 = 568,
    SE_SIZE_15 = 592,
    DI_SIZE_15 = 624,
    LO_SIZE_15 = 664,
    BY_SIZE_15 = 688,
    UN_SIZE_15 = 712,
    GC_SIZE_15 = 752,
    GE_SIZE_15 = 792,
};

static const dbgoff_field fields_3_15[] = {
    { "runtime_state", "interpreters_head", 40, "runtime.interpreters_head", RT_SIZE_15 },
    { "interpreter_state", "next", 64, "interp.next", IS_SIZE_15 },
    { "interpreter_state", "threads_head", 72, "interp.threads_head", IS_SIZE_15 },
    { "interpreter_state", "threads_main", 80, "interp.threads_main", IS_SIZE_15 },
    { "interpreter_state", "imports_modules", 96, "interp.modules", IS_SIZE_15 },
    { "interpreter_state", "gc", 88, "interp.gc", IS_SIZE_15 },
    { "gc", "collecting", 760, "gc.collecting", GC_SIZE_15 },
    { "interpreter_state", "ceval_gil", 120, "interp.gil", IS_SIZE_15 },
    /* from the start of PyInterpreterState, like 3.13: made relative to interp->_gil */
    { "interpreter_state", "gil_runtime_state_locked", 144, "interp.gil_locked", IS_SIZE_15, 128 },
    { "interpreter_state", "gil_runtime_state_holder", 152, "interp.gil_last_holder", IS_SIZE_15,
      128 },
    { "thread_state", "prev", 184, "tstate.prev", TS_SIZE_15 },
    { "thread_state", "next", 192, "tstate.next", TS_SIZE_15 },
    { "thread_state", "interp", 200, "tstate.interp", TS_SIZE_15 },
    { "thread_state", "current_frame", 208, "tstate.frame", TS_SIZE_15 },
    { "thread_state", "thread_id", 240, "tstate.thread_id", TS_SIZE_15 },
    { "thread_state", "native_thread_id", 248, "tstate.native_thread_id", TS_SIZE_15 },
    { "thread_state", "datastack_chunk", 256, "tstate.datastack_chunk", TS_SIZE_15 },
    { "interpreter_frame", "previous", 320, "frame.previous", IF_SIZE_15 },
    { "interpreter_frame", "executable", 328, "frame.code", IF_SIZE_15 },
    { "interpreter_frame", "instr_ptr", 336, "frame.instr", IF_SIZE_15 },
    { "interpreter_frame", "localsplus", 344, "frame.localsplus", IF_SIZE_15 },
    { "interpreter_frame", "owner", 352, "frame.owner", IF_SIZE_15 },
    { "interpreter_frame", "stackpointer", 360, "frame.stackpointer", IF_SIZE_15 },
    { "code_object", "filename", 384, "code.filename", CO_SIZE_15 },
    { "code_object", "name", 392, "code.name", CO_SIZE_15 },
    { "code_object", "qualname", 400, "code.qualname", CO_SIZE_15 },
    { "code_object", "linetable", 408, "code.linetable", CO_SIZE_15 },
    { "code_object", "firstlineno", 416, "code.firstlineno", CO_SIZE_15 },
    { "code_object", "co_code_adaptive", 448, "code.code_adaptive", CO_SIZE_15 },
    { "pyobject", "ob_type", 472, "object.type", PO_SIZE_15 },
    { "type_object", "tp_name", 488, "type.name", TO_SIZE_15 },
    { "type_object", "tp_flags", 504, "type.flags", TO_SIZE_15 },
    { "type_object", "tp_basicsize", 512, "type.basicsize", TO_SIZE_15 },
    { "type_object", "tp_dictoffset", 520, "type.dictoffset", TO_SIZE_15 },
    { "heap_type_object", "ht_cached_keys", 536, "type.ht_cached_keys", HT_SIZE_15 },
    { "tuple_object", "ob_item", 552, "tuple.items", TU_SIZE_15 },
    { "tuple_object", "ob_size", 560, "tuple.size", TU_SIZE_15 },
    { "list_object", "ob_item", 576, "list.items", LI_SIZE_15 },
    { "list_object", "ob_size", 584, "list.size", LI_SIZE_15 },
    { "set_object", "used", 600, "set.used", SE_SIZE_15 },
    { "set_object", "table", 608, "set.table", SE_SIZE_15 },
    { "set_object", "mask", 616, "set.mask", SE_SIZE_15 },
    { "dict_object", "ma_keys", 632, "dict.keys", DI_SIZE_15 },
    { "dict_object", "ma_values", 640, "dict.values", DI_SIZE_15 },
    { "long_object", "lv_tag", 672, "longobj.size_or_tag", LO_SIZE_15 },
    { "long_object", "ob_digit", 680, "longobj.digits", LO_SIZE_15 },
    { "bytes_object", "ob_size", 696, "bytes.size", BY_SIZE_15 },
    { "bytes_object", "ob_sval", 704, "bytes.sval", BY_SIZE_15 },
    { "unicode_object", "state", 720, "unicode.state", UN_SIZE_15 },
    { "unicode_object", "length", 728, "unicode.length", UN_SIZE_15 },
    { "unicode_object", "asciiobject_size", 736, "unicode.ascii_data", UN_SIZE_15 },
    { "gen_object", "gi_name", 800, "gen.name", GE_SIZE_15 },
    { "gen_object", "gi_iframe", 808, "gen.iframe", GE_SIZE_15 },
    { "gen_object", "gi_frame_state", 816, "gen.frame_state", GE_SIZE_15 },
};

static const dbgoff_spec specs[] = {
    { 13, 584, fields_3_13, sizeof fields_3_13 / sizeof fields_3_13[0] },
    { 14, 760, fields_3_14, sizeof fields_3_14 / sizeof fields_3_14[0] },
    { 15, 888, fields_3_15, sizeof fields_3_15 / sizeof fields_3_15[0] },
};

const dbgoff_spec *debug_offsets_spec(unsigned minor)
{
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (specs[i].minor == minor)
            return &specs[i];
    return NULL;
}

const char *debug_offsets_strerror(dbgoff_status st)
{
    switch (st) {
    case DBGOFF_OK: return "ok";
    case DBGOFF_TOO_SHORT: return "too few bytes for _Py_DebugOffsets";
    case DBGOFF_BAD_COOKIE: return "no _Py_DebugOffsets cookie at _PyRuntime";
    case DBGOFF_VERSION_MISMATCH: return "_Py_DebugOffsets version does not match the interpreter";
    case DBGOFF_PRERELEASE: return "pre-release interpreter (debug offsets layout not final)";
    case DBGOFF_FREE_THREADED: return "free-threaded interpreter build is not supported";
    case DBGOFF_UNKNOWN_VERSION: return "no description of _Py_DebugOffsets for this version";
    case DBGOFF_IMPLAUSIBLE: return "_Py_DebugOffsets holds implausible offsets";
    }
    return "unknown debug offsets status";
}

static uint64_t get_u64(const unsigned char *b, size_t off)
{
    uint64_t v;
    memcpy(&v, b + off, sizeof v); /* unaligned-safe; x86-64 is little endian like the target */
    return v;
}

/* The published value of f in our convention; false when it cannot be one. */
static bool field_value(const unsigned char *b, const dbgoff_field *f, uint64_t *out)
{
    uint64_t v = get_u64(b, f->src);
    uint64_t bound = f->size_src ? get_u64(b, f->size_src) : DBGOFF_MAX_OFFSET;
    if (bound > DBGOFF_MAX_OFFSET || v >= bound)
        return false;
    if (f->base_src) {
        uint64_t base = get_u64(b, f->base_src);
        if (base > v)
            return false;
        v -= base;
    }
    *out = v;
    return true;
}

static const layout_field *find_layout_field(const char *key)
{
    for (size_t i = 0; i < layout_field_count; i++)
        if (strcmp(layout_fields[i].key, key) == 0)
            return &layout_fields[i];
    return NULL;
}

static dbgoff_status validate_header(const unsigned char *b, size_t len, unsigned major,
                                     unsigned minor, uint64_t expect_hex, dbgoff_result *res)
{
    if (len < 24)
        return DBGOFF_TOO_SHORT;
    if (memcmp(b, DEBUG_OFFSETS_COOKIE, 8) != 0)
        return DBGOFF_BAD_COOKIE;
    uint64_t v = get_u64(b, 8);
    res->version = v;
    if ((v >> 32) != 0 || ((v >> 24) & 0xff) != major || ((v >> 16) & 0xff) != minor)
        return DBGOFF_VERSION_MISMATCH;
    if (expect_hex && v != expect_hex)
        return DBGOFF_VERSION_MISMATCH;
    /* PY_RELEASE_LEVEL in bits 4-7: 0xF is final. Before that the struct may still change
     * from one pre-release to the next, so our description of it cannot be trusted. */
    if ((v & 0xF0) != 0xF0)
        return DBGOFF_PRERELEASE;
    if (get_u64(b, 16) != 0)
        return DBGOFF_FREE_THREADED;
    return DBGOFF_OK;
}

dbgoff_status debug_offsets_apply(const void *bytes, size_t len, unsigned major, unsigned minor,
                                  uint64_t expect_hex, const py_layout *builtin, py_layout *out,
                                  dbgoff_result *res)
{
    const unsigned char *b = bytes;
    memset(res, 0, sizeof *res);
    *out = *builtin;
    if (!b)
        return DBGOFF_TOO_SHORT;

    dbgoff_status st = validate_header(b, len, major, minor, expect_hex, res);
    if (st != DBGOFF_OK)
        return st;
    const dbgoff_spec *spec = debug_offsets_spec(minor);
    if (!spec)
        return DBGOFF_UNKNOWN_VERSION;
    if (len < spec->struct_size)
        return DBGOFF_TOO_SHORT;

    /* Check everything before changing anything: a half-applied layout is worse than none. */
    for (size_t i = 0; i < spec->nfields; i++) {
        const dbgoff_field *f = &spec->fields[i];
        uint64_t v;
        if (!field_value(b, f, &v))
            return DBGOFF_IMPLAUSIBLE;
        const layout_field *lf = f->layout_key ? find_layout_field(f->layout_key) : NULL;
        if (f->layout_key && (!lf || lf->kind != LF_OFFSET))
            return DBGOFF_UNKNOWN_VERSION; /* description out of sync with layouts.c */
    }

    for (size_t i = 0; i < spec->nfields; i++) {
        const dbgoff_field *f = &spec->fields[i];
        if (!f->layout_key)
            continue;
        const layout_field *lf = find_layout_field(f->layout_key);
        uint64_t v = 0;
        field_value(b, f, &v); /* checked above */
        loff published = (loff)v, have;
        memcpy(&have, (const unsigned char *)builtin + lf->offset, sizeof have);
        memcpy((unsigned char *)out + lf->offset, &published, sizeof published);
        res->applied++;
        if (have != published) {
            if (res->ndiffs < DEBUG_OFFSETS_MAX_DIFFS)
                res->diffs[res->ndiffs] = (dbgoff_diff){ f->layout_key, have, published };
            res->ndiffs++;
        }
    }
    return DBGOFF_OK;
}
