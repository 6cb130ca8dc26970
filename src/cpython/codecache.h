/* Cache of code objects read from the target: names, file, line table, where the bytecode is.
 *
 * Code objects almost never change address or content while alive, so each is read once. To
 * survive one being freed and its address reused by another, an entry is revalidated when a
 * frame's instruction offset falls outside its bytecode, and codecache_revalidate() rechecks
 * entries in batches (a single process_vm_readv) a few times a second.
 */
#ifndef APROF_CODECACHE_H
#define APROF_CODECACHE_H

#include "layouts.h"
#include "memory.h"
#include "sample.h"
#include "strtab.h"

#include <stdbool.h>
#include <stdint.h>

#define CODE_LINE_CACHE 4

/* What a code object is to the asyncio layer, recognised once when it is cached. */
typedef enum code_role {
    ROLE_NONE = 0,
    ROLE_RUN_FOREVER,  /* asyncio BaseEventLoop.run_forever */
    ROLE_RUN_ONCE,     /* asyncio BaseEventLoop._run_once */
    ROLE_HANDLE_RUN,   /* asyncio Handle._run: runs one callback */
    ROLE_SELECT,       /* selectors.*Selector.select: the loop waiting for I/O */
    ROLE_LOOP_ENTRY,   /* asyncio/runners.py, or uvloop's Python wrapper: a native loop below */
} code_role;

/* co_flags of code that runs in generators: generator, coroutine, iterable coroutine, async
 * generator (the same bits on every supported version). */
#define CO_GENERATOR_LIKE (0x20 | 0x80 | 0x100 | 0x200)

typedef struct code_info {
    uint64_t addr;            /* remote PyCodeObject* */
    const char *name;         /* interned: co_qualname (3.11+) or co_name (3.10) */
    const char *file;         /* interned co_filename */
    int32_t firstlineno;
    uint32_t code_bytes;      /* bytecode size in bytes */
    uint64_t code_start;      /* remote address of the first code unit */
    uint32_t firsttraceable;  /* code units (3.11+) */
    uint32_t frame_bytes;     /* 3.11+: bytes a frame of this code takes on the data stack, 0 */
    int32_t flags;            /* co_flags */
    uint8_t role;             /* code_role */
    uint8_t *linetable;
    uint32_t linetable_len;
    uint64_t fingerprint;     /* name/file/linetable pointers, to detect address reuse */
    uint64_t checked_ns;      /* when the fingerprint was last confirmed (CLOCK_MONOTONIC) */
    int32_t lc_off[CODE_LINE_CACHE], lc_line[CODE_LINE_CACHE];
    uint32_t lc_next;
} code_info;

typedef struct codecache codecache;

codecache *codecache_new(strtab *st, const py_layout *L, uint64_t code_type_addr);
void codecache_free(codecache *c);

/* --redact: from now on, file names under home directories are read as ~/... (redact.h).
 * Entries read before are forgotten, so no code object keeps its real path. */
void codecache_redact_paths(codecache *c);

/* The code object at addr, read on first use. NULL when it cannot be read or is not a code
 * object. The pointer stays valid until the entry is evicted by codecache_invalidate() or
 * codecache_revalidate(); use it within one sample. */
code_info *codecache_get(codecache *c, mem *m, uint64_t addr);

/* Byte offset into ci's bytecode of a frame's position, from the frame's raw instruction field
 * (3.10: f_lasti, an index in code units; 3.11+: a pointer into the bytecode). False when it
 * lies outside the bytecode: a torn frame, or an address that now holds another code object. */
bool code_info_offset(const code_info *ci, uint8_t kind, uint64_t raw, int64_t *off);

/* The Python frame ci is executing at byte offset off (negative: not started, first line). */
aprof_frame code_info_frame(code_info *ci, uint8_t table_kind, int64_t off);

/* Line for a byte offset into the bytecode (cached). -1 when there is none. */
int code_info_line(code_info *ci, uint8_t table_kind, int byte_offset);

/* The entry for addr if cached, without reading anything. */
code_info *codecache_peek(codecache *c, uint64_t addr);

/* The span of a code object that holds its fingerprint fields: read `*len` bytes at
 * addr + *offset, then codecache_confirm() them. */
void codecache_fingerprint_span(const codecache *c, uint32_t *offset, uint32_t *len);

/* Does the span read from the target still match the entry? On a match the entry is marked
 * confirmed at now_ns; on a mismatch it is dropped (freed: ci is invalid afterwards). */
bool codecache_confirm(codecache *c, code_info *ci, const uint8_t *span, uint64_t now_ns);

/* How long a confirmation is trusted. A running frame keeps its code object alive, so a cached
 * address can only turn into another code object after the old one finished everywhere; this
 * bounds how long such a reused address could keep the old name. */
#define CODECACHE_CONFIRM_NS 5000000ull

static inline bool code_info_needs_confirm(const code_info *ci, uint64_t now_ns)
{
    return now_ns - ci->checked_ns >= CODECACHE_CONFIRM_NS;
}

/* codecache_get(), plus a guarantee that the entry was confirmed within CODECACHE_CONFIRM_NS:
 * otherwise it is checked with one read, and reloaded when the address now holds another code
 * object. */
code_info *codecache_get_fresh(codecache *c, mem *m, uint64_t addr, uint64_t now_ns);

/* The one frame decoder of aprof's readers (thread stacks and coroutine chains): the code
 * object at `code` (codecache_get_fresh when now_ns, else codecache_get) and the byte offset
 * into its bytecode of the frame's instruction field `raw` (kind: the layout's instr_kind).
 * When the instruction does not fit the cached object (freed and its address reused, or a torn
 * frame) it is reloaded once. The code_info, or NULL when the frame cannot be decoded. */
code_info *codecache_relocate(codecache *c, mem *m, uint64_t code, uint8_t kind, uint64_t raw,
                              int64_t *off);
static inline code_info *codecache_locate(codecache *c, mem *m, uint64_t code, uint8_t kind,
                                          uint64_t raw, uint64_t now_ns, int64_t *off)
{
    code_info *ci = now_ns ? codecache_get_fresh(c, m, code, now_ns) : codecache_get(c, m, code);
    if (ci && code_info_offset(ci, kind, raw, off))
        return ci;
    return ci ? codecache_relocate(c, m, code, kind, raw, off) : NULL; /* the slow path */
}

/* Drop one entry (its object was found to be stale). */
void codecache_invalidate(codecache *c, uint64_t addr);

/* Recheck every entry's fingerprint in batched reads; drop the ones that changed. */
void codecache_revalidate(codecache *c, mem *m);


#endif
