#include "tui_text.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <wchar.h>

/* One character of s: its code point (or -1 for an invalid sequence) and its length in bytes. */
static int32_t utf8_next(const unsigned char *s, int *len)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    int n;
    int32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        *len = 1;
        return -1;
    }
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *len = 1;
            return -1;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
        *len = 1;
        return -1;
    }
    *len = n;
    return cp;
}

/* Columns of one code point as written: 0 (dropped), 1 or 2; *replace when it is shown as '?'. */
static int cp_width(int32_t cp, bool utf8, bool *replace)
{
    *replace = false;
    if (cp < 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) || (!utf8 && cp >= 0x80)) {
        *replace = true;
        return 1;
    }
    if (cp < 0x80)
        return 1;
    int w = wcwidth((wchar_t)cp);
    if (w < 0) {
        *replace = true;
        return 1;
    }
    return w > 2 ? 2 : w; /* 0: combining marks and the like are dropped */
}

int tui_text_width(const char *s, bool utf8)
{
    int cols = 0;
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        int len;
        bool rep;
        cols += cp_width(utf8_next(p, &len), utf8, &rep);
        p += len;
    }
    return cols;
}

int tui_fit(char *out, size_t cap, const char *s, int width, bool utf8)
{
    if (!out || cap == 0)
        return 0;
    out[0] = '\0';
    if (width <= 0)
        return 0;
    const char *ell = utf8 ? "\xe2\x80\xa6" : "~";
    size_t ell_len = strlen(ell);
    bool cut = tui_text_width(s, utf8) > width;
    int limit = cut ? width - 1 : width;
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t o = 0;
    int cols = 0;
    while (*p) {
        int len;
        bool rep;
        int32_t cp = utf8_next(p, &len);
        int w = cp_width(cp, utf8, &rep);
        if (cols + w > limit)
            break;
        size_t need = rep ? 1 : (w == 0 ? 0 : (size_t)len);
        if (o + need + ell_len + 1 > cap)
            break;
        if (rep)
            out[o++] = '?';
        else if (w > 0) {
            memcpy(out + o, p, (size_t)len);
            o += (size_t)len;
        }
        cols += w;
        p += len;
    }
    if (cut && o + ell_len + 1 <= cap) {
        memcpy(out + o, ell, ell_len);
        o += ell_len;
        cols++;
    }
    out[o] = '\0';
    return cols;
}

int tui_fit_pad(char *out, size_t cap, const char *s, int width, bool utf8)
{
    int cols = tui_fit(out, cap, s, width, utf8);
    size_t o = strlen(out);
    while (cols < width && o + 1 < cap) {
        out[o++] = ' ';
        cols++;
    }
    out[o] = '\0';
    return cols;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

int tui_format_frame(char *out, size_t cap, const char *name, const char *file, int line,
                     int width, bool utf8)
{
    name = name ? name : "?";
    file = file ? file : "";
    char buf[4096];
    if (!file[0]) {
        snprintf(buf, sizeof(buf), "%s", name);
        return tui_fit(out, cap, buf, width, utf8);
    }
    const char *files[2] = {file, base_name(file)};
    for (int i = 0; i < 2; i++) {
        if (line > 0)
            snprintf(buf, sizeof(buf), "%s (%s:%d)", name, files[i], line);
        else
            snprintf(buf, sizeof(buf), "%s (%s)", name, files[i]);
        if (tui_text_width(buf, utf8) <= width || i == 1)
            break;
    }
    return tui_fit(out, cap, buf, width, utf8);
}

void tui_format_duration(char *out, size_t cap, uint64_t ns)
{
    double s = (double)ns / 1e9;
    if (ns == 0)
        snprintf(out, cap, "0");
    else if (ns < 1000000ull)
        snprintf(out, cap, "%lluus", (unsigned long long)((ns + 500) / 1000));
    else if (ns < 9995000ull) /* thresholds keep the rounded text in its unit */
        snprintf(out, cap, "%.2fms", (double)ns / 1e6);
    else if (ns < 999950000ull)
        snprintf(out, cap, "%.1fms", (double)ns / 1e6);
    else if (s < 9.995)
        snprintf(out, cap, "%.2fs", s);
    else if (s < 59.95)
        snprintf(out, cap, "%.1fs", s);
    else if (s < 3600) {
        unsigned long long t = (unsigned long long)s;
        snprintf(out, cap, "%llum%02llus", t / 60, t % 60);
    } else {
        unsigned long long t = (unsigned long long)(s / 60);
        snprintf(out, cap, "%lluh%02llum", t / 60, t % 60);
    }
}

void tui_format_pct(char *out, size_t cap, uint64_t part, uint64_t whole)
{
    if (whole == 0) {
        snprintf(out, cap, "-");
        return;
    }
    double p = 100.0 * (double)part / (double)whole;
    snprintf(out, cap, "%.1f", p > 100.0 ? 100.0 : p);
}

void tui_format_count(char *out, size_t cap, uint64_t n)
{
    if (n < 10000)
        snprintf(out, cap, "%llu", (unsigned long long)n);
    else if (n < 1000000)
        snprintf(out, cap, "%.1fk", (double)n / 1e3);
    else if (n < 1000000000ull)
        snprintf(out, cap, "%.2fM", (double)n / 1e6);
    else
        snprintf(out, cap, "%.2fG", (double)n / 1e9);
}

bool tui_contains(const char *haystack, const char *needle)
{
    if (!needle || !*needle)
        return true;
    if (!haystack)
        return false;
    size_t n = strlen(needle);
    for (const char *h = haystack; *h; h++) {
        size_t i = 0;
        while (i < n && h[i] &&
               tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return false;
}
