/* Reading Python objects out of a target process (see pyobj.h, docs/internals-objects.md). */
#include "pyobj.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Managed dicts live in a pre-header before the object (Include/internal/pycore_object.h):
 * 3.11 dict pointer at -3 words and values pointer at -4 words; 3.12 one tagged word at -3
 * (low bit set: PyDictValues* - 1, else PyDict*); 3.13 dict pointer at -3 words. */
#define MANAGED_DICT_OFFSET (-24)
#define MANAGED_VALUES_OFFSET_311 (-32)
/* 3.13 PyDictValues header: uint8 capacity, size, embedded, valid (verified with pahole). */
#define DICTVALUES_CAPACITY_313 0
#define DICTVALUES_VALID_313 3

#define PYFLOAT_FVAL 16 /* PyFloatObject.ob_fval, 3.10-3.13 */
#define LONG_SHIFT 30   /* 30-bit digits (x86-64 builds) */
#define NAME_MAX_LEN 256

#define MINOR(c) ((c)->L->version & 0xff)

const char *pyobj_strerror(int err)
{
    switch (err) {
    case PYOBJ_OK: return "ok";
    case PYOBJ_TRUNCATED: return "truncated";
    case PYOBJ_E_READ: return "remote read failed";
    case PYOBJ_E_PTR: return "null or implausible pointer";
    case PYOBJ_E_TYPE: return "object of another type";
    case PYOBJ_E_CORRUPT: return "implausible object contents";
    case PYOBJ_E_NOTFOUND: return "not found";
    case PYOBJ_E_RANGE: return "out of range";
    case PYOBJ_E_UNSUPPORTED: return "unsupported object form";
    case PYOBJ_E_ARG: return "bad argument";
    case PYOBJ_E_NOMEM: return "out of memory";
    default: return "unknown error";
    }
}

/* ---- raw reads ------------------------------------------------------------------------------ */

static bool obj_ok(uint64_t p) { return mem_ptr_ok(p, true); }

static int rd(const pyobj_ctx *c, uint64_t addr, void *dst, size_t n)
{
    if (!mem_ptr_ok(addr, false))
        return PYOBJ_E_PTR;
    return mem_read(c->m, addr, dst, n) == 0 ? PYOBJ_OK : PYOBJ_E_READ;
}

static int rd_u64(const pyobj_ctx *c, uint64_t addr, uint64_t *out)
{
    return rd(c, addr, out, sizeof *out);
}

static int rd_i64(const pyobj_ctx *c, uint64_t addr, int64_t *out)
{
    return rd(c, addr, out, sizeof *out);
}

static int rd_u8(const pyobj_ctx *c, uint64_t addr, uint8_t *out)
{
    return rd(c, addr, out, 1);
}

/* A field of obj at a layout offset; ABSENT fields are unsupported on this version. */
static int field_u64(const pyobj_ctx *c, uint64_t obj, loff off, uint64_t *out)
{
    if (off == LAYOUT_ABSENT)
        return PYOBJ_E_UNSUPPORTED;
    return rd_u64(c, obj + (uint64_t)off, out);
}

/* A pointer field that must hold a plausible object pointer (or 0 when may_be_null). */
static int field_obj(const pyobj_ctx *c, uint64_t obj, loff off, bool may_be_null, uint64_t *out)
{
    int rc = field_u64(c, obj, off, out);
    if (rc < 0)
        return rc;
    if (*out == 0 && may_be_null)
        return PYOBJ_OK;
    return obj_ok(*out) ? PYOBJ_OK : PYOBJ_E_PTR;
}

/* A NUL-terminated C string of at most cap-1 bytes, read page by page so that a string near the
 * end of a mapping is still readable. */
static int read_cstr(const pyobj_ctx *c, uint64_t addr, char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return PYOBJ_E_ARG;
    buf[0] = '\0';
    if (!mem_ptr_ok(addr, false))
        return PYOBJ_E_PTR;
    size_t got = 0;
    while (got < cap - 1) {
        uint64_t a = addr + got;
        size_t chunk = MEM_PAGE_SIZE - (size_t)(a & (MEM_PAGE_SIZE - 1));
        if (chunk > cap - 1 - got)
            chunk = cap - 1 - got;
        if (mem_read(c->m, a, buf + got, chunk) != 0) {
            buf[got] = '\0';
            return PYOBJ_E_READ;
        }
        char *nul = memchr(buf + got, '\0', chunk);
        if (nul)
            return PYOBJ_OK;
        got += chunk;
    }
    buf[cap - 1] = '\0';
    return PYOBJ_TRUNCATED;
}

/* ---- types ---------------------------------------------------------------------------------- */

int pyobj_type(const pyobj_ctx *c, uint64_t obj, uint64_t *type)
{
    if (!c || !type)
        return PYOBJ_E_ARG;
    if (!obj_ok(obj))
        return PYOBJ_E_PTR;
    return field_obj(c, obj, c->L->object.type, false, type);
}

int pyobj_type_flags(const pyobj_ctx *c, uint64_t type, uint64_t *flags)
{
    if (!c || !flags)
        return PYOBJ_E_ARG;
    if (!obj_ok(type))
        return PYOBJ_E_PTR;
    return field_u64(c, type, c->L->type.flags, flags);
}

/* OK when obj's type has every bit of `flag` (a fast-subclass flag), else PYOBJ_E_TYPE. */
static int check_flag(const pyobj_ctx *c, uint64_t obj, uint64_t flag)
{
    uint64_t type, flags;
    int rc = pyobj_type(c, obj, &type);
    if (rc < 0)
        return rc;
    rc = pyobj_type_flags(c, type, &flags);
    if (rc < 0)
        return rc;
    return (flags & flag) == flag ? PYOBJ_OK : PYOBJ_E_TYPE;
}

static int type_tp_name(const pyobj_ctx *c, uint64_t type, char *buf, size_t cap)
{
    uint64_t name;
    int rc = field_u64(c, type, c->L->type.name, &name);
    if (rc < 0) {
        if (buf && cap)
            buf[0] = '\0';
        return rc;
    }
    return read_cstr(c, name, buf, cap);
}

int pyobj_type_name(const pyobj_ctx *c, uint64_t obj, char *buf, size_t cap)
{
    if (!c || !buf || cap == 0)
        return PYOBJ_E_ARG;
    buf[0] = '\0';
    uint64_t type;
    int rc = pyobj_type(c, obj, &type);
    if (rc < 0)
        return rc;
    return type_tp_name(c, type, buf, cap);
}

int pyobj_type_name_intern(const pyobj_ctx *c, uint64_t obj, strtab *t, const char **out)
{
    if (!t || !out)
        return PYOBJ_E_ARG;
    char buf[NAME_MAX_LEN];
    int rc = pyobj_type_name(c, obj, buf, sizeof buf);
    if (rc < 0)
        return rc;
    *out = strtab_intern_cstr(t, buf);
    return *out ? rc : PYOBJ_E_NOMEM;
}

/* "Task" matches "Task" and "_asyncio.Task"; "_asyncio.Task" matches only itself. */
static bool tp_name_matches(const char *tp_name, const char *want)
{
    if (strcmp(tp_name, want) == 0)
        return true;
    const char *dot = strrchr(tp_name, '.');
    return dot && strcmp(dot + 1, want) == 0;
}

static int type_name_matches(const pyobj_ctx *c, uint64_t type, const char *want)
{
    char buf[NAME_MAX_LEN];
    int rc = type_tp_name(c, type, buf, sizeof buf);
    if (rc < 0)
        return rc;
    return tp_name_matches(buf, want) ? 1 : 0;
}

int pyobj_is_instance(const pyobj_ctx *c, uint64_t obj, const char *name)
{
    if (!c || !name)
        return PYOBJ_E_ARG;
    uint64_t type;
    int rc = pyobj_type(c, obj, &type);
    if (rc < 0)
        return rc;
    rc = type_name_matches(c, type, name);
    if (rc != 0)
        return rc;

    /* tp_mro: a tuple of the type and its bases in resolution order. */
    uint64_t mro;
    if (field_obj(c, type, c->L->type.mro, false, &mro) == PYOBJ_OK) {
        uint64_t items[PYOBJ_MAX_MRO];
        size_t n = 0;
        int mrc = pyobj_seq_items(c, mro, items, PYOBJ_MAX_MRO, &n);
        if (mrc >= 0 && n > 0) {
            for (size_t i = 1; i < n; i++) {
                if (!obj_ok(items[i]))
                    return PYOBJ_E_PTR;
                rc = type_name_matches(c, items[i], name);
                if (rc != 0)
                    return rc;
            }
            return 0;
        }
    }
    /* No readable MRO (a type still being created): only the type itself was compared. */
    return 0;
}

/* 1 when obj's type is named exactly `name` (no MRO walk), 0 when not. */
static int type_is_exactly(const pyobj_ctx *c, uint64_t obj, const char *name)
{
    char buf[NAME_MAX_LEN];
    int rc = pyobj_type_name(c, obj, buf, sizeof buf);
    if (rc < 0)
        return rc;
    return strcmp(buf, name) == 0;
}

static int require_instance(const pyobj_ctx *c, uint64_t obj, const char *name)
{
    int rc = pyobj_is_instance(c, obj, name);
    if (rc < 0)
        return rc;
    return rc ? PYOBJ_OK : PYOBJ_E_TYPE;
}

/* ---- str ------------------------------------------------------------------------------------ */

typedef struct ustr {
    uint64_t length; /* code points */
    unsigned kind;   /* bytes per code point: 1, 2, 4 */
    bool ascii;
    uint64_t data;   /* address of the code points */
} ustr;

static int str_info(const pyobj_ctx *c, uint64_t obj, ustr *u)
{
    if (!c)
        return PYOBJ_E_ARG;
    int rc = check_flag(c, obj, TPF_UNICODE_SUBCLASS);
    if (rc < 0)
        return rc;
    const py_layout *L = c->L;
    int64_t length;
    uint32_t state;
    if ((rc = rd_i64(c, obj + (uint64_t)L->unicode.length, &length)) < 0 ||
        (rc = rd(c, obj + (uint64_t)L->unicode.state, &state, sizeof state)) < 0)
        return rc;
    if (length < 0 || (uint64_t)length > PYOBJ_MAX_STR_LEN)
        return PYOBJ_E_CORRUPT;
    unsigned kind = (state >> L->unicode.kind_shift) & 7u;
    bool compact = (state >> L->unicode.compact_bit) & 1u;
    bool ascii = (state >> L->unicode.ascii_bit) & 1u;
    if (kind == 0)
        return PYOBJ_E_UNSUPPORTED; /* 3.10/3.11 legacy string not yet "ready" (wstr only) */
    if ((kind != 1 && kind != 2 && kind != 4) || (ascii && kind != 1))
        return PYOBJ_E_CORRUPT;
    u->length = (uint64_t)length;
    u->kind = kind;
    u->ascii = ascii;
    if (compact) {
        u->data = obj + (uint64_t)(ascii ? L->unicode.ascii_data : L->unicode.compact_data);
    } else {
        /* PyUnicodeObject (str subclasses): data.any follows PyCompactUnicodeObject. */
        if ((rc = rd_u64(c, obj + (uint64_t)L->unicode.compact_data, &u->data)) < 0)
            return rc;
        if (length > 0 && !mem_ptr_ok(u->data, false))
            return PYOBJ_E_PTR;
    }
    return PYOBJ_OK;
}

static size_t utf8_encode(uint32_t cp, char out[4])
{
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        cp = 0xFFFD; /* lone surrogate or garbage: not representable in UTF-8 */
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decode u into buf (cap >= 1, NUL-terminated). Reads at most cap-1 code points, since each
 * needs at least one byte. */
static int str_decode(const pyobj_ctx *c, const ustr *u, char *buf, size_t cap, size_t *len)
{
    size_t out = 0;
    uint64_t todo = u->length < cap - 1 ? u->length : cap - 1;
    bool truncated = u->length > todo, full = false;
    uint8_t chunk[2048];
    int rc = PYOBJ_OK;
    for (uint64_t done = 0; done < todo && !full;) {
        uint64_t n = todo - done;
        if (n > sizeof chunk / u->kind)
            n = sizeof chunk / u->kind;
        if ((rc = rd(c, u->data + done * u->kind, chunk, (size_t)(n * u->kind))) < 0)
            break;
        for (uint64_t i = 0; i < n; i++) {
            uint32_t cp;
            if (u->kind == 1) {
                cp = chunk[i];
                if (u->ascii && cp >= 0x80)
                    cp = 0xFFFD;
            } else if (u->kind == 2) {
                uint16_t v;
                memcpy(&v, chunk + i * 2, 2);
                cp = v;
            } else {
                memcpy(&cp, chunk + i * 4, 4);
            }
            char enc[4];
            size_t nb = utf8_encode(cp, enc);
            if (out + nb > cap - 1) {
                truncated = full = true;
                break;
            }
            memcpy(buf + out, enc, nb);
            out += nb;
        }
        done += n;
    }
    buf[out] = '\0';
    if (len)
        *len = out;
    if (rc < 0)
        return rc;
    return truncated ? PYOBJ_TRUNCATED : PYOBJ_OK;
}

int pyobj_str_utf8(const pyobj_ctx *c, uint64_t str, char *buf, size_t cap, size_t *len)
{
    if (!buf || cap == 0)
        return PYOBJ_E_ARG;
    buf[0] = '\0';
    if (len)
        *len = 0;
    ustr u;
    int rc = str_info(c, str, &u);
    if (rc < 0)
        return rc;
    return str_decode(c, &u, buf, cap, len);
}

int pyobj_str_intern(const pyobj_ctx *c, uint64_t str, strtab *t, const char **out)
{
    if (!t || !out)
        return PYOBJ_E_ARG;
    char buf[4096];
    size_t len = 0;
    int rc = pyobj_str_utf8(c, str, buf, sizeof buf, &len);
    if (rc < 0)
        return rc;
    *out = strtab_intern(t, buf, len);
    return *out ? rc : PYOBJ_E_NOMEM;
}

/* Code points in a UTF-8 string (bytes that do not continue a sequence). */
static size_t utf8_count(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

static int str_equals_counted(const pyobj_ctx *c, uint64_t str, const char *s, size_t n,
                              size_t ncp)
{
    ustr u;
    int rc = str_info(c, str, &u);
    if (rc < 0)
        return rc;
    if (u.length != ncp)
        return 0;
    char stackbuf[512];
    char *buf = n + 1 <= sizeof stackbuf ? stackbuf : malloc(n + 1);
    if (!buf)
        return PYOBJ_E_NOMEM;
    size_t len = 0;
    rc = str_decode(c, &u, buf, n + 1, &len);
    if (rc >= 0)
        rc = rc == PYOBJ_OK && len == n && memcmp(buf, s, n) == 0;
    if (buf != stackbuf)
        free(buf);
    return rc;
}

int pyobj_str_equals(const pyobj_ctx *c, uint64_t str, const char *s, size_t n)
{
    if (!s)
        return PYOBJ_E_ARG;
    return str_equals_counted(c, str, s, n, utf8_count(s, n));
}

/* ---- bytes, int, float ---------------------------------------------------------------------- */

int pyobj_bytes(const pyobj_ctx *c, uint64_t obj, void *buf, size_t cap, size_t *size)
{
    if (!c || (!buf && cap))
        return PYOBJ_E_ARG;
    int rc = check_flag(c, obj, TPF_BYTES_SUBCLASS);
    if (rc < 0)
        return rc;
    int64_t n;
    if ((rc = rd_i64(c, obj + (uint64_t)c->L->bytes.size, &n)) < 0)
        return rc;
    if (n < 0 || (uint64_t)n > PYOBJ_MAX_STR_LEN)
        return PYOBJ_E_CORRUPT;
    if (size)
        *size = (size_t)n;
    size_t want = (size_t)n < cap ? (size_t)n : cap;
    if (want && (rc = rd(c, obj + (uint64_t)c->L->bytes.sval, buf, want)) < 0)
        return rc;
    return want < (size_t)n ? PYOBJ_TRUNCATED : PYOBJ_OK;
}

/* Sign (-1, 0, 1) and 30-bit digits, least significant first, of an int. */
static int long_read(const pyobj_ctx *c, uint64_t obj, int *sign, uint32_t *digits,
                     size_t *ndigits)
{
    if (!c)
        return PYOBJ_E_ARG;
    int rc = check_flag(c, obj, TPF_LONG_SUBCLASS);
    if (rc < 0)
        return rc;
    uint64_t raw;
    if ((rc = rd_u64(c, obj + (uint64_t)c->L->longobj.size_or_tag, &raw)) < 0)
        return rc;
    uint64_t nd;
    if (c->L->longobj.tagged) {
        /* 3.12+ lv_tag: digit count << 3 | sign bits (0 positive, 1 zero, 2 negative). */
        unsigned sbits = raw & 3u;
        if (sbits == 3)
            return PYOBJ_E_CORRUPT;
        *sign = sbits == 0 ? 1 : sbits == 1 ? 0 : -1;
        nd = raw >> 3;
        if (*sign == 0)
            nd = 0;
    } else {
        int64_t size = (int64_t)raw;
        *sign = size < 0 ? -1 : size > 0;
        nd = size < 0 ? (uint64_t)0 - (uint64_t)size : (uint64_t)size;
    }
    if (nd > PYOBJ_MAX_INT_DIGITS)
        return nd > (1u << 28) ? PYOBJ_E_CORRUPT : PYOBJ_E_RANGE;
    if (*sign != 0 && nd == 0)
        return PYOBJ_E_CORRUPT;
    if (nd && (rc = rd(c, obj + (uint64_t)c->L->longobj.digits, digits, (size_t)nd * 4)) < 0)
        return rc;
    for (uint64_t i = 0; i < nd; i++)
        if (digits[i] >> LONG_SHIFT)
            return PYOBJ_E_CORRUPT;
    /* Normalised ints have no leading zero digit. */
    if (nd && digits[nd - 1] == 0)
        return PYOBJ_E_CORRUPT;
    *ndigits = (size_t)nd;
    return PYOBJ_OK;
}

int pyobj_int_value(const pyobj_ctx *c, uint64_t obj, int64_t *out)
{
    if (!out)
        return PYOBJ_E_ARG;
    uint32_t digits[PYOBJ_MAX_INT_DIGITS];
    size_t nd = 0;
    int sign = 0;
    int rc = long_read(c, obj, &sign, digits, &nd);
    if (rc < 0)
        return rc;
    uint64_t v = 0;
    for (size_t i = nd; i-- > 0;) {
        if (v > (UINT64_MAX >> LONG_SHIFT))
            return PYOBJ_E_RANGE;
        v = (v << LONG_SHIFT) | digits[i];
    }
    if (sign >= 0) {
        if (v > (uint64_t)INT64_MAX)
            return PYOBJ_E_RANGE;
        *out = (int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX + 1)
            return PYOBJ_E_RANGE;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    }
    return PYOBJ_OK;
}

int pyobj_int_decimal(const pyobj_ctx *c, uint64_t obj, char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return PYOBJ_E_ARG;
    buf[0] = '\0';
    uint32_t digits[PYOBJ_MAX_INT_DIGITS];
    size_t nd = 0;
    int sign = 0;
    int rc = long_read(c, obj, &sign, digits, &nd);
    if (rc < 0)
        return rc;
    /* Base 2^30 -> base 10^9, most significant digit first (Horner). */
    enum { BASE10 = 1000000000u, MAXD10 = PYOBJ_MAX_INT_DIGITS * 30 / 29 + 2 };
    uint32_t d10[MAXD10];
    size_t n10 = 0;
    for (size_t i = nd; i-- > 0;) {
        uint64_t carry = digits[i];
        for (size_t j = 0; j < n10; j++) {
            uint64_t t = ((uint64_t)d10[j] << LONG_SHIFT) + carry;
            d10[j] = (uint32_t)(t % BASE10);
            carry = t / BASE10;
        }
        while (carry && n10 < MAXD10) {
            d10[n10++] = (uint32_t)(carry % BASE10);
            carry /= BASE10;
        }
    }
    char tmp[MAXD10 * 9 + 2];
    size_t len = 0;
    if (sign < 0)
        tmp[len++] = '-';
    if (n10 == 0) {
        tmp[len++] = '0';
    } else {
        len += (size_t)snprintf(tmp + len, sizeof tmp - len, "%u", d10[n10 - 1]);
        for (size_t j = n10 - 1; j-- > 0;)
            len += (size_t)snprintf(tmp + len, sizeof tmp - len, "%09u", d10[j]);
    }
    if (len > cap - 1) {
        memcpy(buf, tmp, cap - 1);
        buf[cap - 1] = '\0';
        return PYOBJ_TRUNCATED;
    }
    memcpy(buf, tmp, len);
    buf[len] = '\0';
    return PYOBJ_OK;
}

int pyobj_float_value(const pyobj_ctx *c, uint64_t obj, double *out)
{
    if (!out)
        return PYOBJ_E_ARG;
    int rc = require_instance(c, obj, "float");
    if (rc < 0)
        return rc;
    return rd(c, obj + PYFLOAT_FVAL, out, sizeof *out);
}

/* ---- tuple, list ---------------------------------------------------------------------------- */

/* Size and address of the item array of a tuple or list. */
static int seq_info(const pyobj_ctx *c, uint64_t seq, uint64_t *size, uint64_t *items)
{
    if (!c)
        return PYOBJ_E_ARG;
    uint64_t type, flags;
    int rc = pyobj_type(c, seq, &type);
    if (rc < 0 || (rc = pyobj_type_flags(c, type, &flags)) < 0)
        return rc;
    const py_layout *L = c->L;
    int64_t n;
    if (flags & TPF_TUPLE_SUBCLASS) {
        if ((rc = rd_i64(c, seq + (uint64_t)L->tuple.size, &n)) < 0)
            return rc;
        *items = seq + (uint64_t)L->tuple.items;
    } else if (flags & TPF_LIST_SUBCLASS) {
        if ((rc = rd_i64(c, seq + (uint64_t)L->list.size, &n)) < 0 ||
            (rc = rd_u64(c, seq + (uint64_t)L->list.items, items)) < 0)
            return rc;
        if (n > 0 && !obj_ok(*items))
            return PYOBJ_E_PTR;
    } else {
        return PYOBJ_E_TYPE;
    }
    if (n < 0 || (uint64_t)n > PYOBJ_MAX_SEQ_ITEMS)
        return PYOBJ_E_CORRUPT;
    *size = (uint64_t)n;
    return PYOBJ_OK;
}

int pyobj_seq_size(const pyobj_ctx *c, uint64_t seq, uint64_t *n)
{
    if (!n)
        return PYOBJ_E_ARG;
    uint64_t items;
    return seq_info(c, seq, n, &items);
}

int pyobj_seq_item(const pyobj_ctx *c, uint64_t seq, uint64_t i, uint64_t *item)
{
    if (!item)
        return PYOBJ_E_ARG;
    uint64_t n, items;
    int rc = seq_info(c, seq, &n, &items);
    if (rc < 0)
        return rc;
    if (i >= n)
        return PYOBJ_E_RANGE;
    if ((rc = rd_u64(c, items + 8 * i, item)) < 0)
        return rc;
    return obj_ok(*item) ? PYOBJ_OK : PYOBJ_E_PTR;
}

int pyobj_seq_items(const pyobj_ctx *c, uint64_t seq, uint64_t *out, size_t cap, size_t *n)
{
    if (!n || (!out && cap))
        return PYOBJ_E_ARG;
    *n = 0;
    uint64_t size, items;
    int rc = seq_info(c, seq, &size, &items);
    if (rc < 0)
        return rc;
    size_t want = size < cap ? (size_t)size : cap;
    if (want && (rc = rd(c, items, out, want * 8)) < 0)
        return rc;
    for (size_t i = 0; i < want; i++)
        if (!obj_ok(out[i]))
            return PYOBJ_E_PTR;
    *n = want;
    return want < size ? PYOBJ_TRUNCATED : PYOBJ_OK;
}

/* ---- dict ----------------------------------------------------------------------------------- */

/* A dict's entries seen through its keys object, and where its values are: in the entries
 * (combined table) or in a separate array indexed like the entries (split table). */
typedef struct dict_view {
    uint64_t entries;    /* address of entry 0 */
    uint64_t nentries;   /* entries in use or deleted (dk_nentries) */
    unsigned entry_size; /* 24: {hash, key, value}; 16 (3.11+ str-only keys): {key, value} */
    uint64_t values;     /* split table: address of values[0]; 0 for a combined table */
    uint64_t nvalues;    /* split table: slots readable in values[] */
} dict_view;

static int keys_view(const pyobj_ctx *c, uint64_t keys, dict_view *v)
{
    const py_layout *L = c->L;
    if (!obj_ok(keys))
        return PYOBJ_E_PTR;
    int rc;
    uint64_t size;
    unsigned ixsize;
    if (L->dict.dk_size_is_log2) {
        uint8_t log2;
        if ((rc = rd_u8(c, keys + (uint64_t)L->dict.dk_size, &log2)) < 0)
            return rc;
        if (log2 > 40) /* 0: the shared empty keys of {} */
            return PYOBJ_E_CORRUPT;
        size = 1ull << log2;
        ixsize = log2 < 8 ? 1 : log2 < 16 ? 2 : log2 < 32 ? 4 : 8;
    } else {
        int64_t s;
        if ((rc = rd_i64(c, keys + (uint64_t)L->dict.dk_size, &s)) < 0)
            return rc;
        if (s < 1 || s > (1ll << 40) || (s & (s - 1)) != 0) /* 1: the shared empty keys */
            return PYOBJ_E_CORRUPT;
        size = (uint64_t)s;
        ixsize = size <= 0xff ? 1 : size <= 0xffff ? 2 : size <= 0xffffffffull ? 4 : 8;
    }
    bool unicode = false;
    if (L->dict.dk_kind != LAYOUT_ABSENT) {
        uint8_t kind;
        if ((rc = rd_u8(c, keys + (uint64_t)L->dict.dk_kind, &kind)) < 0)
            return rc;
        if (kind > 2) /* DICT_KEYS_GENERAL, _UNICODE, _SPLIT */
            return PYOBJ_E_CORRUPT;
        unicode = kind != 0;
    }
    int64_t nentries;
    if ((rc = rd_i64(c, keys + (uint64_t)L->dict.dk_nentries, &nentries)) < 0)
        return rc;
    if (nentries < 0 || (uint64_t)nentries > size || (uint64_t)nentries > PYOBJ_MAX_DICT_ENTRIES)
        return PYOBJ_E_CORRUPT;
    v->entries = keys + (uint64_t)L->dict.dk_indices + size * ixsize;
    v->nentries = (uint64_t)nentries;
    v->entry_size = unicode ? L->dict.unicode_entry_size : L->dict.entry_size;
    if (v->entry_size < 16)
        return PYOBJ_E_UNSUPPORTED;
    v->values = 0;
    v->nvalues = 0;
    return PYOBJ_OK;
}

/* Attach a split table's values array (address of the PyDictValues). */
static int view_set_values(const pyobj_ctx *c, dict_view *v, uint64_t dictvalues)
{
    if (!obj_ok(dictvalues))
        return PYOBJ_E_PTR;
    loff vv = c->L->dict.values_values;
    v->values = dictvalues + (uint64_t)(vv == LAYOUT_ABSENT ? 0 : vv);
    v->nvalues = v->nentries;
    if (MINOR(c) >= 13) {
        uint8_t capacity;
        int rc = rd_u8(c, dictvalues + DICTVALUES_CAPACITY_313, &capacity);
        if (rc < 0)
            return rc;
        if (capacity < v->nvalues)
            v->nvalues = capacity;
    }
    return PYOBJ_OK;
}

static int dict_view_of(const pyobj_ctx *c, uint64_t dict, dict_view *v)
{
    int rc = check_flag(c, dict, TPF_DICT_SUBCLASS);
    if (rc < 0)
        return rc;
    uint64_t keys, values;
    if ((rc = field_u64(c, dict, c->L->dict.keys, &keys)) < 0 ||
        (rc = field_u64(c, dict, c->L->dict.values, &values)) < 0)
        return rc;
    if ((rc = keys_view(c, keys, v)) < 0)
        return rc;
    if (values)
        return view_set_values(c, v, values);
    return PYOBJ_OK;
}

/* Visit every live entry. Entries and values are read in page-sized batches. */
static int view_iter(const pyobj_ctx *c, const dict_view *v, pyobj_pair_cb cb, void *ud)
{
    enum { BATCH = 160 };
    uint8_t ebuf[BATCH * 24];
    uint64_t vbuf[BATCH];
    unsigned es = v->entry_size;
    size_t batch = sizeof ebuf / es;
    uint64_t n = v->values && v->nvalues < v->nentries ? v->nvalues : v->nentries;
    for (uint64_t base = 0; base < n; base += batch) {
        size_t k = n - base < batch ? (size_t)(n - base) : batch;
        int rc = rd(c, v->entries + base * es, ebuf, k * es);
        if (rc < 0)
            return rc;
        if (v->values && (rc = rd(c, v->values + base * 8, vbuf, k * 8)) < 0)
            return rc;
        for (size_t i = 0; i < k; i++) {
            uint64_t key, value;
            /* Both entry forms end with {key, value}. */
            memcpy(&key, ebuf + i * es + es - 16, 8);
            if (v->values)
                value = vbuf[i];
            else
                memcpy(&value, ebuf + i * es + es - 8, 8);
            if (key == 0 || value == 0)
                continue; /* deleted entry, or a split-table slot this object does not use */
            if (!obj_ok(key) || !obj_ok(value))
                return PYOBJ_E_CORRUPT;
            if (!cb(ud, key, value))
                return PYOBJ_OK;
        }
    }
    return PYOBJ_OK;
}

int pyobj_dict_iter(const pyobj_ctx *c, uint64_t dict, pyobj_pair_cb cb, void *ud)
{
    if (!c || !cb)
        return PYOBJ_E_ARG;
    dict_view v;
    int rc = dict_view_of(c, dict, &v);
    if (rc < 0)
        return rc;
    return view_iter(c, &v, cb, ud);
}

typedef struct lookup_state {
    const pyobj_ctx *c;
    const char *key;
    size_t len, ncp;
    uint64_t value;
    int rc; /* PYOBJ_E_NOTFOUND until found, or the first read error */
} lookup_state;

static bool lookup_cb(void *ud, uint64_t key, uint64_t value)
{
    lookup_state *s = ud;
    int eq = str_equals_counted(s->c, key, s->key, s->len, s->ncp);
    if (eq == PYOBJ_E_TYPE)
        return true; /* a non-str key */
    if (eq < 0) {
        s->rc = eq;
        return false;
    }
    if (eq) {
        s->value = value;
        s->rc = PYOBJ_OK;
        return false;
    }
    return true;
}

static int view_lookup(const pyobj_ctx *c, const dict_view *v, const char *key, uint64_t *value)
{
    lookup_state s = {c, key, strlen(key), 0, 0, PYOBJ_E_NOTFOUND};
    s.ncp = utf8_count(key, s.len);
    int rc = view_iter(c, v, lookup_cb, &s);
    if (rc < 0)
        return rc;
    if (s.rc == PYOBJ_OK)
        *value = s.value;
    return s.rc;
}

int pyobj_dict_get_str(const pyobj_ctx *c, uint64_t dict, const char *key, uint64_t *value)
{
    if (!c || !key || !value)
        return PYOBJ_E_ARG;
    dict_view v;
    int rc = dict_view_of(c, dict, &v);
    if (rc < 0)
        return rc;
    return view_lookup(c, &v, key, value);
}

/* ---- set, weakref, WeakSet ------------------------------------------------------------------ */

int pyobj_set_iter(const pyobj_ctx *c, uint64_t set, pyobj_item_cb cb, void *ud)
{
    if (!c || !cb)
        return PYOBJ_E_ARG;
    int rc = pyobj_is_instance(c, set, "set");
    if (rc == 0)
        rc = pyobj_is_instance(c, set, "frozenset");
    if (rc < 0)
        return rc;
    if (rc == 0)
        return PYOBJ_E_TYPE;
    const py_layout *L = c->L;
    int64_t mask;
    uint64_t table;
    if ((rc = rd_i64(c, set + (uint64_t)L->set.mask, &mask)) < 0 ||
        (rc = rd_u64(c, set + (uint64_t)L->set.table, &table)) < 0)
        return rc;
    if (mask < 7 || (uint64_t)mask >= PYOBJ_MAX_SET_SLOTS || (mask & (mask + 1)) != 0)
        return PYOBJ_E_CORRUPT;
    if (!obj_ok(table))
        return PYOBJ_E_PTR;
    unsigned es = L->set.entry_size;
    if (es < 16)
        return PYOBJ_E_UNSUPPORTED;
    enum { BATCH = 256 };
    uint8_t buf[BATCH * 16];
    size_t batch = sizeof buf / es;
    uint64_t n = (uint64_t)mask + 1;
    for (uint64_t base = 0; base < n; base += batch) {
        size_t k = n - base < batch ? (size_t)(n - base) : batch;
        if ((rc = rd(c, table + base * es, buf, k * es)) < 0)
            return rc;
        for (size_t i = 0; i < k; i++) {
            uint64_t key;
            int64_t hash;
            memcpy(&key, buf + i * es, 8);
            memcpy(&hash, buf + i * es + 8, 8);
            /* Empty slots have no key; deleted ones hold the dummy key with hash -1, a hash no
             * live object has (CPython maps -1 to -2). */
            if (key == 0 || hash == -1)
                continue;
            if (!obj_ok(key))
                return PYOBJ_E_CORRUPT;
            if (!cb(ud, key))
                return PYOBJ_OK;
        }
    }
    return PYOBJ_OK;
}

int pyobj_weakref_get(const pyobj_ctx *c, uint64_t ref, uint64_t *obj)
{
    if (!obj)
        return PYOBJ_E_ARG;
    int rc = require_instance(c, ref, "ReferenceType");
    if (rc < 0)
        return rc;
    uint64_t target;
    if ((rc = field_obj(c, ref, c->L->weakref.object, false, &target)) < 0)
        return rc;
    /* A dead reference points at None. */
    rc = type_is_exactly(c, target, "NoneType");
    if (rc < 0)
        return rc;
    if (rc)
        return PYOBJ_E_NOTFOUND;
    *obj = target;
    return PYOBJ_OK;
}

typedef struct weakset_state {
    const pyobj_ctx *c;
    pyobj_item_cb cb;
    void *ud;
    int rc;
} weakset_state;

static bool weakset_cb(void *ud, uint64_t ref)
{
    weakset_state *s = ud;
    uint64_t obj;
    int rc = pyobj_weakref_get(s->c, ref, &obj);
    if (rc == PYOBJ_E_NOTFOUND)
        return true; /* died, not yet removed from the set */
    if (rc < 0) {
        s->rc = rc;
        return false;
    }
    return s->cb(s->ud, obj);
}

int pyobj_weakset_iter(const pyobj_ctx *c, uint64_t weakset, pyobj_item_cb cb, void *ud)
{
    if (!c || !cb)
        return PYOBJ_E_ARG;
    uint64_t data = 0;
    int rc = pyobj_getattr(c, weakset, "data", &data);
    if (rc < 0)
        return rc == PYOBJ_E_NOTFOUND ? PYOBJ_E_TYPE : rc;
    weakset_state s = {c, cb, ud, PYOBJ_OK};
    rc = pyobj_set_iter(c, data, weakset_cb, &s);
    return rc < 0 ? rc : s.rc;
}

/* ---- instance attributes -------------------------------------------------------------------- */

/* Where the instance's attributes are: *have = false when it has none (yet). */
static int instance_view(const pyobj_ctx *c, uint64_t obj, dict_view *v, bool *have)
{
    const py_layout *L = c->L;
    *have = false;
    uint64_t type, flags;
    int rc = pyobj_type(c, obj, &type);
    if (rc < 0 || (rc = pyobj_type_flags(c, type, &flags)) < 0)
        return rc;
    unsigned minor = MINOR(c);

    if (minor >= 11 && (flags & TPF_MANAGED_DICT)) {
        if (!(flags & TPF_HEAPTYPE))
            return PYOBJ_E_UNSUPPORTED;
        uint64_t word, values = 0;
        if ((rc = rd_u64(c, obj + (uint64_t)MANAGED_DICT_OFFSET, &word)) < 0)
            return rc;
        if (minor == 12 && (word & 1)) {
            values = word + 1; /* tagged: the word holds (PyDictValues *) - 1 */
        } else if (word) {
            *have = true;
            return dict_view_of(c, word, v); /* a materialised dict */
        } else if (minor == 11) {
            if ((rc = rd_u64(c, obj + (uint64_t)MANAGED_VALUES_OFFSET_311, &values)) < 0)
                return rc;
        } else if (minor >= 13 && (flags & TPF_INLINE_VALUES)) {
            int64_t basicsize;
            uint8_t valid;
            if ((rc = rd_i64(c, type + (uint64_t)L->type.basicsize, &basicsize)) < 0)
                return rc;
            if (basicsize < 16 || basicsize > (1 << 20))
                return PYOBJ_E_CORRUPT;
            values = obj + (uint64_t)basicsize;
            if ((rc = rd_u8(c, values + DICTVALUES_VALID_313, &valid)) < 0)
                return rc;
            if (!valid)
                return PYOBJ_OK; /* moved to a dict that is now gone: no attributes */
        }
        if (!values)
            return PYOBJ_OK;
        /* Split table: keys shared by all instances, cached on the type. */
        uint64_t keys;
        if ((rc = field_u64(c, type, L->type.ht_cached_keys, &keys)) < 0)
            return rc;
        if ((rc = keys_view(c, keys, v)) < 0 || (rc = view_set_values(c, v, values)) < 0)
            return rc;
        *have = true;
        return PYOBJ_OK;
    }

    int64_t dictoffset;
    if ((rc = rd_i64(c, type + (uint64_t)L->type.dictoffset, &dictoffset)) < 0)
        return rc;
    if (dictoffset == 0)
        return PYOBJ_OK; /* no __dict__ (__slots__ or a builtin type) */
    if (dictoffset < 0 || dictoffset > (1 << 20))
        return PYOBJ_E_UNSUPPORTED; /* var-sized base (int, tuple subclasses) */
    uint64_t dict;
    if ((rc = rd_u64(c, obj + (uint64_t)dictoffset, &dict)) < 0)
        return rc;
    if (!dict)
        return PYOBJ_OK;
    *have = true;
    return dict_view_of(c, dict, v);
}

int pyobj_getattr(const pyobj_ctx *c, uint64_t obj, const char *name, uint64_t *value)
{
    if (!c || !name || !value)
        return PYOBJ_E_ARG;
    dict_view v;
    bool have;
    int rc = instance_view(c, obj, &v, &have);
    if (rc < 0)
        return rc;
    if (!have)
        return PYOBJ_E_NOTFOUND;
    return view_lookup(c, &v, name, value);
}

int pyobj_attrs_iter(const pyobj_ctx *c, uint64_t obj, pyobj_pair_cb cb, void *ud)
{
    if (!c || !cb)
        return PYOBJ_E_ARG;
    dict_view v;
    bool have;
    int rc = instance_view(c, obj, &v, &have);
    if (rc < 0 || !have)
        return rc;
    return view_iter(c, &v, cb, ud);
}

/* ---- modules -------------------------------------------------------------------------------- */

int pyobj_module_find(const pyobj_ctx *c, uint64_t sys_modules, const char *name,
                      uint64_t *module)
{
    if (!module)
        return PYOBJ_E_ARG;
    uint64_t m = 0;
    int rc = pyobj_dict_get_str(c, sys_modules, name, &m);
    if (rc < 0)
        return rc;
    /* sys.modules may map a name to None (import blocked) or to any object. */
    if ((rc = require_instance(c, m, "module")) < 0)
        return rc;
    *module = m;
    return PYOBJ_OK;
}

int pyobj_module_global(const pyobj_ctx *c, uint64_t module, const char *name, uint64_t *value)
{
    if (!c || !name || !value)
        return PYOBJ_E_ARG;
    int rc = require_instance(c, module, "module");
    if (rc < 0)
        return rc;
    uint64_t dict;
    if ((rc = rd_u64(c, module + PYOBJ_MODULE_MD_DICT, &dict)) < 0)
        return rc;
    if (!obj_ok(dict))
        return PYOBJ_E_PTR;
    return pyobj_dict_get_str(c, dict, name, value);
}

/* ---- functions, methods, cells -------------------------------------------------------------- */

int pyobj_func_qualname(const pyobj_ctx *c, uint64_t func, uint64_t *qualname)
{
    if (!qualname)
        return PYOBJ_E_ARG;
    int rc = require_instance(c, func, "function");
    if (rc < 0)
        return rc;
    return field_obj(c, func, c->L->func.qualname, false, qualname);
}

int pyobj_func_closure(const pyobj_ctx *c, uint64_t func, uint64_t *closure)
{
    if (!closure)
        return PYOBJ_E_ARG;
    int rc = require_instance(c, func, "function");
    if (rc < 0)
        return rc;
    return field_obj(c, func, c->L->func.closure, true, closure);
}

int pyobj_method_parts(const pyobj_ctx *c, uint64_t method, uint64_t *func, uint64_t *self)
{
    int rc = require_instance(c, method, "method");
    if (rc < 0)
        return rc;
    uint64_t f, s;
    if ((rc = field_obj(c, method, c->L->method.func, false, &f)) < 0 ||
        (rc = field_obj(c, method, c->L->method.self, false, &s)) < 0)
        return rc;
    if (func)
        *func = f;
    if (self)
        *self = s;
    return PYOBJ_OK;
}

int pyobj_cfunc_name(const pyobj_ctx *c, uint64_t cfunc, char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return PYOBJ_E_ARG;
    buf[0] = '\0';
    int rc = require_instance(c, cfunc, "builtin_function_or_method");
    if (rc < 0)
        return rc;
    uint64_t ml, name;
    if ((rc = field_u64(c, cfunc, c->L->cfunc.ml, &ml)) < 0)
        return rc;
    if (!obj_ok(ml))
        return PYOBJ_E_PTR;
    if ((rc = field_u64(c, ml, c->L->methoddef.name, &name)) < 0)
        return rc;
    return read_cstr(c, name, buf, cap);
}

int pyobj_cfunc_self(const pyobj_ctx *c, uint64_t cfunc, uint64_t *self)
{
    if (!self)
        return PYOBJ_E_ARG;
    int rc = require_instance(c, cfunc, "builtin_function_or_method");
    if (rc < 0)
        return rc;
    return field_obj(c, cfunc, c->L->cfunc.self, true, self);
}

int pyobj_cell_get(const pyobj_ctx *c, uint64_t cell, uint64_t *obj)
{
    if (!obj)
        return PYOBJ_E_ARG;
    int rc = require_instance(c, cell, "cell");
    if (rc < 0)
        return rc;
    return field_obj(c, cell, c->L->cell.ref, true, obj);
}
