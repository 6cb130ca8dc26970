#include "pystr.h"

#include <stdlib.h>
#include <string.h>

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp >= 0xD800 && cp <= 0xDFFF)
        cp = 0xFFFD; /* lone surrogates are not valid UTF-8 */
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
    if (cp > 0x10FFFF)
        cp = 0xFFFD;
    if (cp == 0xFFFD)
        return put_utf8(out, cp);
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int pystr_read(mem *m, const py_layout *L, uint64_t addr, char *buf, size_t buflen)
{
    if (buflen == 0 || !mem_ptr_ok(addr, true))
        return -1;
    int64_t length;
    uint32_t state;
    if (mem_read(m, addr + (uint64_t)L->unicode.length, &length, 8) != 0 ||
        mem_read(m, addr + (uint64_t)L->unicode.state, &state, 4) != 0)
        return -1;
    if (length < 0 || length > (1 << 24))
        return -1;
    unsigned kind = (state >> L->unicode.kind_shift) & 7;
    bool compact = (state >> L->unicode.compact_bit) & 1;
    bool ascii = (state >> L->unicode.ascii_bit) & 1;
    if (!compact || (kind != 1 && kind != 2 && kind != 4) || (ascii && kind != 1))
        return -1;
    size_t nchars = (size_t)length > PYSTR_MAX_CHARS ? PYSTR_MAX_CHARS : (size_t)length;
    uint64_t data = addr + (uint64_t)(ascii ? L->unicode.ascii_data : L->unicode.compact_data);
    uint8_t raw[PYSTR_MAX_CHARS * 4];
    if (mem_read(m, data, raw, nchars * kind) != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < nchars; i++) {
        uint32_t cp;
        if (kind == 1)
            cp = raw[i];
        else if (kind == 2)
            cp = (uint32_t)raw[2 * i] | (uint32_t)raw[2 * i + 1] << 8;
        else
            memcpy(&cp, raw + 4 * i, 4);
        if (ascii && cp >= 0x80)
            return -1; /* torn or not a str */
        char tmp[4];
        size_t n = put_utf8(tmp, cp);
        if (o + n + 1 > buflen)
            break;
        memcpy(buf + o, tmp, n);
        o += n;
    }
    buf[o] = '\0';
    return (int)o;
}

const char *pystr_intern(mem *m, const py_layout *L, strtab *st, uint64_t addr)
{
    char buf[PYSTR_MAX_CHARS * 4 + 1];
    int n = pystr_read(m, L, addr, buf, sizeof(buf));
    return n < 0 ? NULL : strtab_intern(st, buf, (size_t)n);
}

long pybytes_read_alloc(mem *m, const py_layout *L, uint64_t addr, size_t max, uint8_t **out)
{
    *out = NULL;
    if (!mem_ptr_ok(addr, true))
        return -1;
    int64_t size;
    if (mem_read(m, addr + (uint64_t)L->bytes.size, &size, 8) != 0 || size < 0 ||
        (uint64_t)size > max)
        return -1;
    uint8_t *b = malloc((size_t)size + 1);
    if (!b)
        return -1;
    if (size > 0 && mem_read(m, addr + (uint64_t)L->bytes.sval, b, (size_t)size) != 0) {
        free(b);
        return -1;
    }
    *out = b;
    return (long)size;
}
