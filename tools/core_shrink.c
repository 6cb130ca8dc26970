/* core_shrink: keep of a core file only the bytes `aprof dump --core` reads of it.
 *
 *     core_shrink BIG.core SMALL.core [DUMP OPTIONS...]
 *
 * Runs the dump (`dump --core BIG.core --json` plus the options given, output discarded) with a
 * read observer on the core (core_observe_reads), then writes SMALL.core: the same ELF header and
 * notes (threads, registers, the NT_FILE list of mapped files), and the original PT_LOAD
 * segments split at the ranges read: those ranges keep their bytes, the rest of each segment
 * stays as a header without bytes (p_filesz 0), so the maps and their permissions are unchanged.
 * A dump of SMALL.core on a machine with the same mapped files reads exactly the same bytes and
 * prints the same (tests/integration/test_core.py checks it). The seeds of
 * fuzz/corpus/fuzz_core_dump are made this way from gcores of the fixtures: kilobytes instead of
 * the tens of megabytes of a whole core. */
#include "cli.h"
#include "core_file.h"

#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GRAIN 64u    /* ranges read are widened to this alignment */
#define MAX_GAP 256u /* ranges this close are merged (fewer program headers) */

typedef struct range {
    uint64_t start, end;
} range;

typedef struct ranges {
    range *r;
    size_t n, cap;
    int failed;
} ranges;

static void observe(void *ud, uint64_t addr, size_t len)
{
    ranges *rs = ud;
    if (rs->failed || !len)
        return;
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 1024;
        range *n = realloc(rs->r, cap * sizeof(*n));
        if (!n) {
            rs->failed = 1;
            return;
        }
        rs->r = n;
        rs->cap = cap;
    }
    rs->r[rs->n++] = (range){addr & ~(uint64_t)(GRAIN - 1),
                             (addr + len + GRAIN - 1) & ~(uint64_t)(GRAIN - 1)};
}

static int by_start(const void *a, const void *b)
{
    const range *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

static void merge(ranges *rs)
{
    qsort(rs->r, rs->n, sizeof(*rs->r), by_start);
    size_t k = 0;
    for (size_t i = 0; i < rs->n; i++) {
        if (k && rs->r[i].start <= rs->r[k - 1].end + MAX_GAP) {
            if (rs->r[i].end > rs->r[k - 1].end)
                rs->r[k - 1].end = rs->r[i].end;
        } else {
            rs->r[k++] = rs->r[i];
        }
    }
    rs->n = k;
}

typedef struct out_seg {
    Elf64_Phdr ph;
    const uint8_t *bytes; /* p_filesz bytes, in the big core's mapping */
} out_seg;

static int push(out_seg **segs, size_t *n, size_t *cap, out_seg seg)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        out_seg *ns = realloc(*segs, c * sizeof(*ns));
        if (!ns)
            return -1;
        *segs = ns;
        *cap = c;
    }
    (*segs)[(*n)++] = seg;
    return 0;
}

/* Split segment ph (of the core mapped at d) at the ranges read (sorted, disjoint): the bytes
 * read keep their data, the rest becomes headers without bytes. */
static int split(const uint8_t *d, const Elf64_Phdr *ph, const ranges *rs, out_seg **segs,
                 size_t *n, size_t *cap)
{
    uint64_t pos = ph->p_vaddr, end = ph->p_vaddr + ph->p_memsz;
    uint64_t file_end = ph->p_vaddr + ph->p_filesz;
    for (size_t i = 0; i < rs->n; i++) {
        uint64_t a = rs->r[i].start > pos ? rs->r[i].start : pos;
        uint64_t b = rs->r[i].end < file_end ? rs->r[i].end : file_end;
        if (b <= a)
            continue;
        if (a > pos && push(segs, n, cap, (out_seg){{PT_LOAD, ph->p_flags, 0, pos, 0, 0,
                                                     a - pos, 1}, NULL}) != 0)
            return -1;
        if (push(segs, n, cap, (out_seg){{PT_LOAD, ph->p_flags, 0, a, 0, b - a, b - a, 1},
                                         d + ph->p_offset + (a - ph->p_vaddr)}) != 0)
            return -1;
        pos = b;
    }
    if (pos < end && push(segs, n, cap, (out_seg){{PT_LOAD, ph->p_flags, 0, pos, 0, 0,
                                                   end - pos, 1}, NULL}) != 0)
        return -1;
    return 0;
}

static int write_core(const char *path, const uint8_t *d, size_t size, const ranges *rs)
{
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)d;
    if (size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
        eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > size)
        return -1;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(d + eh->e_phoff);
    out_seg *segs = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_offset + ph[i].p_filesz > size)
            goto fail;
        if (ph[i].p_type == PT_LOAD) {
            if (split(d, &ph[i], rs, &segs, &n, &cap) != 0)
                goto fail;
        } else if (push(&segs, &n, &cap, (out_seg){ph[i], d + ph[i].p_offset}) != 0) {
            goto fail;
        }
    }
    if (n >= PN_XNUM)
        goto fail;
    Elf64_Ehdr oh = *eh;
    oh.e_phoff = sizeof(oh);
    oh.e_phnum = (Elf64_Half)n;
    oh.e_shoff = 0;
    oh.e_shnum = 0;
    oh.e_shstrndx = 0;
    uint64_t off = sizeof(oh) + n * sizeof(Elf64_Phdr);
    for (size_t i = 0; i < n; i++) {
        segs[i].ph.p_offset = segs[i].ph.p_filesz ? off : 0;
        off += segs[i].ph.p_filesz;
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        goto fail;
    int ok = fwrite(&oh, sizeof(oh), 1, f) == 1;
    for (size_t i = 0; i < n && ok; i++)
        ok = fwrite(&segs[i].ph, sizeof(Elf64_Phdr), 1, f) == 1;
    for (size_t i = 0; i < n && ok; i++)
        if (segs[i].ph.p_filesz)
            ok = fwrite(segs[i].bytes, segs[i].ph.p_filesz, 1, f) == 1;
    if (fclose(f) != 0 || !ok)
        goto fail;
    fprintf(stderr, "core_shrink: %zu ranges read, %zu program headers, %llu bytes\n", rs->n, n,
            (unsigned long long)off);
    free(segs);
    return 0;
fail:
    free(segs);
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: core_shrink BIG.core SMALL.core [dump options...]\n");
        return 2;
    }
    ranges rs = {0};
    core_observe_reads(observe, &rs);
    char **dargv = calloc((size_t)argc + 3, sizeof(*dargv));
    if (!dargv)
        return 9;
    int dargc = 0;
    dargv[dargc++] = "dump";
    dargv[dargc++] = "--core";
    dargv[dargc++] = argv[1];
    dargv[dargc++] = "--json";
    for (int i = 3; i < argc; i++)
        dargv[dargc++] = argv[i];
    /* the dump's output is not wanted: only which bytes it read */
    fflush(stdout);
    int saved = dup(STDOUT_FILENO), null = open("/dev/null", O_WRONLY);
    if (saved < 0 || null < 0 || dup2(null, STDOUT_FILENO) < 0)
        return 9;
    int rc = cmd_dump(dargc, dargv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(null);
    close(saved);
    free(dargv);
    core_observe_reads(NULL, NULL);
    if (rc != 0 || rs.failed) {
        fprintf(stderr, "core_shrink: the dump of %s failed (exit %d)\n", argv[1], rc);
        free(rs.r);
        return rc ? rc : 9;
    }
    merge(&rs);
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(argv[1]);
        free(rs.r);
        return 10;
    }
    const uint8_t *d = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (d == MAP_FAILED) {
        perror("mmap");
        free(rs.r);
        return 10;
    }
    rc = write_core(argv[2], d, (size_t)st.st_size, &rs);
    munmap((void *)d, (size_t)st.st_size);
    free(rs.r);
    if (rc != 0) {
        fprintf(stderr, "core_shrink: cannot write %s\n", argv[2]);
        return 7;
    }
    return 0;
}
