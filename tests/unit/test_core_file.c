/* src/target/core_file.c on synthetic cores built here byte by byte: the notes (threads,
 * registers, pid, command, mapped files), memory read from the core and from the mapped file it
 * leaves out, process_vm_readv's prefix contract, the maps, the build-id check of mapped files
 * (and --lib-search, --executable), and every malformed input the parser must refuse with its
 * own status instead of reading outside the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core_file.h"

#define LIB_START 0x10000ull  /* the mapped file: 2 pages, the first one in the core */
#define DATA_START 0x20000ull /* anonymous memory: 1 page, in the core */
#define PATTERN(i) ((uint8_t)((i) * 13 + 5))

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void pad4(buf *b)
{
    static const uint8_t zero[4];
    put(b, zero, (4 - b->n % 4) % 4);
}

static void note(buf *b, const char *name, uint32_t type, const void *desc, uint32_t n)
{
    uint32_t h[3] = {(uint32_t)strlen(name) + 1, n, type};
    put(b, h, sizeof h);
    put(b, name, h[0]);
    pad4(b);
    put(b, desc, n);
    pad4(b);
}

/* An ELF image's first page with a PT_NOTE holding build id `id` (4 bytes). */
static void elf_page(uint8_t *page, const uint8_t id[4])
{
    memset(page, 0, 4096);
    Elf64_Ehdr *eh = (Elf64_Ehdr *)page;
    memcpy(eh->e_ident, ELFMAG, SELFMAG);
    eh->e_ident[EI_CLASS] = ELFCLASS64;
    eh->e_ident[EI_DATA] = ELFDATA2LSB;
    eh->e_type = ET_DYN;
    eh->e_machine = EM_X86_64;
    eh->e_phoff = sizeof *eh;
    eh->e_phentsize = sizeof(Elf64_Phdr);
    eh->e_phnum = 2;
    Elf64_Phdr *ph = (Elf64_Phdr *)(page + sizeof *eh);
    ph[0] = (Elf64_Phdr){.p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = 0, .p_vaddr = 0,
                         .p_filesz = 8192, .p_memsz = 8192};
    ph[1] = (Elf64_Phdr){.p_type = PT_NOTE, .p_offset = 512, .p_vaddr = 512, .p_filesz = 20};
    uint32_t h[3] = {4, 4, NT_GNU_BUILD_ID};
    memcpy(page + 512, h, 12);
    memcpy(page + 524, "GNU", 4);
    memcpy(page + 528, id, 4);
}

typedef struct fixture {
    char dir[64], core[128], lib[128];
} fixture;

static const uint8_t ID_A[4] = {0xaa, 0xbb, 0xcc, 0xdd}, ID_B[4] = {1, 2, 3, 4};

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* The mapped file: an ELF first page with build id `id`, then a page of PATTERN bytes. */
static void write_lib(const char *path, const uint8_t id[4])
{
    uint8_t pages[8192];
    elf_page(pages, id);
    for (size_t i = 4096; i < 8192; i++)
        pages[i] = PATTERN(i);
    write_file(path, pages, sizeof pages);
}

/* A core of pid 100 with threads 100 (in epoll_wait) and 101 (in user space), the command
 * "python3 app.py", the file `lib_path` mapped at LIB_START (its first page, build id ID_A, in
 * the core; the second left to the file), and a page of anonymous memory at DATA_START. */
static buf make_core(const char *lib_path)
{
    buf notes = {0};
    uint8_t prstatus[336];
    for (int t = 0; t < 2; t++) {
        memset(prstatus, 0, sizeof prstatus);
        int32_t tid = 100 + t;
        memcpy(prstatus + 32, &tid, 4);
        uint64_t regs[CORE_NREGS] = {0};
        regs[CORE_RIP] = LIB_START + 0x1100 + (uint64_t)t;
        regs[CORE_RSP] = DATA_START + 0x800;
        regs[CORE_ORIG_RAX] = t == 0 ? 232 : (uint64_t)-1;
        memcpy(prstatus + 112, regs, sizeof regs);
        note(&notes, "CORE", NT_PRSTATUS, prstatus, sizeof prstatus);
    }
    uint8_t psinfo[136] = {0};
    int32_t pid = 100;
    memcpy(psinfo + 24, &pid, 4);
    memcpy(psinfo + 56, "python3 app.py ", 15);
    note(&notes, "CORE", NT_PRPSINFO, psinfo, sizeof psinfo);
    uint64_t auxv[4] = {AT_PHDR, LIB_START + 64, AT_NULL, 0};
    note(&notes, "CORE", NT_AUXV, auxv, sizeof auxv);
    buf file = {0};
    uint64_t hdr[2] = {1, 4096};
    put(&file, hdr, sizeof hdr);
    uint64_t ent[3] = {LIB_START, LIB_START + 8192, 0};
    put(&file, ent, sizeof ent);
    put(&file, lib_path, strlen(lib_path) + 1);
    note(&notes, "CORE", NT_FILE, file.p, (uint32_t)file.n);
    free(file.p);

    buf core = {0};
    Elf64_Ehdr eh = {0};
    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_type = ET_CORE;
    eh.e_machine = EM_X86_64;
    eh.e_phoff = sizeof eh;
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = 3;
    put(&core, &eh, sizeof eh);
    uint64_t notes_off = sizeof eh + 3 * sizeof(Elf64_Phdr);
    uint64_t lib_off = (notes_off + notes.n + 4095) & ~4095ull, data_off = lib_off + 4096;
    Elf64_Phdr ph[3] = {
        {.p_type = PT_NOTE, .p_offset = notes_off, .p_filesz = notes.n},
        {.p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = lib_off, .p_vaddr = LIB_START,
         .p_filesz = 4096, .p_memsz = 8192},
        {.p_type = PT_LOAD, .p_flags = PF_R | PF_W, .p_offset = data_off, .p_vaddr = DATA_START,
         .p_filesz = 4096, .p_memsz = 4096},
    };
    put(&core, ph, sizeof ph);
    put(&core, notes.p, notes.n);
    free(notes.p);
    static const uint8_t zero[4096];
    put(&core, zero, lib_off - core.n);
    uint8_t page[4096];
    elf_page(page, ID_A);
    put(&core, page, sizeof page);
    for (size_t i = 0; i < sizeof page; i++)
        page[i] = PATTERN(i);
    put(&core, page, sizeof page);
    return core;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/aprof-core-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->core, sizeof f->core, "%s/core", f->dir);
    snprintf(f->lib, sizeof f->lib, "%s/libpython3.12.so", f->dir);
    write_lib(f->lib, ID_A);
    buf core = make_core(f->lib);
    write_file(f->core, core.p, core.n);
    free(core.p);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static core_file *open_ok(const char *path)
{
    core_file *c = NULL;
    char msg[512];
    core_status st = core_open(path, &c, msg, sizeof msg);
    if (st != CORE_OK)
        fail_msg("core_open: %d %s", st, msg);
    return c;
}

static void test_notes(void **state)
{
    fixture *f = *state;
    core_file *c = open_ok(f->core);
    assert_int_equal(core_pid(c), 100);
    assert_string_equal(core_command(c), "python3 app.py");
    const core_thread *t;
    assert_int_equal(core_threads(c, &t), 2);
    assert_int_equal(t[0].tid, 100);
    assert_int_equal(t[1].tid, 101);
    assert_int_equal(t[0].regs[CORE_ORIG_RAX], 232);
    assert_int_equal(t[1].regs[CORE_RIP], LIB_START + 0x1101);
    assert_ptr_equal(core_thread_of(c, 101), &t[1]);
    assert_null(core_thread_of(c, 102));
    core_close(c);
}

static void test_memory(void **state)
{
    fixture *f = *state;
    core_file *c = open_ok(f->core);
    uint8_t got[64], want[64];
    /* across the end of the core's page and into the file's second page */
    struct iovec local = {got, 32}, remote = {(void *)(uintptr_t)(LIB_START + 4096 - 16), 32};
    assert_int_equal(core_readv(c, &local, 1, &remote), 32);
    uint8_t page0[4096];
    elf_page(page0, ID_A);
    memcpy(want, page0 + 4096 - 16, 16);
    for (size_t i = 0; i < 16; i++)
        want[16 + i] = PATTERN(4096 + i);
    assert_memory_equal(got, want, 32);
    /* anonymous memory */
    remote = (struct iovec){(void *)(uintptr_t)(DATA_START + 100), 8};
    local.iov_len = 8;
    assert_int_equal(core_readv(c, &local, 1, &remote), 8);
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(got[i], PATTERN(100 + i));
    /* unmapped: -1 EFAULT; running off the end of a mapping: the prefix */
    remote = (struct iovec){(void *)(uintptr_t)0x30000, 8};
    errno = 0;
    assert_int_equal(core_readv(c, &local, 1, &remote), -1);
    assert_int_equal(errno, EFAULT);
    remote = (struct iovec){(void *)(uintptr_t)(DATA_START + 4096 - 4), 8};
    assert_int_equal(core_readv(c, &local, 1, &remote), 4);
    /* ranges in order, stopping at the first that is not whole */
    uint8_t a[8], b[8], d[8];
    struct iovec locals[3] = {{a, 8}, {b, 8}, {d, 8}};
    struct iovec remotes[3] = {{(void *)(uintptr_t)DATA_START, 8},
                               {(void *)(uintptr_t)0x30000, 8},
                               {(void *)(uintptr_t)DATA_START, 8}};
    assert_int_equal(core_readv(c, locals, 3, remotes), 8);
    core_close(c);
}

static void test_maps(void **state)
{
    fixture *f = *state;
    core_file *c = open_ok(f->core);
    proc_maps maps;
    assert_int_equal(core_maps(c, &maps), 0);
    assert_int_equal(maps.n, 2);
    assert_int_equal(maps.maps[0].start, LIB_START);
    assert_int_equal(maps.maps[0].end, LIB_START + 8192);
    assert_string_equal(maps.maps[0].perms, "r-xp");
    assert_string_equal(maps.maps[0].path, f->lib);
    assert_int_equal(maps.maps[1].start, DATA_START);
    assert_null(maps.maps[1].path);
    proc_maps_free(&maps);
    size_t len;
    char *text = core_maps_text(c, &len);
    assert_non_null(text);
    char want[512];
    snprintf(want, sizeof want, "10000-12000 r-xp 00000000 00:00 1 %s\n"
             "20000-21000 rw-p 00000000 00:00 0 \n", f->lib);
    assert_string_equal(text, want);
    free(text);
    core_close(c);
}

static void test_build_ids(void **state)
{
    fixture *f = *state;
    char out[PATH_MAX], why[512];
    /* the right build: found where recorded */
    core_file *c = open_ok(f->core);
    assert_int_equal(core_mapped_file_path(c, LIB_START, f->lib, out, sizeof out, why, sizeof why),
                     CORE_FILE_FOUND);
    assert_string_equal(out, f->lib);
    core_close(c);
    /* another build at the recorded path: refused, named, and its memory unreadable */
    write_lib(f->lib, ID_B);
    c = open_ok(f->core);
    assert_int_equal(core_mapped_file_path(c, LIB_START, f->lib, out, sizeof out, why, sizeof why),
                     CORE_FILE_MISMATCH);
    assert_non_null(strstr(why, "aabbccdd"));
    assert_non_null(strstr(why, "01020304"));
    assert_non_null(strstr(why, f->lib));
    uint8_t byte;
    struct iovec local = {&byte, 1}, remote = {(void *)(uintptr_t)(LIB_START + 4096), 1};
    assert_int_equal(core_readv(c, &local, 1, &remote), -1);
    core_close(c);
    /* the right build in a --lib-search directory (flat): found there first */
    char dir[128], copy[192];
    snprintf(dir, sizeof dir, "%s/copy", f->dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(copy, sizeof copy, "%s/libpython3.12.so", dir);
    write_lib(copy, ID_A);
    c = open_ok(f->core);
    assert_int_equal(core_add_lib_search(c, dir), 0);
    assert_int_equal(core_mapped_file_path(c, LIB_START, f->lib, out, sizeof out, why, sizeof why),
                     CORE_FILE_FOUND);
    assert_string_equal(out, copy);
    assert_int_equal(core_readv(c, &local, 1, &remote), 1);
    assert_int_equal(byte, PATTERN(4096));
    core_close(c);
    /* --executable (the file holds AT_PHDR) is the only candidate when given */
    c = open_ok(f->core);
    assert_int_equal(core_add_lib_search(c, dir), 0);
    assert_int_equal(core_set_executable(c, f->lib), 0);
    assert_int_equal(core_mapped_file_path(c, LIB_START, f->lib, out, sizeof out, why, sizeof why),
                     CORE_FILE_MISMATCH);
    core_close(c);
    /* missing everywhere */
    unlink(copy);
    unlink(f->lib);
    c = open_ok(f->core);
    assert_int_equal(core_mapped_file_path(c, LIB_START, f->lib, out, sizeof out, why, sizeof why),
                     CORE_FILE_MISSING);
    assert_non_null(strstr(why, "--lib-search"));
    core_close(c);
    /* a FIFO where the file was: not opened for good (it would block), reported missing */
    assert_int_equal(mkfifo(f->lib, 0600), 0);
    c = open_ok(f->core);
    assert_int_equal(core_mapped_file_path(c, LIB_START, f->lib, out, sizeof out, why, sizeof why),
                     CORE_FILE_MISSING);
    core_close(c);
}

static core_status open_bytes(fixture *f, const void *p, size_t n, char *msg, size_t msglen)
{
    char path[160];
    snprintf(path, sizeof path, "%s/bad", f->dir);
    write_file(path, p, n);
    core_file *c = (core_file *)1;
    core_status st = core_open(path, &c, msg, msglen);
    assert_null(c);
    return st;
}

static void test_malformed(void **state)
{
    fixture *f = *state;
    buf core = make_core(f->lib);
    char msg[512];
    assert_int_equal(open_bytes(f, "hello", 5, msg, sizeof msg), CORE_NOT_CORE);
    assert_int_equal(open_bytes(f, "", 0, msg, sizeof msg), CORE_NOT_CORE);
    assert_int_equal(open_bytes(f, core.p, 40, msg, sizeof msg), CORE_TRUNCATED);
    /* cut inside the segments: truncated, whatever the cut */
    for (size_t cut = core.n - 1; cut > core.n - 8192; cut -= 1021)
        assert_int_equal(open_bytes(f, core.p, cut, msg, sizeof msg), CORE_TRUNCATED);
    assert_non_null(strstr(msg, "truncated"));
    uint8_t *bad = malloc(core.n);
    Elf64_Ehdr *eh = (Elf64_Ehdr *)bad;
    memcpy(bad, core.p, core.n);
    eh->e_type = ET_EXEC;
    assert_int_equal(open_bytes(f, bad, core.n, msg, sizeof msg), CORE_NOT_CORE);
    memcpy(bad, core.p, core.n);
    eh->e_machine = EM_AARCH64;
    assert_int_equal(open_bytes(f, bad, core.n, msg, sizeof msg), CORE_UNSUPPORTED);
    memcpy(bad, core.p, core.n);
    eh->e_phoff = core.n - 10;
    assert_int_equal(open_bytes(f, bad, core.n, msg, sizeof msg), CORE_TRUNCATED);
    /* a note whose descriptor runs past its segment */
    memcpy(bad, core.p, core.n);
    uint64_t notes_off = sizeof(Elf64_Ehdr) + 3 * sizeof(Elf64_Phdr);
    uint32_t huge = 0x7fffffff;
    memcpy(bad + notes_off + 4, &huge, 4);
    assert_int_equal(open_bytes(f, bad, core.n, msg, sizeof msg), CORE_CORRUPT);
    /* NT_FILE claiming more entries than it holds */
    memcpy(bad, core.p, core.n);
    const char *p = memmem(bad, core.n, "\x45\x4c\x49\x46", 4); /* NT_FILE's type, LE */
    assert_non_null(p);
    uint64_t count = 1u << 20;
    memcpy((uint8_t *)p + 4 + 8, &count, 8); /* after type and "CORE\0" padded: the count */
    assert_int_equal(open_bytes(f, bad, core.n, msg, sizeof msg), CORE_CORRUPT);
    /* overlapping segments */
    memcpy(bad, core.p, core.n);
    Elf64_Phdr *ph = (Elf64_Phdr *)(bad + sizeof(Elf64_Ehdr));
    ph[2].p_vaddr = LIB_START + 4096;
    assert_int_equal(open_bytes(f, bad, core.n, msg, sizeof msg), CORE_CORRUPT);
    /* no thread notes */
    memcpy(bad, core.p, core.n);
    ph = (Elf64_Phdr *)(bad + sizeof(Elf64_Ehdr));
    ph[0].p_type = PT_NULL;
    assert_int_equal(open_bytes(f, bad, core.n, msg, sizeof msg), CORE_CORRUPT);
    /* every single-byte change of the headers and notes: no crash, a status either way */
    size_t head = (size_t)(notes_off + 1200 < core.n ? notes_off + 1200 : core.n);
    for (size_t i = 0; i < head; i++) {
        memcpy(bad, core.p, core.n);
        bad[i] ^= 0xff;
        char path[160];
        snprintf(path, sizeof path, "%s/bad", f->dir);
        write_file(path, bad, core.n);
        core_file *c = NULL;
        if (core_open(path, &c, msg, sizeof msg) == CORE_OK) {
            proc_maps maps;
            if (core_maps(c, &maps) == 0)
                proc_maps_free(&maps);
            uint8_t out[64];
            struct iovec local = {out, sizeof out}, remote = {(void *)(uintptr_t)LIB_START, 64};
            core_readv(c, &local, 1, &remote);
            core_close(c);
        }
    }
    free(bad);
    free(core.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_notes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_build_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
