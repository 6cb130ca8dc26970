/* The interpreters the live C tests run against: every CPython 3.10-3.13 under the pyenv root
 * ($PYENV_ROOT, else `pyenv root`, else ~/.pyenv; built with a shared libpython, so with DWARF),
 * then Debian's stripped /usr/bin/python3.11.
 * The one finder all tests/live use (the integration tests' is tests/integration/harness.py). */
#ifndef APROF_TEST_INTERPRETERS_H
#define APROF_TEST_INTERPRETERS_H

#include <stdbool.h>
#include <stddef.h>

#define TEST_MAX_INTERPRETERS 8
#define TEST_PY_MIN_MINOR 10 /* the minors looked for: 3.10 ... */
#define TEST_PY_MAX_MINOR 13 /* ... 3.13 */

typedef struct test_interp {
    char label[32];      /* "3.12.1", or "debian-3.11" */
    char python[1024];    /* the executable */
    char libpython[1024]; /* its libpython3.X.so (pyenv builds); "" when none */
    char prefix[1024];    /* its installation prefix: <pyenv root>/versions/3.X.Y, or "/usr" */
    int minor;           /* 10..13 */
    bool pyenv;
} test_interp;

/* Fills out (pyenv ones sorted by version, then Debian's); returns how many were found. */
size_t test_find_interpreters(test_interp *out, size_t cap);

/* The newest pyenv interpreter of 3.minor (as the integration harness picks), NULL if none
 * (all as filled by the finder). */
const test_interp *test_interp_pyenv_minor(const test_interp *all, size_t n, int minor);

#endif
