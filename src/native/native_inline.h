/* Where a function calls code that the compiler inlined into it.
 *
 * The DWARF line table gives, for an address in inlined code, the inlined code's own line (in a
 * header's static inline function, say); a native frame is the named (outer) function's, so its
 * line should be where that function calls the inlined code: DW_AT_call_file/DW_AT_call_line of
 * the outermost DW_TAG_inlined_subroutine containing the address. Finding that with
 * dwarf_getscopes walks the compilation unit's DIE tree for every address, which is slow for big
 * units (ceval.c); this index walks each unit once, on first use, and keeps the address ranges of
 * its outermost inlined calls sorted, so that later lookups are binary searches.
 */
#ifndef APROF_NATIVE_INLINE_H
#define APROF_NATIVE_INLINE_H

#include <elfutils/libdwfl.h>
#include <stdbool.h>

typedef struct inline_index inline_index;

inline_index *inline_index_new(void);
void inline_index_free(inline_index *ix);

/* Forget everything (modules were unloaded: their Dwarf handles may be reused). */
void inline_index_clear(inline_index *ix);

/* The call site of the inlined code at addr (an address in mod, as the process sees it), in
 * the function it was inlined into. False when addr is not in inlined code or there is no
 * DWARF. *file stays valid as long as the module. */
bool inline_index_call_site(inline_index *ix, Dwfl_Module *mod, Dwarf_Addr addr,
                            const char **file, int *line);

#endif
