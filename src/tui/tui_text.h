/* Text for the terminal: display widths, truncation to a number of columns, and the short number
 * formats of the TUI. Pure functions (no ncurses, no locale state except wcwidth()), so the view
 * models can be unit-tested.
 *
 * Strings shown by the TUI come from the target's memory and may hold any bytes: every function
 * here decodes UTF-8 itself, replaces invalid sequences and control characters by '?', and in
 * ASCII mode (a terminal whose locale is not UTF-8) every non-ASCII character too, so that what
 * is written always takes exactly the width that was computed.
 */
#ifndef APROF_TUI_TEXT_H
#define APROF_TUI_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room for a string of w columns (each column at most 4 bytes of UTF-8) and its NUL. */
#define TUI_TEXT_CAP(w) ((size_t)(w) * 4 + 8)

/* Columns that s takes once sanitised. */
int tui_text_width(const char *s, bool utf8);

/* Copy s into out (cap bytes), sanitised, cut to at most `width` columns; a cut string ends in
 * an ellipsis ("…", or "~" in ASCII mode) within the width. Returns the columns written. */
int tui_fit(char *out, size_t cap, const char *s, int width, bool utf8);

/* Like tui_fit, then padded with spaces to exactly `width` columns. */
int tui_fit_pad(char *out, size_t cap, const char *s, int width, bool utf8);

/* "function (file:line)" in at most width columns: the full path when it fits, else only the
 * file's base name, else cut with an ellipsis. An empty file gives "function", line 0
 * "function (file)". Returns the columns written. */
int tui_format_frame(char *out, size_t cap, const char *name, const char *file, int line,
                     int width, bool utf8);

/* Durations in at most 7 columns: "0", "850us", "12.3ms", "1.25s", "12.5s", "3m05s", "2h01m". */
void tui_format_duration(char *out, size_t cap, uint64_t ns);

/* Percentage of part in whole with one decimal ("12.5", "100.0", "0.0"); "-" when whole is 0. */
void tui_format_pct(char *out, size_t cap, uint64_t part, uint64_t whole);

/* Counts in at most 6 columns: "999", "12.3k", "1.23M". */
void tui_format_count(char *out, size_t cap, uint64_t n);

/* Does haystack contain needle, ignoring ASCII case? An empty or NULL needle matches all. */
bool tui_contains(const char *haystack, const char *needle);

#endif
