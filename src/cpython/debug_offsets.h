/* CPython 3.13+ _Py_DebugOffsets: the offsets the interpreter publishes about itself.
 *
 * From 3.13 on, _PyRuntime begins with a _Py_DebugOffsets struct: char cookie[8] = "xdebugpy",
 * uint64 version (PY_VERSION_HEX), uint64 free_threaded, then one table of uint64 offsets per
 * structure (runtime state, interpreter, thread, frame, code, ...). The caller reads
 * DEBUG_OFFSETS_READ_SIZE bytes at &_PyRuntime and hands them here; we validate them and
 * override the matching fields of a copy of the built-in layout, so a target whose layout
 * differs from our table (a later micro release, a vendor patch) is still read correctly.
 *
 * The layout of _Py_DebugOffsets itself changes between minor versions: it is described per
 * version as data in debug_offsets.c (one table each for 3.13, 3.14 and 3.15).
 */
#ifndef APROF_DEBUG_OFFSETS_H
#define APROF_DEBUG_OFFSETS_H

#include "layouts.h"

#include <stddef.h>
#include <stdint.h>

/* Bytes to read from &_PyRuntime: at least the size of every known _Py_DebugOffsets. */
#define DEBUG_OFFSETS_READ_SIZE 1024u

#define DEBUG_OFFSETS_COOKIE "xdebugpy"
#define DEBUG_OFFSETS_MAX_DIFFS 32u

typedef enum dbgoff_status {
    DBGOFF_OK = 0,
    DBGOFF_TOO_SHORT,        /* fewer bytes than the struct for this version */
    DBGOFF_BAD_COOKIE,       /* not "xdebugpy": not a 3.13+ runtime, or a bad address */
    DBGOFF_VERSION_MISMATCH, /* published major.minor (or exact version) is not the expected one */
    DBGOFF_PRERELEASE,       /* alpha/beta/rc: the struct is only frozen at the final release */
    DBGOFF_FREE_THREADED,    /* free-threaded build: different object layouts, unsupported */
    DBGOFF_UNKNOWN_VERSION,  /* no description of _Py_DebugOffsets for this minor version */
    DBGOFF_IMPLAUSIBLE,      /* an offset lies outside the struct size published with it */
} dbgoff_status;

typedef struct dbgoff_diff {
    const char *key;   /* layout_fields key, e.g. "tstate.frame" */
    int64_t builtin;   /* value in the built-in table */
    int64_t published; /* value published by the target (now in the layout) */
} dbgoff_diff;

typedef struct dbgoff_result {
    uint64_t version;     /* the target's PY_VERSION_HEX, e.g. 0x030d00f0 */
    size_t applied;       /* fields taken from the target */
    size_t ndiffs;        /* how many of them differed from the built-in table (may exceed
                           * DEBUG_OFFSETS_MAX_DIFFS; only that many are listed) */
    dbgoff_diff diffs[DEBUG_OFFSETS_MAX_DIFFS];
} dbgoff_result;

/* Validate `len` raw bytes read from the start of _PyRuntime of a CPython major.minor target
 * and, on success, write into *out a copy of *builtin with every published field overridden.
 * expect_hex: the exact PY_VERSION_HEX when known from elsewhere (Py_Version), else 0.
 * On failure *out is an unchanged copy of *builtin and res->version is set when readable. */
dbgoff_status debug_offsets_apply(const void *bytes, size_t len, unsigned major, unsigned minor,
                                  uint64_t expect_hex, const py_layout *builtin, py_layout *out,
                                  dbgoff_result *res);

const char *debug_offsets_strerror(dbgoff_status st);

/* Description of one published field, exposed for tests and tools: offset of the uint64 in
 * _Py_DebugOffsets (DWARF path "_Py_DebugOffsets.<section>.<field>"), and the py_layout
 * member it overrides (layout_key NULL: validated only, e.g. the section's size). */
typedef struct dbgoff_field {
    const char *section;
    const char *field;
    uint16_t src;           /* byte offset inside _Py_DebugOffsets */
    const char *layout_key; /* layout_fields key, or NULL */
    uint16_t size_src;      /* offset of this section's `size` (bounds the value), 0: none */
    uint16_t base_src;      /* nonzero: the published value counts from the start of the struct
                             * member at this published offset; our field counts from that
                             * member, so it is subtracted */
} dbgoff_field;

typedef struct dbgoff_spec {
    unsigned minor;
    uint16_t struct_size; /* sizeof(_Py_DebugOffsets) */
    const dbgoff_field *fields;
    size_t nfields;
} dbgoff_spec;

/* The description for 3.minor, or NULL. */
const dbgoff_spec *debug_offsets_spec(unsigned minor);

#endif
