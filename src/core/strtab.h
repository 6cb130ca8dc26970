/* String interning: every function name, file name and thread name in aprof is interned once, so
 * that equal strings are equal pointers. Frames, stacks and writers compare and hash pointers.
 * Interned strings live until strtab_free(). Not thread-safe: one table per thread of aprof, or
 * lock outside. */
#ifndef APROF_STRTAB_H
#define APROF_STRTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct strtab strtab;

strtab *strtab_new(void);
void strtab_free(strtab *t);

/* Intern len bytes (need not be NUL-terminated; may contain any bytes). Returns a stable,
 * NUL-terminated copy, or NULL on allocation failure. */
const char *strtab_intern(strtab *t, const char *s, size_t len);
const char *strtab_intern_cstr(strtab *t, const char *s);
/* How many distinct strings the table holds. */
size_t strtab_count(const strtab *t);


#endif
