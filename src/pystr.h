/* Reading str and bytes objects from the target into UTF-8 / raw bytes. */
#ifndef APROF_PYSTR_H
#define APROF_PYSTR_H

#include "layouts.h"
#include "memory.h"
#include "strtab.h"

#include <stddef.h>
#include <stdint.h>

#define PYSTR_MAX_CHARS 4096 /* longer strings are truncated (names and paths never are) */

/* Decode the compact unicode object at addr into UTF-8 in buf (NUL-terminated). Returns the
 * length in bytes, or -1 if the object cannot be read or is not a compact str. */
int pystr_read(mem *m, const py_layout *L, uint64_t addr, char *buf, size_t buflen);

/* Same, interned. NULL on failure. */
const char *pystr_intern(mem *m, const py_layout *L, strtab *st, uint64_t addr);

/* Read the contents of a bytes object into a malloc'd buffer (at most max bytes). Returns the
 * length and sets *out, or -1. */
long pybytes_read_alloc(mem *m, const py_layout *L, uint64_t addr, size_t max, uint8_t **out);

#endif
