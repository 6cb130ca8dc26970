/* Where the functions of a stripped ELF module begin and end, from its unwind tables.
 *
 * Without a symbol table, the only record of function boundaries is .eh_frame: one FDE per
 * function or per part the compiler split off (GCC's hot/cold partitioning puts the rarely run
 * blocks of a function in an FDE of their own, far from its entry). The search table of
 * .eh_frame_hdr lists every FDE sorted by start address; each FDE gives its length.
 *
 * That matters twice: naming code by the start of its function (so that samples anywhere in one
 * function add up), and finding the split-off parts of CPython's evaluation loop, whose entry
 * symbol (_PyEval_EvalFrameDefault, exported) covers only a small part of it in Debian's
 * stripped PGO builds of 3.13-3.15: the rest lives in an unnamed FDE. Such a part is recognised
 * by jumps (not calls) from the entry's FDE into the middle of it and back: code of two
 * different functions never jumps into each other's middle.
 *
 * Everything here reads the module's file (through libelf), never the target. Addresses are
 * ELF virtual addresses (before the load bias).
 */
#ifndef APROF_NATIVE_FUNCTIONS_H
#define APROF_NATIVE_FUNCTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Elf Elf;

typedef struct fn_range {
    uint64_t start, end; /* [start, end) */
} fn_range;

typedef struct native_functions native_functions;

/* The function ranges of elf (kept open by the caller for the lifetime of the result). NULL
 * when the module has no usable .eh_frame_hdr search table, or on ENOMEM. */
native_functions *native_functions_load(Elf *elf);
void native_functions_free(native_functions *f);

/* The FDE containing vaddr. */
bool native_functions_find(const native_functions *f, uint64_t vaddr, fn_range *out);

/* The other parts of the function whose entry FDE contains `entry`: FDEs the entry part jumps
 * into the middle of and that jump back into the middle of the entry part. At most max;
 * returns how many. */
size_t native_functions_split_parts(native_functions *f, uint64_t entry, fn_range *out,
                                    size_t max);

#endif
