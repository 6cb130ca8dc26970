/* Private to the pyobj readers (pyobj.c, pyobj_str.c, pyobj_num.c, pyobj_seq.c, pyobj_dict.c,
 * pyobj_set.c): the definitions and helpers they share. Not for use outside src/cpython/pyobj*.c;
 * the interface is pyobj.h. */
#ifndef APROF_PYOBJ_INTERNAL_H
#define APROF_PYOBJ_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layouts.h"
#include "pyobj.h"

/* tp_flags bits, the same in 3.10-3.13 (Include/object.h). */
#define TPF_INLINE_VALUES (1ull << 2) /* 3.13+ */
#define TPF_MANAGED_DICT (1ull << 4)  /* 3.11+ */
#define TPF_HEAPTYPE (1ull << 9)
#define TPF_LONG_SUBCLASS (1ull << 24)
#define TPF_LIST_SUBCLASS (1ull << 25)
#define TPF_TUPLE_SUBCLASS (1ull << 26)
#define TPF_BYTES_SUBCLASS (1ull << 27)
#define TPF_UNICODE_SUBCLASS (1ull << 28)
#define TPF_DICT_SUBCLASS (1ull << 29)

#define NAME_MAX_LEN 256 /* buffer for a tp_name */

/* ---- raw reads (pyobj.c) -------------------------------------------------------------------- */

/* Whether p is a plausible object pointer (non-null, user space, 8-byte aligned). */
bool pyobj_ptr_ok(uint64_t p);
/* n bytes at addr into dst: PYOBJ_OK, PYOBJ_E_PTR (implausible address) or PYOBJ_E_READ. */
int pyobj_read(const pyobj_ctx *c, uint64_t addr, void *dst, size_t n);
/* A uint64_t at addr. */
int pyobj_read_u64(const pyobj_ctx *c, uint64_t addr, uint64_t *out);
/* An int64_t at addr. */
int pyobj_read_i64(const pyobj_ctx *c, uint64_t addr, int64_t *out);
/* A field of obj at a layout offset; ABSENT fields are unsupported on this version. */
int pyobj_field_u64(const pyobj_ctx *c, uint64_t obj, loff off, uint64_t *out);
/* A pointer field that must hold a plausible object pointer (or 0 when may_be_null). */
int pyobj_field_obj(const pyobj_ctx *c, uint64_t obj, loff off, bool may_be_null, uint64_t *out);

/* ---- type checks (pyobj.c) ------------------------------------------------------------------ */

/* OK when obj's type has every bit of `flag` (a fast-subclass flag), else PYOBJ_E_TYPE. */
int pyobj_check_type_flag(const pyobj_ctx *c, uint64_t obj, uint64_t flag);
/* OK when pyobj_is_instance(obj, name), else PYOBJ_E_TYPE (or the read error). */
int pyobj_require_instance(const pyobj_ctx *c, uint64_t obj, const char *name);

/* ---- str (pyobj_str.c) ---------------------------------------------------------------------- */

/* Code points in a UTF-8 string (bytes that do not continue a sequence). */
size_t pyobj_utf8_count(const char *s, size_t n);
/* pyobj_str_equals with the code point count of s[0..n) (ncp) already known. */
int pyobj_str_equals_counted(const pyobj_ctx *c, uint64_t str, const char *s, size_t n,
                             size_t ncp);

#endif
