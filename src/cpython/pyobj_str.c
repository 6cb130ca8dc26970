/* str and bytes objects of a target process: str decoding to UTF-8, comparison, bytes. */
#include "pyobj_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- str ------------------------------------------------------------------------------------ */

typedef struct ustr {
    uint64_t length; /* code points */
    unsigned kind;   /* bytes per code point: 1, 2, 4 */
    bool ascii;
    bool compact;    /* data follows the header, ended by a zero code unit */
    uint64_t data;   /* address of the code points */
} ustr;

static int str_info(const pyobj_ctx *c, uint64_t obj, ustr *u)
{
    if (!c)
        return PYOBJ_E_ARG;
    int rc = pyobj_check_type_flag(c, obj, TPF_UNICODE_SUBCLASS);
    if (rc < 0)
        return rc;
    const py_layout *L = c->L;
    int64_t length;
    uint32_t state;
    if ((rc = pyobj_read_i64(c, obj + (uint64_t)L->unicode.length, &length)) < 0 ||
        (rc = pyobj_read(c, obj + (uint64_t)L->unicode.state, &state, sizeof state)) < 0)
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
    u->compact = compact;
    if (compact) {
        u->data = obj + (uint64_t)(ascii ? L->unicode.ascii_data : L->unicode.compact_data);
    } else {
        /* PyUnicodeObject (str subclasses): data.any follows PyCompactUnicodeObject. */
        if ((rc = pyobj_read_u64(c, obj + (uint64_t)L->unicode.compact_data, &u->data)) < 0)
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
        if ((rc = pyobj_read(c, u->data + done * u->kind, chunk, (size_t)(n * u->kind))) < 0)
            break;
        for (uint64_t i = 0; i < n; i++) {
            uint32_t cp;
            if (u->kind == 1) {
                cp = chunk[i];
                if (u->ascii && cp >= 0x80) {
                    /* not what the header says: memory reused while it was read */
                    rc = PYOBJ_E_CORRUPT;
                    break;
                }
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
        if (rc < 0)
            break;
        done += n;
    }
    /* CPython ends a compact string's code points with a zero one: a string read while its
     * memory was being reused for something else rarely still has it */
    if (rc >= 0 && !truncated && u->compact) {
        uint32_t end = 1;
        if ((rc = pyobj_read(c, u->data + u->length * u->kind, &end, u->kind)) >= 0 && end != 0)
            rc = PYOBJ_E_CORRUPT;
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
size_t pyobj_utf8_count(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

int pyobj_str_equals_counted(const pyobj_ctx *c, uint64_t str, const char *s, size_t n,
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
    return pyobj_str_equals_counted(c, str, s, n, pyobj_utf8_count(s, n));
}

/* ---- bytes ---------------------------------------------------------------------------------- */

int pyobj_bytes(const pyobj_ctx *c, uint64_t obj, void *buf, size_t cap, size_t *size)
{
    if (!c || (!buf && cap))
        return PYOBJ_E_ARG;
    int rc = pyobj_check_type_flag(c, obj, TPF_BYTES_SUBCLASS);
    if (rc < 0)
        return rc;
    int64_t n;
    if ((rc = pyobj_read_i64(c, obj + (uint64_t)c->L->bytes.size, &n)) < 0)
        return rc;
    if (n < 0 || (uint64_t)n > PYOBJ_MAX_STR_LEN)
        return PYOBJ_E_CORRUPT;
    if (size)
        *size = (size_t)n;
    size_t want = (size_t)n < cap ? (size_t)n : cap;
    if (want && (rc = pyobj_read(c, obj + (uint64_t)c->L->bytes.sval, buf, want)) < 0)
        return rc;
    return want < (size_t)n ? PYOBJ_TRUNCATED : PYOBJ_OK;
}
