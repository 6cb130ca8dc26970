#include "native_symbols.h"

#include "grow.h"
#include "hash.h"

#include "clock.h"
#include "core_file.h"
#include "native_functions.h"
#include "native_inline.h"
#include "redact.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SYMCACHE_SLOTS 65536u /* power of two */
#define SYMCACHE_MAX_FILL (SYMCACHE_SLOTS / 4 * 3)
#define MAPS_MAX_BYTES (64u << 20)
#define EVAL_PARTS_MAX 8

typedef struct sym_slot {
    uint64_t addr; /* looked-up address + 1; 0: empty */
    native_sym sym;
} sym_slot;

/* Per-module facts, kept in the module's Dwfl userdata. */
typedef struct module_info {
    bool table_done, has_table;
    native_unwind_table table;
    const char *label;   /* interned basename of the module, for "LIB+0x..." */
    const char *path;    /* interned path (or the module name, e.g. "[vdso]") */
    /* For code without a symbol: function bounds from the unwind tables, and the unnamed
     * split-off parts of the evaluation loop (native_functions.h). Loaded on first need. */
    bool functions_done;
    native_functions *functions;
    const char *eval_name;        /* interned name of the evaluation loop's entry symbol */
    fn_range eval_parts[EVAL_PARTS_MAX];
    size_t neval_parts;
} module_info;

struct native_symbols {
    pid_t pid;
    target_src src; /* a core: its maps, files found through it (core_maps_text) */
    strtab *st;
    Dwfl *dwfl;
    native_map *maps;
    size_t nmaps, cap_maps;
    char *code_sig;          /* the file-backed lines of the last maps read: a change bumps gen */
    size_t code_sig_len;
    uint64_t gen;
    uint64_t last_refresh_ns, last_miss_refresh_ns;
    bool modules_removed;
    bool redact_paths;
    sym_slot *syms;
    size_t nsyms;
    inline_index *inlines;
    native_sym scratch;
};

/* A .gnu_debuglink names a file: a bare name, not "", "." or a path. libdw 0.188 joins what
 * it is given to each search directory, and a name such as "" opens the directory itself
 * ("/tmp/"); the read of it as ELF then fails and libdw leaks that name (found by
 * fuzz_native_symbols). A name that is not a file name is treated as no debuglink (libdw then
 * tries the build ID and "BASENAME.debug"), and a debug file that is not a regular file is
 * refused: the name is freed here, where it is still ours. */
static bool is_debuglink_name(const char *name)
{
    return name[0] && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 && !strchr(name, '/');
}

static int find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname,
                          GElf_Addr base, const char *file_name, const char *debuglink_file,
                          GElf_Word debuglink_crc, char **debuginfo_file_name)
{
    if (debuglink_file && !is_debuglink_name(debuglink_file)) {
        debuglink_file = NULL;
        debuglink_crc = 0;
    }
    int fd = dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name,
                                          debuglink_file, debuglink_crc, debuginfo_file_name);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        free(*debuginfo_file_name);
        *debuginfo_file_name = NULL;
        errno = 0;
        return -1;
    }
    return fd;
}

/* section_address: a relocatable object (ET_REL) mapped by the target is a module too, and
 * libdwfl calls this to place its sections; without it, a symbol lookup in such a module calls
 * a NULL pointer (found by fuzz_native_symbols on crt1.o). */
static const Dwfl_Callbacks dwfl_callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = NULL,
};

bool native_symbols_is_eval_name(const char *name)
{
    static const char eval[] = "_PyEval_EvalFrameDefault";
    size_t n = sizeof(eval) - 1;
    /* GCC names split-off parts "NAME.cold", "NAME.part.N" ...: still the same call. */
    return name && strncmp(name, eval, n) == 0 && (name[n] == 0 || name[n] == '.');
}

/* ------------------------------------------------------------------ maps */

static char *read_whole(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            errno = ESRCH;
        return NULL;
    }
    size_t cap = 64 * 1024, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            if (cap >= MAPS_MAX_BYTES)
                break;
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                errno = ENOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            buf = NULL;
            errno = e == ENOENT ? ESRCH : e;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (buf) {
        buf[n] = 0;
        *len = n;
    }
    return buf;
}

static int parse_maps(native_symbols *ns, const char *text, char **sig, size_t *sig_len)
{
    ns->nmaps = 0;
    size_t sig_cap = 4096, sn = 0;
    char *s = malloc(sig_cap);
    if (!s)
        return -1;
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        unsigned long long start, end, off;
        char perms[8] = "";
        int consumed = 0;
        if (sscanf(line, "%llx-%llx %7s %llx %*s %*s%n", &start, &end, perms, &off, &consumed) >= 4
            && consumed > 0 && (size_t)consumed <= len) {
            const char *p = line + consumed;
            while (p < line + len && *p == ' ')
                p++;
            size_t plen = (size_t)(line + len - p);
            native_map m = {start, end, off, 0, NULL};
            m.prot = (perms[0] == 'r' ? NATIVE_PROT_R : 0) | (perms[1] == 'w' ? NATIVE_PROT_W : 0) |
                     (perms[2] == 'x' ? NATIVE_PROT_X : 0);
            if (plen > 0 && p[0] == '/') {
                m.path = strtab_intern(ns->st, p, plen);
                if (!m.path) {
                    free(s);
                    return -1;
                }
                /* The code signature: every file-backed line, as it is. */
                if (sn + len + 1 > sig_cap) {
                    while (sn + len + 1 > sig_cap)
                        sig_cap *= 2;
                    char *ns2 = realloc(s, sig_cap);
                    if (!ns2) {
                        free(s);
                        return -1;
                    }
                    s = ns2;
                }
                memcpy(s + sn, line, len);
                sn += len;
                s[sn++] = '\n';
            }
            if (!grow_array((void **)&ns->maps, &ns->cap_maps, ns->nmaps + 1, sizeof(*ns->maps),
                            512, SIZE_MAX)) {
                free(s);
                return -1;
            }
            ns->maps[ns->nmaps++] = m;
        }
        line = eol ? eol + 1 : line + len;
    }
    *sig = s;
    *sig_len = sn;
    return 0;
}

static void module_info_free(module_info *mi)
{
    if (mi)
        native_functions_free(mi->functions);
    free(mi);
}

static void free_module_info(void **userdata)
{
    if (userdata && *userdata) {
        module_info_free(*userdata);
        *userdata = NULL;
    }
}

static int on_removed(Dwfl_Module *mod, void *userdata, const char *name, Dwarf_Addr base,
                      void *arg)
{
    (void)mod, (void)name, (void)base;
    native_symbols *ns = arg;
    module_info_free(userdata);
    ns->modules_removed = true;
    return DWARF_CB_OK;
}

static void clear_symbols(native_symbols *ns)
{
    memset(ns->syms, 0, SYMCACHE_SLOTS * sizeof(*ns->syms));
    ns->nsyms = 0;
}

static int report_modules(native_symbols *ns, const char *maps_text, size_t maps_len)
{
    dwfl_report_begin(ns->dwfl);
    /* Reads /proc/PID/maps (and auxv, for the vDSO) itself; modules reported again with the
     * same name and range keep their loaded ELF, DWARF and userdata. A core's maps are given as
     * text naming the files where they were found. */
    int rc = -1;
    if (!ns->src.core) {
        rc = dwfl_linux_proc_report(ns->dwfl, ns->pid);
    } else {
        FILE *f = fmemopen((void *)maps_text, maps_len, "r");
        if (f) {
            rc = dwfl_linux_proc_maps_report(ns->dwfl, f);
            fclose(f);
        }
    }
    ns->modules_removed = false;
    if (dwfl_report_end(ns->dwfl, on_removed, ns) != 0)
        rc = -1;
    if (ns->modules_removed) {
        clear_symbols(ns);
        inline_index_clear(ns->inlines);
    }
    return rc == 0 ? 0 : -1;
}

int native_symbols_refresh(native_symbols *ns)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)ns->pid);
    size_t len = 0;
    char *text = ns->src.core ? core_maps_text(ns->src.core, &len) : read_whole(path, &len);
    if (!text)
        return -1;
    ns->last_refresh_ns = aprof_now_ns();
    char *sig = NULL;
    size_t sig_len = 0;
    int rc = parse_maps(ns, text, &sig, &sig_len);
    if (rc != 0) {
        free(text);
        errno = ENOMEM;
        return -1;
    }
    if (ns->code_sig && sig_len == ns->code_sig_len && memcmp(sig, ns->code_sig, sig_len) == 0) {
        free(sig);
        free(text);
        return 0;
    }
    free(ns->code_sig);
    ns->code_sig = sig;
    ns->code_sig_len = sig_len;
    ns->gen++;
    rc = report_modules(ns, text, len);
    free(text);
    if (rc != 0 && !ns->nmaps) {
        errno = ESRCH;
        return -1;
    }
    return 0;
}

void native_symbols_tick(native_symbols *ns, uint64_t now_ns)
{
    if (now_ns - ns->last_refresh_ns >= NATIVE_PERIODIC_REFRESH_NS)
        native_symbols_refresh(ns);
}

uint64_t native_symbols_generation(const native_symbols *ns)
{
    return ns->gen;
}

const native_map *native_symbols_map_at(const native_symbols *ns, uint64_t addr)
{
    size_t lo = 0, hi = ns->nmaps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const native_map *m = &ns->maps[mid];
        if (addr < m->start)
            hi = mid;
        else if (addr >= m->end)
            lo = mid + 1;
        else
            return m;
    }
    return NULL;
}

const native_map *native_symbols_map_find(native_symbols *ns, uint64_t addr)
{
    const native_map *m = native_symbols_map_at(ns, addr);
    if (m || addr < 0x1000)
        return m;
    uint64_t now = aprof_now_ns();
    if (now - ns->last_miss_refresh_ns < NATIVE_MISS_REFRESH_NS)
        return NULL;
    ns->last_miss_refresh_ns = now;
    if (native_symbols_refresh(ns) != 0)
        return NULL;
    return native_symbols_map_at(ns, addr);
}

/* ------------------------------------------------------------------ modules */

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static module_info *info_of(native_symbols *ns, Dwfl_Module *mod)
{
    void **ud = NULL;
    const char *name = dwfl_module_info(mod, &ud, NULL, NULL, NULL, NULL, NULL, NULL);
    if (!ud)
        return NULL;
    if (*ud)
        return *ud;
    module_info *mi = calloc(1, sizeof(*mi));
    if (!mi)
        return NULL;
    if (!name)
        name = "?";
    mi->path = strtab_intern_cstr(ns->st, name);
    mi->label = strtab_intern_cstr(ns->st, base_name(name));
    if (!mi->path || !mi->label) {
        free(mi);
        return NULL;
    }
    *ud = mi;
    return mi;
}

static bool encoded_size(uint8_t enc, size_t *size)
{
    switch (enc & 0x0f) {
    case DW_EH_PE_udata4:
    case DW_EH_PE_sdata4: *size = 4; return true;
    case DW_EH_PE_udata8:
    case DW_EH_PE_sdata8:
    case DW_EH_PE_absptr: *size = 8; return true;
    case DW_EH_PE_udata2:
    case DW_EH_PE_sdata2: *size = 2; return true;
    default: return false;
    }
}

/* Locate .eh_frame_hdr through PT_GNU_EH_FRAME and check its search table is the usual
 * (datarel, sdata4) one that libunwind can search. */
static bool find_table(Dwfl_Module *mod, native_unwind_table *t)
{
    Dwarf_Addr bias = 0, start = 0, end = 0;
    dwfl_module_info(mod, NULL, &start, &end, NULL, NULL, NULL, NULL);
    Elf *elf = dwfl_module_getelf(mod, &bias);
    if (!elf)
        return false;
    size_t nph = 0;
    if (elf_getphdrnum(elf, &nph) != 0)
        return false;
    for (size_t i = 0; i < nph; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_GNU_EH_FRAME || ph.p_filesz < 12)
            continue;
        Elf_Data *d = elf_getdata_rawchunk(elf, (int64_t)ph.p_offset, ph.p_filesz, ELF_T_BYTE);
        if (!d || !d->d_buf || d->d_size < 12)
            return false;
        const uint8_t *h = d->d_buf;
        size_t ptr_size, count_size;
        if (h[0] != 1 || h[3] != (DW_EH_PE_datarel | DW_EH_PE_sdata4) ||
            !encoded_size(h[1], &ptr_size) || !encoded_size(h[2], &count_size) ||
            4 + ptr_size + count_size > d->d_size)
            return false;
        uint64_t count = 0;
        if (count_size == 4) {
            uint32_t c32;
            memcpy(&c32, h + 4 + ptr_size, 4);
            count = c32;
        } else if (count_size == 8) {
            memcpy(&count, h + 4 + ptr_size, 8);
        } else {
            return false;
        }
        uint64_t table_off = 4 + ptr_size + count_size;
        if (count == 0 || table_off + count * 8 > d->d_size)
            return false;
        t->segbase = ph.p_vaddr + bias;
        t->table_data = t->segbase + table_off;
        t->fde_count = count;
        t->start_ip = start;
        t->end_ip = end;
        return true;
    }
    return false;
}

int native_symbols_unwind_table(native_symbols *ns, uint64_t pc, native_unwind_table *out)
{
    Dwfl_Module *mod = dwfl_addrmodule(ns->dwfl, pc);
    if (!mod && native_symbols_map_find(ns, pc))
        mod = dwfl_addrmodule(ns->dwfl, pc);
    if (!mod)
        return -1;
    module_info *mi = info_of(ns, mod);
    if (!mi)
        return -1;
    if (!mi->table_done) {
        mi->has_table = find_table(mod, &mi->table);
        mi->table_done = true;
    }
    if (!mi->has_table)
        return -1;
    *out = mi->table;
    return 0;
}

Dwfl *native_symbols_dwfl(native_symbols *ns)
{
    return ns->dwfl;
}

/* ------------------------------------------------------------------ symbols */

static const char *intern_symbol(strtab *st, const char *name)
{
    const char *at = strchr(name, '@'); /* "clock_nanosleep@GLIBC_2.2.5": drop the version */
    return strtab_intern(st, name, at && at > name ? (size_t)(at - name) : strlen(name));
}

/* The function bounds of a module and the split-off parts of its evaluation loop, once. A
 * part counts only when no symbol of its own covers it. */
static void load_functions(native_symbols *ns, Dwfl_Module *mod, module_info *mi)
{
    if (mi->functions_done)
        return;
    mi->functions_done = true;
    Dwarf_Addr bias = 0;
    mi->functions = native_functions_load(dwfl_module_getelf(mod, &bias));
    int nsym = mi->functions ? dwfl_module_getsymtab(mod) : 0;
    for (int i = 1; i < nsym && !mi->eval_name; i++) {
        GElf_Sym sym;
        GElf_Addr addr = 0;
        const char *name = dwfl_module_getsym_info(mod, i, &sym, &addr, NULL, NULL, NULL);
        if (!name || GELF_ST_TYPE(sym.st_info) != STT_FUNC || !native_symbols_is_eval_name(name) ||
            strchr(name, '.'))
            continue;
        fn_range parts[EVAL_PARTS_MAX];
        size_t n = native_functions_split_parts(mi->functions, addr - bias, parts, EVAL_PARTS_MAX);
        for (size_t k = 0; k < n; k++) {
            GElf_Off off = 0;
            GElf_Sym other;
            const char *owner = dwfl_module_addrinfo(mod, parts[k].start + bias, &off, &other,
                                                     NULL, NULL, NULL);
            if (!owner || native_symbols_is_eval_name(owner))
                mi->eval_parts[mi->neval_parts++] = parts[k];
        }
        mi->eval_name = intern_symbol(ns->st, name);
    }
}

/* Without a symbol, name code after the start of its function as the unwind tables (.eh_frame
 * FDEs, one per function or split-off part) delimit it, so that samples anywhere in one function
 * add up in one frame; code in a split-off part of the evaluation loop is that loop. */
static void name_unsymbolized(native_symbols *ns, Dwfl_Module *mod, module_info *mi,
                              uint64_t addr, native_sym *out)
{
    Dwarf_Addr bias = 0;
    dwfl_module_getelf(mod, &bias);
    load_functions(ns, mod, mi);
    uint64_t vaddr = addr - bias, start = vaddr;
    for (size_t i = 0; i < mi->neval_parts; i++) {
        if (vaddr >= mi->eval_parts[i].start && vaddr < mi->eval_parts[i].end) {
            out->name = mi->eval_name;
            out->is_eval = true;
            out->known = true;
            return;
        }
    }
    fn_range r;
    if (native_functions_find(mi->functions, vaddr, &r))
        start = r.start;
    char buf[512];
    snprintf(buf, sizeof(buf), "%s+0x%" PRIx64, mi->label, start);
    out->name = strtab_intern_cstr(ns->st, buf);
}

static void resolve(native_symbols *ns, uint64_t addr, native_sym *out)
{
    *out = (native_sym){NULL, "", 0, false, false};
    Dwfl_Module *mod = dwfl_addrmodule(ns->dwfl, addr);
    if (!mod && native_symbols_map_find(ns, addr))
        mod = dwfl_addrmodule(ns->dwfl, addr);
    module_info *mi = mod ? info_of(ns, mod) : NULL;
    if (!mod || !mi) {
        out->name = strtab_intern_cstr(ns->st, "[unknown]");
        return;
    }
    GElf_Off off = 0;
    GElf_Sym sym;
    const char *name = dwfl_module_addrinfo(mod, addr, &off, &sym, NULL, NULL, NULL);
    if (name && *name) {
        out->name = intern_symbol(ns->st, name);
        out->known = out->name != NULL;
        out->is_eval = native_symbols_is_eval_name(out->name);
    }
    int lineno = 0;
    const char *src = NULL;
    /* Evaluation-loop frames are replaced by Python frames: their lines are never shown. */
    /* In inlined code, the named function's line is where it calls that code. */
    if (!out->is_eval && !inline_index_call_site(ns->inlines, mod, addr, &src, &lineno)) {
        Dwfl_Line *ln = dwfl_module_getsrc(mod, addr);
        src = ln ? dwfl_lineinfo(ln, NULL, &lineno, NULL, NULL, NULL) : NULL;
    }
    if (src && lineno > 0) {
        out->file = strtab_intern_cstr(ns->st, src);
        out->line = lineno;
    } else {
        out->file = mi->path;
    }
    if (!out->file)
        out->file = "";
    if (ns->redact_paths) {
        char shown[4096];
        const char *r = redact_path(out->file, shown, sizeof(shown))
                            ? strtab_intern_cstr(ns->st, shown) : out->file;
        out->file = r ? r : "";
    }
    if (!out->name)
        name_unsymbolized(ns, mod, mi, addr, out);
}

const native_sym *native_symbols_lookup(native_symbols *ns, uint64_t pc, bool return_address)
{
    uint64_t addr = return_address && pc > 0 ? pc - 1 : pc;
    uint64_t key = addr + 1;
    size_t mask = SYMCACHE_SLOTS - 1;
    size_t i = hash32(key) & mask;
    for (;; i = (i + 1) & mask) {
        sym_slot *s = &ns->syms[i];
        if (s->addr == key)
            return &s->sym;
        if (s->addr == 0)
            break;
    }
    native_sym sym;
    resolve(ns, addr, &sym);
    if (!sym.name) {
        ns->scratch = (native_sym){"[unknown]", "", 0, false, false};
        return &ns->scratch;
    }
    if (ns->nsyms >= SYMCACHE_MAX_FILL)
        clear_symbols(ns);
    /* Probe again: resolve() may have refreshed the modules, which can clear the cache. */
    i = hash32(key) & mask;
    while (ns->syms[i].addr != 0 && ns->syms[i].addr != key)
        i = (i + 1) & mask;
    if (ns->syms[i].addr == 0)
        ns->nsyms++;
    ns->syms[i].addr = key;
    ns->syms[i].sym = sym;
    return &ns->syms[i].sym;
}

/* ------------------------------------------------------------------ lifetime */

static int free_userdata(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr start,
                         void *arg)
{
    (void)mod, (void)name, (void)start, (void)arg;
    free_module_info(userdata);
    return DWARF_CB_OK;
}

native_symbols *native_symbols_new(target_src src, strtab *st)
{
    /* Never let libdw ask a debuginfod server for debug info: a sampler must not block on the
     * network. Only local files (build-id paths under /usr/lib/debug, .gnu_debuglink) count. */
    unsetenv("DEBUGINFOD_URLS");
    native_symbols *ns = calloc(1, sizeof(*ns));
    if (!ns)
        return NULL;
    ns->pid = src.pid;
    ns->src = src;
    ns->st = st;
    ns->syms = calloc(SYMCACHE_SLOTS, sizeof(*ns->syms));
    ns->inlines = inline_index_new();
    ns->dwfl = dwfl_begin(&dwfl_callbacks);
    if (!ns->syms || !ns->inlines || !ns->dwfl) {
        native_symbols_free(ns);
        errno = ENOMEM;
        return NULL;
    }
    if (native_symbols_refresh(ns) != 0) {
        int e = errno;
        native_symbols_free(ns);
        errno = e;
        return NULL;
    }
    return ns;
}

void native_symbols_redact_paths(native_symbols *ns)
{
    ns->redact_paths = true;
}

void native_symbols_free(native_symbols *ns)
{
    if (!ns)
        return;
    if (ns->dwfl) {
        dwfl_getmodules(ns->dwfl, free_userdata, NULL, 0);
        dwfl_end(ns->dwfl);
    }
    inline_index_free(ns->inlines);
    free(ns->syms);
    free(ns->maps);
    free(ns->code_sig);
    free(ns);
}
