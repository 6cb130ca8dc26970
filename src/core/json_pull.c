#include "json_pull.h"

#include "grow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void json_pull_init(json_pull *j, const char *text, size_t len)
{
    memset(j, 0, sizeof(*j));
    j->text = j->p = text;
    j->end = text + len;
    j->need_value = true;
}

void json_pull_free(json_pull *j)
{
    free(j->str);
    j->str = NULL;
}

static jtok fail(json_pull *j, const char *what)
{
    snprintf(j->err, sizeof j->err, "%s at byte %zu", what, (size_t)(j->p - j->text));
    j->p = j->end;
    j->done = true;
    return JT_ERROR;
}

static void skip_ws(json_pull *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool put_char(json_pull *j, char c)
{
    if (j->str_len + 2 > j->str_cap &&
        !grow_array((void **)&j->str, &j->str_cap, j->str_len + 2, 1, 64, SIZE_MAX))
        return false;
    j->str[j->str_len++] = c;
    j->str[j->str_len] = '\0';
    return true;
}

static bool put_utf8(json_pull *j, uint32_t cp)
{
    if (cp < 0x80)
        return put_char(j, (char)cp);
    if (cp < 0x800)
        return put_char(j, (char)(0xc0 | cp >> 6)) && put_char(j, (char)(0x80 | (cp & 0x3f)));
    if (cp < 0x10000)
        return put_char(j, (char)(0xe0 | cp >> 12)) &&
               put_char(j, (char)(0x80 | ((cp >> 6) & 0x3f))) &&
               put_char(j, (char)(0x80 | (cp & 0x3f)));
    return put_char(j, (char)(0xf0 | cp >> 18)) && put_char(j, (char)(0x80 | ((cp >> 12) & 0x3f))) &&
           put_char(j, (char)(0x80 | ((cp >> 6) & 0x3f))) && put_char(j, (char)(0x80 | (cp & 0x3f)));
}

static int hex4(const char *p, const char *end, uint32_t *out)
{
    if (end - p < 4)
        return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static bool read_string(json_pull *j)
{
    j->p++; /* the opening quote */
    j->str_len = 0;
    if (!put_char(j, 0))
        return false;
    j->str_len = 0;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"')
            return true;
        if (c < 0x20)
            return false;
        if (c != '\\') {
            if (!put_char(j, (char)c))
                return false;
            continue;
        }
        if (j->p >= j->end)
            return false;
        char e = *j->p++;
        uint32_t cp;
        switch (e) {
        case '"': case '\\': case '/': cp = (uint32_t)e; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (hex4(j->p, j->end, &cp) != 0)
                return false;
            j->p += 4;
            if (cp >= 0xd800 && cp < 0xdc00) { /* a surrogate pair */
                uint32_t lo;
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
                    hex4(j->p + 2, j->end, &lo) != 0 || lo < 0xdc00 || lo >= 0xe000)
                    return false;
                j->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                return false;
            }
            break;
        default: return false;
        }
        if (!put_utf8(j, cp))
            return false;
    }
    return false;
}

static bool read_number(json_pull *j)
{
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p >= j->end)
        return false;
    if (*j->p == '0') {
        j->p++;
    } else if (*j->p >= '1' && *j->p <= '9') {
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    } else {
        return false;
    }
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return false;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return false;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    char buf[64];
    size_t n = (size_t)(j->p - s);
    if (n >= sizeof buf) { /* long digit runs: exact value is not needed, the magnitude is */
        n = sizeof buf - 1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    j->num = strtod(buf, NULL);
    return true;
}

static bool literal(json_pull *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return false;
    j->p += n;
    return true;
}

/* A value ended: the container above now has an item, or the document is done. */
static void value_done(json_pull *j)
{
    j->had_item = true;
    j->need_value = false;
    if (j->depth == 0)
        j->done = true;
}

jtok json_next(json_pull *j)
{
    skip_ws(j);
    if (j->done) {
        if (j->err[0])
            return JT_ERROR;
        return j->p == j->end ? JT_EOF : fail(j, "text after the JSON value");
    }
    if (j->p >= j->end)
        return fail(j, "unexpected end");
    char top = j->depth ? j->stack[j->depth - 1] : 0;
    char c = *j->p;
    if (!j->need_value) {
        /* inside a container, after an item (or at its start): a close, a comma, or (object)
         * a key */
        if ((c == '}' && top == '{') || (c == ']' && top == '[')) {
            j->p++;
            j->depth--;
            value_done(j);
            return c == '}' ? JT_END_OBJECT : JT_END_ARRAY;
        }
        if (j->had_item) {
            if (c != ',')
                return fail(j, "expected ',' or a closing bracket");
            j->p++;
            skip_ws(j);
            if (j->p >= j->end)
                return fail(j, "unexpected end");
            c = *j->p;
        }
        if (top == '{') {
            if (c != '"' || !read_string(j))
                return fail(j, "expected an object key");
            skip_ws(j);
            if (j->p >= j->end || *j->p != ':')
                return fail(j, "expected ':'");
            j->p++;
            j->need_value = true;
            return JT_KEY;
        }
        j->need_value = true; /* an array's next item */
    }
    /* a value */
    if (c == '{' || c == '[') {
        if (j->depth >= JSON_PULL_MAX_DEPTH)
            return fail(j, "nested too deeply");
        j->p++;
        j->stack[j->depth++] = c;
        j->need_value = false;
        j->had_item = false;
        return c == '{' ? JT_BEGIN_OBJECT : JT_BEGIN_ARRAY;
    }
    if (c == ']' && top == '[' && !j->had_item) { /* an empty array */
        j->p++;
        j->depth--;
        value_done(j);
        return JT_END_ARRAY;
    }
    jtok t;
    if (c == '"') {
        if (!read_string(j))
            return fail(j, "bad string");
        t = JT_STRING;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        if (!read_number(j))
            return fail(j, "bad number");
        t = JT_NUMBER;
    } else if (literal(j, "true")) {
        t = JT_TRUE;
    } else if (literal(j, "false")) {
        t = JT_FALSE;
    } else if (literal(j, "null")) {
        t = JT_NULL;
    } else {
        return fail(j, "expected a value");
    }
    value_done(j);
    return t;
}

bool json_skip(json_pull *j, jtok begun)
{
    if (begun != JT_BEGIN_OBJECT && begun != JT_BEGIN_ARRAY)
        return begun != JT_ERROR && begun != JT_EOF;
    int depth = 1;
    while (depth > 0) {
        jtok t = json_next(j);
        if (t == JT_ERROR || t == JT_EOF)
            return false;
        if (t == JT_BEGIN_OBJECT || t == JT_BEGIN_ARRAY)
            depth++;
        else if (t == JT_END_OBJECT || t == JT_END_ARRAY)
            depth--;
    }
    return true;
}
