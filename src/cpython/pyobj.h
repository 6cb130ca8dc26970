/* Reading Python objects out of a target process's memory, for CPython 3.10-3.13.
 *
 * Objects are addresses (uint64_t) in the target. Every function reads through the page-cached
 * `mem` and the version's `py_layout`, checks every pointer, bounds every loop, and reports any
 * failed or implausible read as a negative pyobj_err: remote objects may be freed, torn or
 * garbage at any moment, so an error is a normal result, never a crash or a hang.
 *
 * Type checks: every accessor first checks that the object is of the kind it reads (through the
 * type's fast-subclass flags or its MRO), so passing the wrong object gives PYOBJ_E_TYPE rather
 * than garbage.
 *
 * Strings: returned as UTF-8 in a caller buffer (always NUL-terminated, truncated on a character
 * boundary; the function then returns PYOBJ_TRUNCATED, a positive value) or interned in a strtab.
 * Code points UTF-8 cannot carry (lone surrogates, values above U+10FFFF) and non-ASCII bytes in
 * a string marked ASCII become U+FFFD.
 *
 * Mechanics and version differences: docs/internals-objects.md.
 */
#ifndef APROF_PYOBJ_H
#define APROF_PYOBJ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layouts.h"
#include "memory.h"
#include "strtab.h"

typedef enum pyobj_err {
    PYOBJ_OK = 0,
    PYOBJ_TRUNCATED = 1,       /* success, but the output buffer was too small (prefix kept) */
    PYOBJ_E_READ = -1,         /* a remote read failed (unmapped, process gone) */
    PYOBJ_E_PTR = -2,          /* a pointer is null or implausible */
    PYOBJ_E_TYPE = -3,         /* the object is not of the kind the function reads */
    PYOBJ_E_CORRUPT = -4,      /* a size, count or tag out of range: garbage or a torn read */
    PYOBJ_E_NOTFOUND = -5,     /* no such key, attribute or module */
    PYOBJ_E_RANGE = -6,        /* an int that does not fit the result, an index out of range */
    PYOBJ_E_UNSUPPORTED = -7,  /* a valid object in a form not handled (e.g. __slots__ only) */
    PYOBJ_E_ARG = -8,          /* bad arguments from the caller */
    PYOBJ_E_NOMEM = -9,        /* local allocation failed */
} pyobj_err;

/* Human-readable name of a pyobj_err ("read failed", ...). */
const char *pyobj_strerror(int err);

/* What every reader needs: the target's memory and its interpreter's layout. */
typedef struct pyobj_ctx {
    mem *m;
    const py_layout *L;
} pyobj_ctx;

/* Caps on anything read from the target (garbage sizes beyond these are PYOBJ_E_CORRUPT). */
#define PYOBJ_MAX_DICT_ENTRIES (1u << 20)
#define PYOBJ_MAX_SET_SLOTS (1u << 22)
#define PYOBJ_MAX_SEQ_ITEMS (1u << 24)
#define PYOBJ_MAX_STR_LEN (1u << 30)
#define PYOBJ_MAX_MRO 64
#define PYOBJ_MAX_INT_DIGITS 256 /* 30-bit digits, ~2300 decimal digits */

/* PyModuleObject.md_dict: the same offset in 3.10-3.13 (checked against the DWARF); layouts.h has
 * no field for it. */
#define PYOBJ_MODULE_MD_DICT 16

/* Callbacks of the iterators: return true to go on, false to stop (stopping is not an error). */
typedef bool (*pyobj_item_cb)(void *ud, uint64_t item);
typedef bool (*pyobj_pair_cb)(void *ud, uint64_t key, uint64_t value);

/* ---- types ---------------------------------------------------------------------------------- */

/* ob_type of obj. */
int pyobj_type(const pyobj_ctx *c, uint64_t obj, uint64_t *type);
/* tp_flags of a type object. */
int pyobj_type_flags(const pyobj_ctx *c, uint64_t type, uint64_t *flags);
/* tp_name of obj's type, as stored ("str", "_asyncio.Task", or a heap type's "Foo"). */
int pyobj_type_name(const pyobj_ctx *c, uint64_t obj, char *buf, size_t cap);
/* Whether obj's type, or any type in its MRO (tp_mro, at most PYOBJ_MAX_MRO), is named
 * `name`. A name matches a tp_name equal to it or ending in "." + name ("Task" matches
 * "_asyncio.Task"). 1 yes, 0 no, negative pyobj_err when the types cannot be read. */
int pyobj_is_instance(const pyobj_ctx *c, uint64_t obj, const char *name);

/* ---- scalars -------------------------------------------------------------------------------- */

/* str (or str subclass) -> UTF-8 in buf (NUL-terminated; cap >= 1). *len (optional) gets the
 * bytes written. PYOBJ_TRUNCATED when the string did not fit. */
int pyobj_str_utf8(const pyobj_ctx *c, uint64_t str, char *buf, size_t cap, size_t *len);
/* Same, interned; strings longer than 4 KiB of UTF-8 are interned truncated. */
int pyobj_str_intern(const pyobj_ctx *c, uint64_t str, strtab *t, const char **out);
/* Whether str equals the UTF-8 string s[0..n) (contents compared, not hashes). 1, 0, or error. */
int pyobj_str_equals(const pyobj_ctx *c, uint64_t str, const char *s, size_t n);

/* bytes: copies min(size, cap) bytes; *size (optional) gets the full size. PYOBJ_TRUNCATED when
 * cap < size. */
int pyobj_bytes(const pyobj_ctx *c, uint64_t obj, void *buf, size_t cap, size_t *size);

/* int (or bool / int subclass) -> int64_t; PYOBJ_E_RANGE when it does not fit. */
int pyobj_int_value(const pyobj_ctx *c, uint64_t obj, int64_t *out);

/* ---- sequences ------------------------------------------------------------------------------ */

/* tuple or list (or subclasses): number of items. */
int pyobj_seq_size(const pyobj_ctx *c, uint64_t seq, uint64_t *n);
/* item i (PYOBJ_E_RANGE when i >= size). */
int pyobj_seq_item(const pyobj_ctx *c, uint64_t seq, uint64_t i, uint64_t *item);
/* Up to cap items into out; *n gets the number copied. PYOBJ_TRUNCATED when size > cap. */
int pyobj_seq_items(const pyobj_ctx *c, uint64_t seq, uint64_t *out, size_t cap, size_t *n);

/* ---- dict ----------------------------------------------------------------------------------- */

/* Every live (key, value) pair of a dict (or subclass), in entry order. */
int pyobj_dict_iter(const pyobj_ctx *c, uint64_t dict, pyobj_pair_cb cb, void *ud);
/* Value of the str key equal to `key` (UTF-8, NUL-terminated). Non-str keys are skipped. */
int pyobj_dict_get_str(const pyobj_ctx *c, uint64_t dict, const char *key, uint64_t *value);

/* ---- set, frozenset, weakref ---------------------------------------------------------------- */

/* Every key of a set or frozenset (or subclass). */
int pyobj_set_iter(const pyobj_ctx *c, uint64_t set, pyobj_item_cb cb, void *ud);
/* The referent of a weakref.ref (or subclass); PYOBJ_E_NOTFOUND when it is dead. */
int pyobj_weakref_get(const pyobj_ctx *c, uint64_t ref, uint64_t *obj);

/* ---- instance attributes -------------------------------------------------------------------- */

/* Attribute `name` of an instance of a Python class, from the instance's own __dict__ (however
 * the version stores it: dict, split/shared keys, managed dict, inline values). Class attributes,
 * properties and __slots__ are not looked at: PYOBJ_E_NOTFOUND. */
int pyobj_getattr(const pyobj_ctx *c, uint64_t obj, const char *name, uint64_t *value);

/* ---- modules -------------------------------------------------------------------------------- */

/* The module named `name` ("asyncio.tasks") in the sys.modules dict. */
int pyobj_module_find(const pyobj_ctx *c, uint64_t sys_modules, const char *name,
                      uint64_t *module);
/* A global of a module (a key of its md_dict). */
int pyobj_module_global(const pyobj_ctx *c, uint64_t module, const char *name, uint64_t *value);

/* ---- functions, methods, cells -------------------------------------------------------------- */

/* A Python function's __closure__ (a tuple of cells, or 0 when it has none). */
int pyobj_func_closure(const pyobj_ctx *c, uint64_t func, uint64_t *closure);
/* A bound method's __func__ and __self__ (either out may be NULL). */
int pyobj_method_parts(const pyobj_ctx *c, uint64_t method, uint64_t *func, uint64_t *self);
/* A cell's contents (0 when the cell is empty). */
int pyobj_cell_get(const pyobj_ctx *c, uint64_t cell, uint64_t *obj);

#endif
