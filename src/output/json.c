#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void flush_buf(json_writer *w)
{
    if (w->len == 0 || w->error)
        return;
    errno = 0;
    if (fwrite(w->buf, 1, w->len, w->out) != w->len)
        w->error = errno ? errno : EIO;
    w->len = 0;
}

static void put_bytes(json_writer *w, const char *p, size_t n)
{
    if (w->error)
        return;
    while (n > 0) {
        if (w->len == sizeof(w->buf)) {
            flush_buf(w);
            if (w->error)
                return;
        }
        size_t room = sizeof(w->buf) - w->len;
        size_t k = n < room ? n : room;
        memcpy(w->buf + w->len, p, k);
        w->len += k;
        p += k;
        n -= k;
    }
}

static void put_char(json_writer *w, char c)
{
    if (w->len == sizeof(w->buf))
        flush_buf(w);
    if (w->error)
        return;
    w->buf[w->len++] = c;
}

void json_init(json_writer *w, FILE *out)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    if (!out)
        w->error = EINVAL;
}

/* Emits the separator due before a value at the current depth. */
static void before_value(json_writer *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->depth > 0) {
        if (w->is_object[w->depth - 1]) /* a value without a key inside an object */
            w->error = w->error ? w->error : EINVAL;
        if (w->has_items[w->depth - 1])
            put_char(w, ',');
        w->has_items[w->depth - 1] = true;
    }
}

static void begin(json_writer *w, bool object)
{
    before_value(w);
    if (w->depth >= JSON_MAX_DEPTH) {
        w->error = w->error ? w->error : EOVERFLOW;
        return;
    }
    put_char(w, object ? '{' : '[');
    w->is_object[w->depth] = object;
    w->has_items[w->depth] = false;
    w->depth++;
}

static void end(json_writer *w, bool object)
{
    if (w->depth <= 0 || w->is_object[w->depth - 1] != object || w->after_key) {
        w->error = w->error ? w->error : EINVAL;
        return;
    }
    w->depth--;
    put_char(w, object ? '}' : ']');
}

void json_begin_object(json_writer *w) { begin(w, true); }
void json_end_object(json_writer *w) { end(w, true); }
void json_begin_array(json_writer *w) { begin(w, false); }
void json_end_array(json_writer *w) { end(w, false); }

size_t utf8_valid_len(const unsigned char *s, size_t n, size_t *skip)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        *skip = 1; /* continuation byte, C0/C1, F5..FF */
        return 0;
    }
    size_t i = 1;
    for (; i < need && i < n; i++) {
        unsigned char b = s[i];
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h)
            break;
    }
    if (i == need)
        return need;
    *skip = i; /* lead byte plus the continuation bytes that were still plausible */
    return 0;
}

static const char hexdigits[] = "0123456789abcdef";

void json_string_n(json_writer *w, const char *str, size_t len)
{
    before_value(w);
    put_char(w, '"');
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run = 0; /* s[run..i) is a pending run of bytes to copy verbatim */
    while (i < len) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        size_t skip = 1, ok = c < 0x80 ? 1 : utf8_valid_len(s + i, len - i, &skip);
        if (c >= 0x80 && ok) {
            i += ok;
            continue;
        }
        put_bytes(w, (const char *)s + run, i - run);
        if (c < 0x80) {
            char esc[6] = {'\\', 0, 0, 0, 0, 0};
            size_t n = 2;
            switch (c) {
            case '"': esc[1] = '"'; break;
            case '\\': esc[1] = '\\'; break;
            case '\n': esc[1] = 'n'; break;
            case '\r': esc[1] = 'r'; break;
            case '\t': esc[1] = 't'; break;
            case '\b': esc[1] = 'b'; break;
            case '\f': esc[1] = 'f'; break;
            default:
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hexdigits[c >> 4];
                esc[5] = hexdigits[c & 15];
                n = 6;
            }
            put_bytes(w, esc, n);
            i++;
        } else {
            put_bytes(w, "\xEF\xBF\xBD", 3); /* U+FFFD REPLACEMENT CHARACTER */
            i += skip;
        }
        run = i;
    }
    put_bytes(w, (const char *)s + run, i - run);
    put_char(w, '"');
}

void json_string(json_writer *w, const char *s)
{
    json_string_n(w, s ? s : "", s ? strlen(s) : 0);
}

void json_key(json_writer *w, const char *key)
{
    if (w->depth <= 0 || !w->is_object[w->depth - 1] || w->after_key) {
        w->error = w->error ? w->error : EINVAL;
        return;
    }
    if (w->has_items[w->depth - 1])
        put_char(w, ',');
    w->has_items[w->depth - 1] = true;
    w->after_key = true; /* lets json_string_n below through without a separator */
    json_string(w, key);
    put_char(w, ':');
    w->after_key = true;
}

/* Decimal digits of v, right-aligned in buf[24]; returns the first digit. */
static char *format_u64(uint64_t v, char buf[24])
{
    char *p = buf + 24;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

void json_uint(json_writer *w, uint64_t v)
{
    char buf[24];
    before_value(w);
    char *p = format_u64(v, buf);
    put_bytes(w, p, (size_t)(buf + 24 - p));
}

void json_int(json_writer *w, int64_t v)
{
    char buf[24];
    before_value(w);
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char *p = format_u64(mag, buf);
    if (v < 0)
        put_char(w, '-');
    put_bytes(w, p, (size_t)(buf + 24 - p));
}

void json_bool(json_writer *w, bool v)
{
    before_value(w);
    put_bytes(w, v ? "true" : "false", v ? 4 : 5);
}

/* v / 10^digits written exactly, without trailing zeros. */
static void json_fixed(json_writer *w, uint64_t v, int digits)
{
    uint64_t scale = 1;
    for (int i = 0; i < digits; i++)
        scale *= 10;
    char buf[24];
    before_value(w);
    char *p = format_u64(v / scale, buf);
    put_bytes(w, p, (size_t)(buf + 24 - p));
    uint64_t frac = v % scale;
    if (frac == 0)
        return;
    char fd[24] = {'.'};
    for (int i = digits; i >= 1; i--) {
        fd[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    size_t n = (size_t)digits + 1;
    while (fd[n - 1] == '0')
        n--;
    put_bytes(w, fd, n);
}

void json_seconds_ns(json_writer *w, uint64_t ns)
{
    json_fixed(w, ns, 9);
}

void json_micros_ns(json_writer *w, uint64_t ns)
{
    json_fixed(w, ns, 3);
}

void json_double(json_writer *w, double v)
{
    if (!isfinite(v)) {
        json_uint(w, 0);
        return;
    }
    if (v == floor(v) && fabs(v) < 9007199254740992.0) { /* integral: "1000", not "1e+03" */
        json_int(w, (int64_t)v);
        return;
    }
    char buf[40];
    /* Shortest precision that reads back exactly. printf and strtod share the current locale, so
     * the round trip is consistent; the decimal separator is then forced to '.'. */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    char out[48];
    size_t n = 0;
    bool in_sep = false;
    for (const char *p = buf; *p && n < sizeof(out) - 1; p++) {
        char c = *p;
        bool plain = (c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e' || c == 'E';
        if (plain) {
            out[n++] = c;
            in_sep = false;
        } else if (!in_sep) { /* the locale's decimal point, possibly several bytes */
            out[n++] = '.';
            in_sep = true;
        }
    }
    before_value(w);
    put_bytes(w, out, n);
}

void json_kv_string(json_writer *w, const char *key, const char *s)
{
    json_key(w, key);
    json_string(w, s);
}

void json_kv_int(json_writer *w, const char *key, int64_t v)
{
    json_key(w, key);
    json_int(w, v);
}

void json_kv_uint(json_writer *w, const char *key, uint64_t v)
{
    json_key(w, key);
    json_uint(w, v);
}

void json_kv_double(json_writer *w, const char *key, double v)
{
    json_key(w, key);
    json_double(w, v);
}

int json_finish(json_writer *w)
{
    flush_buf(w);
    if (!w->error && (w->depth != 0 || w->after_key))
        w->error = EINVAL;
    errno = 0;
    if (!w->error && w->out && fflush(w->out) != 0)
        w->error = errno ? errno : EIO;
    if (!w->error && w->out && ferror(w->out))
        w->error = EIO;
    if (w->error) {
        errno = w->error;
        return -1;
    }
    return 0;
}
