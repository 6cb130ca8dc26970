/* Line numbers from a code object's co_linetable, for CPython 3.10-3.13.
 *
 * Pure functions over bytes already copied out of the target: nothing here reads remote memory.
 * The bytes may be garbage (torn or freed object), so every loop is bounded by the table length,
 * a table longer than LINETABLE_MAX_LEN is refused, and a table the decoder cannot make sense of
 * simply ends early: lookups past that point answer -1. Never a crash, never a hang, and no read
 * outside [table, table + len). Like CPython, the decoder treats the byte just past the table
 * as 0 (a bytes object's data is NUL-terminated and CPython's decoder relies on it).
 *
 * For well-formed tables the answers equal CPython's own for that version:
 *   linetable_line_for_offset()  == PyCode_Addr2Line(code, byte_offset)
 *   linetable_iter_*()           == code.co_lines()
 * Both formats are described in docs/linetables.md.
 */
#ifndef APROF_LINETABLE_H
#define APROF_LINETABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layouts.h" /* LINETABLE_310 / LINETABLE_311 */

/* Largest co_linetable accepted (real ones are a few KiB; 1 MiB covers ~500k instructions). */
#define LINETABLE_MAX_LEN ((size_t)1 << 20)

/* Line of the instruction at byte_offset (bytes from the start of the bytecode: 3.10 f_lasti*2,
 * 3.11+ instruction pointer minus the start of co_code_adaptive).
 *   - byte_offset < 0 (a frame that has not started yet) gives firstlineno, as in CPython;
 *   - an instruction without a line (3.10 "no line" entries, 3.11+ NO_LOCATION entries), an
 *     offset past the end of the table, a malformed table, an unknown kind or a table longer
 *     than LINETABLE_MAX_LEN give -1.
 * CPython itself can report other negative numbers only for hand-crafted tables whose line
 * deltas go below zero; callers should treat any result < 0 as "no line".
 * Cost: linear in the table length (callers cache, e.g. with the iterator below). */
int linetable_line_for_offset(uint8_t kind, const uint8_t *table, size_t len, int firstlineno,
                              int byte_offset);

/* How ranges are reported by the iterator. */
typedef enum linetable_iter_mode {
    LINETABLE_ITER_RAW = 0,   /* one range per non-empty table entry: co_lines() of 3.10/3.11 */
    LINETABLE_ITER_MERGE = 1, /* neighbours with the same line joined: co_lines() of 3.12+ */
} linetable_iter_mode;

/* Iterator over the address ranges of a table. Treat the fields as private. */
typedef struct linetable_iter {
    const uint8_t *table;
    size_t len;
    size_t pos;            /* index of the next entry to decode */
    uint8_t kind;
    uint8_t mode;
    bool done;             /* no further raw entries (end of table or malformed) */
    bool malformed;
    int32_t line;          /* running line number ("computed line") */
    int32_t end;           /* end offset of the last raw range */
    bool have_pending;     /* MERGE mode: a raw range read ahead and not yet reported */
    int32_t pending_start, pending_end, pending_line;
} linetable_iter;

/* Set up an iteration. kind is LINETABLE_310 or LINETABLE_311; mode a linetable_iter_mode.
 * An unknown kind, a NULL table with len > 0 or len > LINETABLE_MAX_LEN gives an iterator that
 * reports no range and is marked malformed. */
void linetable_iter_init(linetable_iter *it, uint8_t kind, const uint8_t *table, size_t len,
                         int firstlineno, linetable_iter_mode mode);

/* Next range [*start, *end) in bytes with its line: -1 for no line (co_lines() shows None for
 * -1, and in 3.10/3.11 for any negative line). Ranges are contiguous from 0 and never empty.
 * false when there are no more (the out-parameters are then untouched). There are at most len
 * ranges, so a loop over this always ends. */
bool linetable_iter_next(linetable_iter *it, int *start, int *end, int *line);

/* true when the iteration stopped early on something CPython's own decoder would read past the
 * table for (a 3.10 table ending in empty entries, a varint longer than 32 bits), or the table
 * was refused by linetable_iter_init(). The ranges before that point were reported. */
bool linetable_iter_malformed(const linetable_iter *it);

#endif
