#include "core_file.h"

#include "grow.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef NT_FILE
#define NT_FILE 0x46494c45
#endif

#define MAX_THREADS 100000u /* a bound for hostile notes */
#define BUILD_ID_MAX 64
#define PRSTATUS_PID_OFF 32
#define PRSTATUS_REGS_OFF 112
#define PRPSINFO_PID_OFF 24
#define PRPSINFO_ARGS_OFF 56
#define PRPSINFO_ARGS_LEN 80

typedef struct core_seg {
    uint64_t vaddr, memsz, filesz, offset;
    uint32_t flags;
} core_seg;

/* One file the core maps (several mappings may name it), opened on first use. */
typedef struct core_lib {
    char *path;   /* as the core recorded it */
    int fd;       /* -1 until resolved; then the open file, or -1 with state set */
    int state;    /* 0 not resolved yet, 1 found, 2 missing, 3 mismatched */
    char *found;  /* state 1: the path it was found at */
    uint64_t header_start; /* the mapping at file offset 0 (0: none): where the core's copy of
                            * the ELF header would be */
} core_lib;

typedef struct core_mapping {
    uint64_t start, end, offset; /* offset in bytes */
    size_t lib;                  /* index into libs */
} core_mapping;

struct core_file {
    char *path;
    int fd;
    const uint8_t *data;
    size_t size;
    core_seg *segs;
    size_t nsegs;
    core_mapping *maps;
    size_t nmaps;
    core_lib *libs;
    size_t nlibs, cap_libs;
    core_thread *threads;
    size_t nthreads, cap_threads;
    pid_t pid;
    uint64_t at_phdr; /* from NT_AUXV: inside the executable's first mapping */
    char command[PRPSINFO_ARGS_LEN + 1];
    char **search;
    size_t nsearch, cap_search;
    char *exe_override;
};

static core_status fail(core_status st, char *msg, size_t msglen, const char *fmt, const char *path)
{
    snprintf(msg, msglen, fmt, path);
    return st;
}

static int seg_order(const void *a, const void *b)
{
    const core_seg *x = a, *y = b;
    return (x->vaddr > y->vaddr) - (x->vaddr < y->vaddr);
}

static int map_order(const void *a, const void *b)
{
    const core_mapping *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

static size_t lib_index(core_file *c, const char *path)
{
    for (size_t i = 0; i < c->nlibs; i++)
        if (strcmp(c->libs[i].path, path) == 0)
            return i;
    if (!grow_array((void **)&c->libs, &c->cap_libs, c->nlibs + 1, sizeof(*c->libs), 16, SIZE_MAX))
        return SIZE_MAX;
    char *copy = strdup(path);
    if (!copy)
        return SIZE_MAX;
    c->libs[c->nlibs] = (core_lib){copy, -1, 0, NULL, 0};
    return c->nlibs++;
}

/* NT_FILE: count, page size, count x (start, end, page offset), then count NUL-ended names. */
static bool parse_nt_file(core_file *c, const uint8_t *d, uint64_t n)
{
    if (n < 16)
        return false;
    uint64_t count, page;
    memcpy(&count, d, 8);
    memcpy(&page, d + 8, 8);
    if (page == 0 || page > (1u << 30) || count > (n - 16) / 24 || c->maps)
        return false;
    c->maps = calloc(count ? count : 1, sizeof(*c->maps));
    if (!c->maps)
        return false;
    const char *name = (const char *)d + 16 + count * 24, *end = (const char *)d + n;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t e[3];
        memcpy(e, d + 16 + i * 24, sizeof e);
        const char *nul = memchr(name, 0, (size_t)(end - name));
        if (!nul || e[1] <= e[0] || e[2] > UINT64_MAX / page)
            return false;
        size_t li = lib_index(c, name);
        if (li == SIZE_MAX)
            return false;
        c->maps[c->nmaps++] = (core_mapping){e[0], e[1], e[2] * page, li};
        if (e[2] == 0 && (!c->libs[li].header_start || e[0] < c->libs[li].header_start))
            c->libs[li].header_start = e[0];
        name = nul + 1;
    }
    qsort(c->maps, c->nmaps, sizeof(*c->maps), map_order);
    return true;
}

static bool parse_note(core_file *c, uint32_t type, const uint8_t *d, uint64_t n)
{
    if (type == NT_PRSTATUS) {
        if (n < PRSTATUS_REGS_OFF + CORE_NREGS * 8 || c->nthreads >= MAX_THREADS)
            return false;
        if (!grow_array((void **)&c->threads, &c->cap_threads, c->nthreads + 1,
                        sizeof(*c->threads), 16, MAX_THREADS))
            return false;
        core_thread *t = &c->threads[c->nthreads++];
        int32_t tid;
        memcpy(&tid, d + PRSTATUS_PID_OFF, 4);
        t->tid = tid;
        memcpy(t->regs, d + PRSTATUS_REGS_OFF, sizeof(t->regs));
    } else if (type == NT_PRPSINFO) {
        if (n < PRPSINFO_ARGS_OFF + PRPSINFO_ARGS_LEN)
            return false;
        int32_t pid;
        memcpy(&pid, d + PRPSINFO_PID_OFF, 4);
        c->pid = pid;
        memcpy(c->command, d + PRPSINFO_ARGS_OFF, PRPSINFO_ARGS_LEN);
        c->command[PRPSINFO_ARGS_LEN] = '\0';
        size_t len = strlen(c->command);
        while (len && c->command[len - 1] == ' ')
            c->command[--len] = '\0';
    } else if (type == NT_FILE) {
        return parse_nt_file(c, d, n);
    } else if (type == NT_AUXV) {
        for (uint64_t i = 0; i + 16 <= n; i += 16) {
            uint64_t kv[2];
            memcpy(kv, d + i, 16);
            if (kv[0] == AT_PHDR)
                c->at_phdr = kv[1];
        }
    }
    return true;
}

/* Notes are 4-byte aligned in Linux cores (name and descriptor each padded). */
static bool parse_notes(core_file *c, const uint8_t *d, uint64_t n)
{
    uint64_t at = 0;
    while (at + 12 <= n) {
        uint32_t hdr[3];
        memcpy(hdr, d + at, 12);
        uint64_t name_len = ((uint64_t)hdr[0] + 3) & ~3ull, desc_len = ((uint64_t)hdr[1] + 3) & ~3ull;
        if (name_len > n - at - 12 || desc_len > n - at - 12 - name_len)
            return false;
        const uint8_t *desc = d + at + 12 + name_len;
        /* only the kernel's "CORE" notes (gdb writes the same); "LINUX" ones hold FP state */
        if (hdr[0] == 5 && memcmp(d + at + 12, "CORE", 5) == 0 &&
            !parse_note(c, hdr[2], desc, hdr[1]))
            return false;
        at += 12 + name_len + desc_len;
    }
    return true;
}

static core_status parse(core_file *c, char *msg, size_t msglen)
{
    const uint8_t *d = c->data;
    if (c->size < EI_NIDENT || memcmp(d, ELFMAG, SELFMAG) != 0)
        return fail(CORE_NOT_CORE, msg, msglen, "%s is not a core file (not ELF)", c->path);
    if (c->size < sizeof(Elf64_Ehdr))
        return fail(CORE_TRUNCATED, msg, msglen, "core file %s is truncated (no ELF header)",
                    c->path);
    Elf64_Ehdr eh;
    memcpy(&eh, d, sizeof eh);
    if (eh.e_type != ET_CORE)
        return fail(CORE_NOT_CORE, msg, msglen,
                    "%s is an ELF file but not a core file (gcore PID or a kernel core dump "
                    "is expected)", c->path);
    if (d[EI_CLASS] != ELFCLASS64 || d[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64)
        return fail(CORE_UNSUPPORTED, msg, msglen,
                    "core file %s is not of an x86-64 process (the only kind aprof reads)", c->path);
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum == PN_XNUM)
        return fail(CORE_CORRUPT, msg, msglen, "core file %s has corrupt program headers", c->path);
    if (eh.e_phoff > c->size || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > c->size - eh.e_phoff)
        return fail(CORE_TRUNCATED, msg, msglen, "core file %s is truncated (program headers "
                    "past its end)", c->path);
    c->segs = calloc(eh.e_phnum, sizeof(*c->segs));
    if (!c->segs)
        return fail(CORE_NO_MEMORY, msg, msglen, "out of memory reading %s", c->path);
    bool truncated = false, notes = false;
    for (size_t i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, d + eh.e_phoff + i * sizeof ph, sizeof ph);
        if (ph.p_offset > c->size || ph.p_filesz > c->size - ph.p_offset) {
            truncated = true;
            continue;
        }
        if (ph.p_type == PT_NOTE) {
            notes = true;
            if (!parse_notes(c, d + ph.p_offset, ph.p_filesz))
                return fail(CORE_CORRUPT, msg, msglen, "core file %s has corrupt notes", c->path);
        } else if (ph.p_type == PT_LOAD && ph.p_memsz) {
            if (ph.p_filesz > ph.p_memsz || ph.p_vaddr + ph.p_memsz < ph.p_vaddr)
                return fail(CORE_CORRUPT, msg, msglen, "core file %s has a corrupt segment",
                            c->path);
            c->segs[c->nsegs++] = (core_seg){ph.p_vaddr, ph.p_memsz, ph.p_filesz, ph.p_offset,
                                             ph.p_flags};
        }
    }
    if (truncated)
        return fail(CORE_TRUNCATED, msg, msglen, "core file %s is truncated (its segments reach "
                    "past its end: the dump was cut short, e.g. by a core size limit)", c->path);
    if (!notes || !c->nthreads)
        return fail(CORE_CORRUPT, msg, msglen, "core file %s has no thread notes", c->path);
    qsort(c->segs, c->nsegs, sizeof(*c->segs), seg_order);
    for (size_t i = 1; i < c->nsegs; i++)
        if (c->segs[i].vaddr < c->segs[i - 1].vaddr + c->segs[i - 1].memsz)
            return fail(CORE_CORRUPT, msg, msglen, "core file %s has overlapping segments",
                        c->path);
    if (!c->pid)
        c->pid = c->threads[0].tid;
    return CORE_OK;
}

core_status core_open(const char *path, core_file **out, char *msg, size_t msglen)
{
    *out = NULL;
    core_file *c = calloc(1, sizeof(*c));
    if (!c || !(c->path = strdup(path))) {
        free(c);
        snprintf(msg, msglen, "out of memory");
        return CORE_NO_MEMORY;
    }
    c->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (c->fd < 0 || fstat(c->fd, &sb) != 0) {
        snprintf(msg, msglen, "cannot open core file %s: %s", path, strerror(errno));
        core_close(c);
        return CORE_CANNOT_OPEN;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(msg, msglen, "%s is not a core file (not a regular file)", path);
        core_close(c);
        return CORE_NOT_CORE;
    }
    c->size = (size_t)sb.st_size;
    if (c->size) {
        void *p = mmap(NULL, c->size, PROT_READ, MAP_PRIVATE, c->fd, 0);
        if (p == MAP_FAILED) {
            snprintf(msg, msglen, "cannot map core file %s: %s", path, strerror(errno));
            core_close(c);
            return CORE_CANNOT_OPEN;
        }
        c->data = p;
    }
    core_status st = parse(c, msg, msglen);
    if (st != CORE_OK) {
        core_close(c);
        return st;
    }
    *out = c;
    return CORE_OK;
}

void core_close(core_file *c)
{
    if (!c)
        return;
    if (c->data)
        munmap((void *)c->data, c->size);
    if (c->fd >= 0)
        close(c->fd);
    for (size_t i = 0; i < c->nlibs; i++) {
        if (c->libs[i].fd >= 0)
            close(c->libs[i].fd);
        free(c->libs[i].path);
        free(c->libs[i].found);
    }
    for (size_t i = 0; i < c->nsearch; i++)
        free(c->search[i]);
    free(c->search);
    free(c->exe_override);
    free(c->libs);
    free(c->maps);
    free(c->segs);
    free(c->threads);
    free(c->path);
    free(c);
}

int core_add_lib_search(core_file *c, const char *dir)
{
    if (!grow_array((void **)&c->search, &c->cap_search, c->nsearch + 1, sizeof(*c->search), 4,
                    SIZE_MAX))
        return -1;
    if (!(c->search[c->nsearch] = strdup(dir)))
        return -1;
    c->nsearch++;
    return 0;
}

int core_set_executable(core_file *c, const char *path)
{
    free(c->exe_override);
    c->exe_override = strdup(path);
    return c->exe_override ? 0 : -1;
}

pid_t core_pid(const core_file *c) { return c->pid; }
const char *core_command(const core_file *c) { return c->command; }
const char *core_path(const core_file *c) { return c->path; }

size_t core_threads(const core_file *c, const core_thread **out)
{
    *out = c->threads;
    return c->nthreads;
}

const core_thread *core_thread_of(const core_file *c, pid_t tid)
{
    for (size_t i = 0; i < c->nthreads; i++)
        if (c->threads[i].tid == tid)
            return &c->threads[i];
    return NULL;
}

static const core_mapping *mapping_at(const core_file *c, uint64_t addr)
{
    size_t lo = 0, hi = c->nmaps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->maps[mid].end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->nmaps && c->maps[lo].start <= addr ? &c->maps[lo] : NULL;
}

static const core_seg *segment_at(const core_file *c, uint64_t addr)
{
    size_t lo = 0, hi = c->nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->segs[mid].vaddr + c->segs[mid].memsz <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->nsegs && c->segs[lo].vaddr <= addr ? &c->segs[lo] : NULL;
}

static void resolve_quietly(core_file *c, core_lib *lib);

/* The p_flags of the PT_LOAD of lib's file that maps file offset `offset` (PF_R when unknown). */
static uint32_t file_segment_flags(core_file *c, core_lib *lib, uint64_t offset)
{
    if (lib->state == 0)
        resolve_quietly(c, lib);
    Elf64_Ehdr eh;
    if (lib->state != 1 || pread(lib->fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_phentsize != sizeof(Elf64_Phdr) ||
        eh.e_phnum > 64)
        return PF_R;
    Elf64_Phdr ph[64];
    size_t n = eh.e_phnum * sizeof(Elf64_Phdr);
    if (pread(lib->fd, ph, n, (off_t)eh.e_phoff) != (ssize_t)n)
        return PF_R;
    for (size_t i = 0; i < eh.e_phnum; i++)
        if (ph[i].p_type == PT_LOAD && (ph[i].p_offset & ~0xfffull) <= offset &&
            offset < ph[i].p_offset + ph[i].p_filesz)
            return ph[i].p_flags;
    return PF_R;
}

static int proc_map_order(const void *a, const void *b)
{
    const proc_map *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

int core_maps(core_file *c, proc_maps *out)
{
    out->n = 0;
    out->maps = calloc(c->nsegs + c->nmaps + 1, sizeof(*out->maps));
    if (!out->maps)
        return -1;
    for (size_t i = 0; i < c->nsegs; i++) {
        const core_seg *s = &c->segs[i];
        proc_map *m = &out->maps[out->n++];
        m->start = s->vaddr;
        m->end = s->vaddr + s->memsz;
        snprintf(m->perms, sizeof m->perms, "%c%c%cp", s->flags & PF_R ? 'r' : '-',
                 s->flags & PF_W ? 'w' : '-', s->flags & PF_X ? 'x' : '-');
        const core_mapping *fm = mapping_at(c, s->vaddr);
        if (fm && fm->start == s->vaddr) {
            m->offset = fm->offset;
            if (!(m->path = strdup(c->libs[fm->lib].path))) {
                proc_maps_free(out);
                return -1;
            }
        }
    }
    /* file mappings the core left out entirely (gdb skips read-only ones): their permissions
     * are those of the file's segment at that offset (code must read as executable) */
    for (size_t i = 0; i < c->nmaps; i++) {
        const core_mapping *fm = &c->maps[i];
        if (segment_at(c, fm->start))
            continue;
        uint32_t flags = file_segment_flags(c, &c->libs[fm->lib], fm->offset);
        proc_map *m = &out->maps[out->n++];
        *m = (proc_map){fm->start, fm->end, fm->offset, "", strdup(c->libs[fm->lib].path)};
        snprintf(m->perms, sizeof m->perms, "r%c%cp", flags & PF_W ? 'w' : '-',
                 flags & PF_X ? 'x' : '-');
        if (!m->path) {
            proc_maps_free(out);
            return -1;
        }
    }
    qsort(out->maps, out->n, sizeof(*out->maps), proc_map_order);
    return 0;
}

/* ---- build ids ---------------------------------------------------------------------------- */

static core_read_observer read_observer; /* core_observe_reads */
static void *read_observer_ud;

void core_observe_reads(core_read_observer fn, void *ud)
{
    read_observer = fn;
    read_observer_ud = ud;
}

typedef int (*read_at_fn)(void *ud, uint64_t at, void *dst, size_t len);

/* The GNU build id of an ELF image, from its program headers' notes. `in_memory`: `rd` reads
 * the image as loaded (the notes at their p_vaddr relative to the first PT_LOAD), else as a
 * file (at p_offset). Returns the id's length, 0 when none is found. */
static size_t build_id(read_at_fn rd, void *ud, bool in_memory, uint8_t *id)
{
    Elf64_Ehdr eh;
    if (rd(ud, 0, &eh, sizeof eh) != 0 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 64)
        return 0;
    Elf64_Phdr ph[64];
    if (rd(ud, eh.e_phoff, ph, eh.e_phnum * sizeof(Elf64_Phdr)) != 0)
        return 0;
    uint64_t first_load = UINT64_MAX;
    for (size_t i = 0; i < eh.e_phnum; i++)
        if (ph[i].p_type == PT_LOAD && ph[i].p_vaddr < first_load)
            first_load = ph[i].p_vaddr & ~0xfffull;
    for (size_t i = 0; i < eh.e_phnum; i++) {
        if (ph[i].p_type != PT_NOTE || ph[i].p_filesz > 4096)
            continue;
        if (in_memory && (first_load == UINT64_MAX || ph[i].p_vaddr < first_load))
            continue;
        uint8_t notes[4096];
        uint64_t at = in_memory ? ph[i].p_vaddr - first_load : ph[i].p_offset;
        size_t n = (size_t)ph[i].p_filesz;
        if (rd(ud, at, notes, n) != 0)
            continue;
        for (size_t off = 0; off + 12 <= n;) {
            uint32_t h[3];
            memcpy(h, notes + off, 12);
            size_t nl = (h[0] + 3u) & ~3u, dl = (h[1] + 3u) & ~3u;
            if (nl > n - off - 12 || dl > n - off - 12 - nl)
                break;
            if (h[2] == NT_GNU_BUILD_ID && h[0] == 4 && memcmp(notes + off + 12, "GNU", 4) == 0 &&
                h[1] > 0 && h[1] <= BUILD_ID_MAX) {
                memcpy(id, notes + off + 12 + nl, h[1]);
                return h[1];
            }
            off += 12 + nl + dl;
        }
    }
    return 0;
}

typedef struct core_view {
    core_file *c;
    uint64_t base;
} core_view;

/* Reads only what the core itself holds (never the mapped files: this is what they are checked
 * against). */
static int read_core_only(void *ud, uint64_t at, void *dst, size_t len)
{
    core_view *v = ud;
    uint64_t addr = v->base + at;
    const core_seg *s = segment_at(v->c, addr);
    if (!s || addr + len < addr || addr + len > s->vaddr + s->filesz)
        return -1;
    memcpy(dst, v->c->data + s->offset + (addr - s->vaddr), len);
    if (read_observer)
        read_observer(read_observer_ud, addr, len);
    return 0;
}

static int read_file_at(void *ud, uint64_t at, void *dst, size_t len)
{
    return pread(*(int *)ud, dst, len, (off_t)at) == (ssize_t)len ? 0 : -1;
}

static void hex(const uint8_t *id, size_t n, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < n && 2 * i + 2 < len; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static bool is_executable(const core_file *c, const core_lib *lib)
{
    if (!c->at_phdr)
        return false;
    const core_mapping *m = mapping_at(c, c->at_phdr);
    return m && &c->libs[m->lib] == lib;
}

/* The candidate paths for a recorded path, in order: each search directory + path, each search
 * directory + basename, the path itself; for the executable, --executable alone when given. */
static size_t candidates(const core_file *c, const core_lib *lib, char (*out)[PATH_MAX], size_t max)
{
    size_t n = 0;
    const char *base = strrchr(lib->path, '/');
    base = base ? base + 1 : lib->path;
    if (c->exe_override && is_executable(c, lib) && n < max) {
        snprintf(out[n++], PATH_MAX, "%s", c->exe_override);
        return n; /* the user's word: never another file instead */
    }
    for (size_t i = 0; i < c->nsearch && n + 2 <= max; i++) {
        snprintf(out[n++], PATH_MAX, "%s%s", c->search[i], lib->path);
        snprintf(out[n++], PATH_MAX, "%s/%s", c->search[i], base);
    }
    if (n < max)
        snprintf(out[n++], PATH_MAX, "%s", lib->path);
    return n;
}

static core_file_status resolve(core_file *c, core_lib *lib, char *found, size_t foundlen,
                                char *why, size_t whylen)
{
    uint8_t want[BUILD_ID_MAX], have[BUILD_ID_MAX];
    core_view v = {c, lib->header_start};
    size_t want_n = lib->header_start ? build_id(read_core_only, &v, true, want) : 0;
    char cands[18][PATH_MAX];
    size_t nc = candidates(c, lib, cands, 18);
    bool any = false;
    char mismatch_hex[2 * BUILD_ID_MAX + 1] = "";
    for (size_t i = 0; i < nc; i++) {
        /* a path from the core may name anything: only a regular file is read (a FIFO would
         * block the open, a device read forever) */
        int fd = open(cands[i], O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        struct stat sb;
        if (fd >= 0 && (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))) {
            close(fd);
            fd = -1;
        }
        if (fd < 0)
            continue;
        any = true;
        size_t have_n = want_n ? build_id(read_file_at, &fd, false, have) : 0;
        if (want_n && (have_n != want_n || memcmp(want, have, want_n) != 0)) {
            hex(have, have_n, mismatch_hex, sizeof mismatch_hex);
            close(fd);
            continue;
        }
        lib->fd = fd;
        lib->state = 1;
        lib->found = strdup(cands[i]); /* NULL (ENOMEM): only resolved again next time */
        if (found)
            snprintf(found, foundlen, "%s", cands[i]);
        return CORE_FILE_FOUND;
    }
    char want_hex[2 * BUILD_ID_MAX + 1];
    hex(want, want_n, want_hex, sizeof want_hex);
    if (any) {
        lib->state = 3;
        snprintf(why, whylen, "%s mapped in the core has build id %s, but the file found has %s "
                 "(another build: point --lib-search at a copy of the original machine's files)",
                 lib->path, want_hex, mismatch_hex[0] ? mismatch_hex : "none");
        return CORE_FILE_MISMATCH;
    }
    lib->state = 2;
    snprintf(why, whylen, "%s mapped in the core is not found on this machine (copy it and use "
             "--lib-search DIR)", lib->path);
    return CORE_FILE_MISSING;
}

static void resolve_quietly(core_file *c, core_lib *lib)
{
    char why[8];
    resolve(c, lib, NULL, 0, why, sizeof why);
}

core_file_status core_mapped_file_path(core_file *c, uint64_t start, const char *path, char *out,
                                       size_t len, char *why, size_t whylen)
{
    const core_mapping *m = mapping_at(c, start);
    core_lib *lib = NULL;
    if (m && strcmp(c->libs[m->lib].path, path) == 0)
        lib = &c->libs[m->lib];
    for (size_t i = 0; !lib && i < c->nlibs; i++)
        if (strcmp(c->libs[i].path, path) == 0)
            lib = &c->libs[i];
    if (!lib) {
        snprintf(why, whylen, "%s is not mapped in the core", path);
        return CORE_FILE_MISSING;
    }
    if (lib->state == 1 && lib->found) {
        snprintf(out, len, "%s", lib->found);
        return CORE_FILE_FOUND;
    }
    if (lib->fd >= 0) {
        close(lib->fd);
        lib->fd = -1;
    }
    return resolve(c, lib, out, len, why, whylen);
}

/* ---- memory ------------------------------------------------------------------------------- */

/* Copy up to len bytes at addr from one segment or mapped file; returns the bytes copied (0:
 * addr not readable). */
static size_t read_piece(core_file *c, uint64_t addr, uint8_t *dst, size_t len)
{
    const core_seg *s = segment_at(c, addr);
    if (s && addr < s->vaddr + s->filesz) {
        uint64_t avail = s->vaddr + s->filesz - addr;
        size_t n = len < avail ? len : (size_t)avail;
        memcpy(dst, c->data + s->offset + (addr - s->vaddr), n);
        if (read_observer)
            read_observer(read_observer_ud, addr, n);
        return n;
    }
    const core_mapping *m = mapping_at(c, addr);
    if (!m)
        return 0;
    core_lib *lib = &c->libs[m->lib];
    if (lib->state == 0)
        resolve_quietly(c, lib);
    if (lib->state != 1)
        return 0;
    uint64_t end = m->end;
    if (s && s->vaddr + s->memsz < end)
        end = s->vaddr + s->memsz;
    uint64_t avail = end - addr;
    size_t want = len < avail ? len : (size_t)avail;
    ssize_t got = pread(lib->fd, dst, want, (off_t)(m->offset + (addr - m->start)));
    return got > 0 ? (size_t)got : 0;
}

ssize_t core_readv(core_file *c, const struct iovec *local, size_t n, const struct iovec *remote)
{
    ssize_t total = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t addr = (uint64_t)(uintptr_t)remote[i].iov_base;
        size_t len = remote[i].iov_len < local[i].iov_len ? remote[i].iov_len : local[i].iov_len;
        size_t done = 0;
        while (done < len) {
            size_t got = read_piece(c, addr + done, (uint8_t *)local[i].iov_base + done, len - done);
            if (!got)
                break;
            done += got;
        }
        total += (ssize_t)done;
        if (done < len) {
            if (total == 0) {
                errno = EFAULT;
                return -1;
            }
            return total;
        }
    }
    return total;
}

char *core_maps_text(core_file *c, size_t *len)
{
    proc_maps maps;
    if (core_maps(c, &maps) != 0)
        return NULL;
    size_t cap = 4096, n = 0;
    char *text = malloc(cap);
    for (size_t i = 0; text && i < maps.n; i++) {
        const proc_map *m = &maps.maps[i];
        char resolved[PATH_MAX], why[8];
        const char *path = m->path ? m->path : "";
        if (m->path && core_mapped_file_path(c, m->start, m->path, resolved, sizeof resolved, why,
                                             sizeof why) == CORE_FILE_FOUND)
            path = resolved;
        size_t need = strlen(path) + 128;
        if (!grow_array((void **)&text, &cap, n + need, 1, 4096, SIZE_MAX)) {
            free(text);
            text = NULL;
            break;
        }
        /* an inode per file: readers tell files apart by it (libdw joins the neighbouring
         * mappings of one inode into one module) */
        size_t inode = 0;
        for (size_t k = 0; m->path && k < c->nlibs && !inode; k++)
            if (strcmp(c->libs[k].path, m->path) == 0)
                inode = k + 1;
        n += (size_t)snprintf(text + n, cap - n, "%" PRIx64 "-%" PRIx64 " %s %08" PRIx64
                              " 00:00 %zu %s\n", m->start, m->end, m->perms, m->offset, inode,
                              path);
    }
    proc_maps_free(&maps);
    if (text) {
        text[n] = '\0';
        *len = n;
    } else {
        errno = ENOMEM;
    }
    return text;
}
