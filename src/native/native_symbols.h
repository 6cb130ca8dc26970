/* The target's code as libdw sees it: its mappings, modules (executable, libraries,
 * extensions), their unwind tables and symbols.
 *
 * One Dwfl holds a module per mapped ELF file, reported from /proc/PID/maps. Everything derived
 * from a module (unwind table location, symbol and line of an address) is cached: per module in
 * the module's Dwfl userdata, per address in a hash table. The maps are read again when an
 * address falls outside every known mapping (the target dlopen()ed something: rate limited) and
 * every few seconds (dlclose, remapping); a change bumps the generation, which tells unwinders
 * to drop their own caches, and forgets cached symbols of modules that went away.
 *
 * Names: a symbol's name (from .symtab, else .dynsym, version suffix "@..." dropped), else
 * "LIBRARY+0xADDR" where ADDR is the ELF virtual address (what addr2line and objdump take), or
 * "[unknown]" for code outside every file mapping (JIT, trampolines). File and line come from
 * DWARF line tables (separate debug files are found through build ids, never downloaded); without
 * them the file is the library's path and the line 0.
 */
#ifndef APROF_NATIVE_SYMBOLS_H
#define APROF_NATIVE_SYMBOLS_H

#include "strtab.h"
#include "target_src.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct Dwfl Dwfl;

enum { NATIVE_PROT_R = 1, NATIVE_PROT_W = 2, NATIVE_PROT_X = 4 };

typedef struct native_map {
    uint64_t start, end, offset;
    uint8_t prot;       /* NATIVE_PROT_* */
    const char *path;   /* interned; NULL for anonymous mappings and [stack], [vdso]... */
} native_map;

typedef struct native_sym {
    const char *name;   /* interned, never NULL */
    const char *file;   /* interned: source file, else the library path, else "" */
    int32_t line;       /* 0 when unknown */
    bool is_eval;       /* CPython's evaluation loop (_PyEval_EvalFrameDefault and its split
                         * parts such as .cold) */
    bool known;         /* resolved to a symbol (false: LIBRARY+0x... or [unknown]) */
} native_sym;

/* Where libunwind finds the unwind table of the module containing an address. */
typedef struct native_unwind_table {
    uint64_t start_ip, end_ip;  /* the module's address range */
    uint64_t segbase;           /* runtime address of .eh_frame_hdr (table entries are relative) */
    uint64_t table_data;        /* runtime address of its binary-search table */
    uint64_t fde_count;
} native_unwind_table;


typedef struct native_symbols native_symbols;

/* Reads the maps once. NULL on failure (errno: ESRCH process gone, ENOMEM). */
native_symbols *native_symbols_new(target_src src, strtab *st);
/* --redact: the files of native frames (libraries, sources) under home directories as ~/... */
void native_symbols_redact_paths(native_symbols *ns);
void native_symbols_free(native_symbols *ns);

/* Reread /proc/PID/maps now. 0, or -1 (errno). */
int native_symbols_refresh(native_symbols *ns);
/* Reread the maps if they were last read longer ago than the periodic interval. */
void native_symbols_tick(native_symbols *ns, uint64_t now_ns);
/* Bumped every time a reread finds the mappings changed. */
uint64_t native_symbols_generation(const native_symbols *ns);

/* The mapping containing addr, NULL if none (no reread). */
const native_map *native_symbols_map_at(const native_symbols *ns, uint64_t addr);
/* Like native_symbols_map_at, but an address outside every mapping rereads the maps first
 * (at most once per NATIVE_MISS_REFRESH_NS): the target may have mapped a new library. */
const native_map *native_symbols_map_find(native_symbols *ns, uint64_t addr);

/* Unwind table of the module containing pc: 0, or -1 when there is none. */
int native_symbols_unwind_table(native_symbols *ns, uint64_t pc, native_unwind_table *out);

/* The Dwfl (modules reported; for the libdw unwinder). */
Dwfl *native_symbols_dwfl(native_symbols *ns);

/* Symbol of the code at pc. `return_address`: pc is where a call returns to, so the calling
 * instruction (pc - 1) is looked up. Never NULL; valid until the next call. */
const native_sym *native_symbols_lookup(native_symbols *ns, uint64_t pc, bool return_address);


/* Is `name` one of CPython's evaluation-loop functions? */
bool native_symbols_is_eval_name(const char *name);

#define NATIVE_MISS_REFRESH_NS 20000000ull     /* 20 ms */
#define NATIVE_PERIODIC_REFRESH_NS 2000000000ull /* 2 s */

#endif
