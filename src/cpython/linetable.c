/* Decoding of co_linetable (3.10 pairs, 3.11+ location entries). See linetable.h and
 * docs/linetables.md for the formats.
 *
 * One rule explains the bounds handling: CPython decodes a table straight out of a bytes object,
 * whose data is always followed by a NUL byte, and its decoder relies on that (an odd-length 3.10
 * table reads its last line delta from the NUL; a 3.11+ varint cut at the end of the table is
 * ended by it). We emulate exactly that one extra zero byte. Anything that would make CPython
 * read further than that is undefined there and "malformed" here: the iteration stops.
 */
#include "linetable.h"

/* 3.11+ entry codes (bits 3-6 of an entry's first byte). */
enum {
    LOC_ONE_LINE0 = 10, /* 10, 11, 12: line delta 0, 1, 2, then two column bytes */
    LOC_NO_COLUMNS = 13,
    LOC_LONG = 14,
    LOC_NONE = 15,
};

/* A varint chunk carries 6 bits; 6 chunks cover 32 bits, longer ones are never written. */
#define VARINT_MAX_CHUNKS 6

/* Line arithmetic wraps like CPython's int does in practice, without C signed overflow. */
static int32_t add_wrapping(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

/* Byte i of the table, where the byte just past the end is the bytes object's NUL. */
static uint8_t byte_or_nul(const linetable_iter *it, size_t i)
{
    return i < it->len ? it->table[i] : 0;
}

static bool stop(linetable_iter *it, bool malformed)
{
    it->done = true;
    it->malformed = it->malformed || malformed;
    return false;
}

/* 3.10: (unsigned byte-offset delta, signed line delta) pairs; line delta -128 = no line.
 * Empty entries only carry line deltas: CPython folds them into the next non-empty one. */
static bool next_raw_310(linetable_iter *it, int32_t *start, int32_t *end, int32_t *line)
{
    if (it->pos >= it->len)
        return stop(it, false);
    for (;;) {
        /* CPython reads the next entry of an empty one without checking for the end. */
        if (it->pos >= it->len)
            return stop(it, true);
        uint8_t bdelta = it->table[it->pos];
        int8_t ldelta = (int8_t)byte_or_nul(it, it->pos + 1);
        it->pos += 2;
        int32_t range_start = it->end;
        it->end += bdelta;
        int32_t range_line = -1;
        if (ldelta != -128) {
            it->line = add_wrapping(it->line, ldelta);
            range_line = it->line;
        }
        if (bdelta != 0) {
            *start = range_start;
            *end = it->end;
            *line = range_line;
            return true;
        }
    }
}

/* Unsigned little-endian varint of 6-bit chunks (bit 6 = more follow) starting at byte i.
 * CPython reads it byte by byte regardless of entry boundaries, and so do we. */
static bool read_varint(const linetable_iter *it, size_t i, uint32_t *out)
{
    uint32_t value = 0;
    for (unsigned chunk = 0; chunk < VARINT_MAX_CHUNKS; chunk++, i++) {
        uint8_t b = byte_or_nul(it, i); /* the NUL ends a varint cut at the end */
        value |= (uint32_t)(b & 63) << (6 * chunk); /* bits past 32 drop, as in CPython */
        if (!(b & 64)) {
            *out = value;
            return true;
        }
    }
    return false;
}

/* Signed varint: the lowest bit is the sign, the rest the magnitude. */
static bool read_signed_varint(const linetable_iter *it, size_t i, int32_t *out)
{
    uint32_t u;
    if (!read_varint(it, i, &u))
        return false;
    int32_t magnitude = (int32_t)(u >> 1);
    *out = (u & 1) ? -magnitude : magnitude;
    return true;
}

/* 3.11+: entries start with a byte 1cccclll (code, length-1 in code units), followed by bytes
 * with the top bit clear. Only the line delta matters here; columns are skipped. */
static bool next_raw_311(linetable_iter *it, int32_t *start, int32_t *end, int32_t *line)
{
    if (it->pos >= it->len)
        return stop(it, false);
    uint8_t first = it->table[it->pos];
    unsigned code = (first >> 3) & 15;
    int32_t delta = 0;
    if (code == LOC_NO_COLUMNS || code == LOC_LONG) {
        if (!read_signed_varint(it, it->pos + 1, &delta))
            return stop(it, true);
    } else if (code >= LOC_ONE_LINE0 && code <= LOC_ONE_LINE0 + 2) {
        delta = (int32_t)(code - LOC_ONE_LINE0);
    }
    it->line = add_wrapping(it->line, delta);
    /* Like CPython, only a real entry start (top bit set) with code 15 means "no location". */
    bool no_location = (first >> 3) == (0x10 | LOC_NONE);
    *start = it->end;
    it->end += (int32_t)((first & 7) + 1) * 2;
    *end = it->end;
    *line = no_location ? -1 : it->line;
    do {
        it->pos++;
    } while (it->pos < it->len && !(it->table[it->pos] & 0x80));
    return true;
}

static bool next_raw(linetable_iter *it, int32_t *start, int32_t *end, int32_t *line)
{
    if (it->done)
        return false;
    if (it->kind == LINETABLE_310)
        return next_raw_310(it, start, end, line);
    return next_raw_311(it, start, end, line);
}

void linetable_iter_init(linetable_iter *it, uint8_t kind, const uint8_t *table, size_t len,
                         int firstlineno, linetable_iter_mode mode)
{
    *it = (linetable_iter){
        .table = table,
        .len = len,
        .kind = kind,
        .mode = (uint8_t)mode,
        .line = firstlineno,
    };
    bool bad = (kind != LINETABLE_310 && kind != LINETABLE_311) || (table == NULL && len > 0) ||
               len > LINETABLE_MAX_LEN ||
               (mode != LINETABLE_ITER_RAW && mode != LINETABLE_ITER_MERGE);
    if (bad) {
        it->len = 0;
        it->done = true;
        it->malformed = true;
    }
}

bool linetable_iter_next(linetable_iter *it, int *start, int *end, int *line)
{
    int32_t s, e, l;
    if (it->have_pending) {
        s = it->pending_start;
        e = it->pending_end;
        l = it->pending_line;
        it->have_pending = false;
    } else if (!next_raw(it, &s, &e, &l)) {
        return false;
    }
    if (it->mode == LINETABLE_ITER_MERGE) {
        int32_t ns, ne, nl;
        while (next_raw(it, &ns, &ne, &nl)) {
            if (nl != l) {
                it->pending_start = ns;
                it->pending_end = ne;
                it->pending_line = nl;
                it->have_pending = true;
                break;
            }
            e = ne;
        }
    }
    *start = s;
    *end = e;
    *line = l;
    return true;
}

bool linetable_iter_malformed(const linetable_iter *it)
{
    return it->malformed;
}

int linetable_line_for_offset(uint8_t kind, const uint8_t *table, size_t len, int firstlineno,
                              int byte_offset)
{
    if (byte_offset < 0)
        return firstlineno;
    linetable_iter it;
    linetable_iter_init(&it, kind, table, len, firstlineno, LINETABLE_ITER_RAW);
    if (it.done)
        return -1;
    /* Ranges are contiguous from 0, so the first one ending after the offset contains it.
     * One loop per format, so that each inlines its decoder (this is the profiler's hot path
     * when a line is not cached). */
    int32_t s, e, l;
    if (kind == LINETABLE_310) {
        while (next_raw_310(&it, &s, &e, &l))
            if (byte_offset < e)
                return l;
    } else {
        while (next_raw_311(&it, &s, &e, &l))
            if (byte_offset < e)
                return l;
    }
    return -1;
}
