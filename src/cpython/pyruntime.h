/* Finding the CPython interpreter inside a target process: which mapped file holds _PyRuntime,
 * the Python version, the runtime's address, and the layout table to read it with. */
#ifndef APROF_PYRUNTIME_H
#define APROF_PYRUNTIME_H

#include "layouts.h"
#include "memory.h"
#include "target_src.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum pyrt_status {
    PYRT_OK = 0,
    PYRT_NO_PROCESS,  /* no such process / it exited */
    PYRT_PERMISSION,  /* maps or memory not readable */
    PYRT_NOT_PYTHON,  /* no interpreter found */
    PYRT_UNSUPPORTED, /* found, version outside 3.10-3.13 */
    PYRT_NOT_READY,   /* interpreter not initialised yet (launch mode: retry) */
    PYRT_MISSING_FILE,/* a core's interpreter file is missing here, or another build */
    PYRT_INTERNAL,
} pyrt_status;

typedef struct pyruntime {
    pid_t pid;
    unsigned major, minor, micro;
    uint32_t version_hex;      /* PY_VERSION_HEX from Py_Version (3.11+), else 0 */
    char version[32];          /* "3.11.7" */
    char binary[PATH_MAX];     /* the ELF file holding _PyRuntime, as the target sees it */
    bool stripped;             /* no DWARF in that file */
    uint64_t bias;             /* load bias of that file */
    uint64_t runtime_addr;     /* &_PyRuntime in the target */
    uint64_t code_type_addr;   /* &PyCode_Type, to validate code objects (0 when unknown) */
    bool debug_offsets_used;   /* 3.13+: layout refined from the target's _Py_DebugOffsets */
    size_t debug_offsets_diffs;/* published offsets that differed from the built-in table */
    py_layout layout;          /* built-in table for the version, possibly refined */
} pyruntime;

/* Locate the interpreter. On failure, msg holds one human sentence (no "aprof: " prefix). */
pyrt_status pyruntime_locate(pid_t pid, pyruntime *rt, char *msg, size_t msglen);
/* The same in a live process or a core file. */
pyrt_status pyruntime_locate_src(const target_src *t, pyruntime *rt, char *msg, size_t msglen);

/* First interpreter state (interpreters.head), 0 when not initialised or unreadable. */
uint64_t pyruntime_first_interp(const pyruntime *rt, mem *m);

#endif
