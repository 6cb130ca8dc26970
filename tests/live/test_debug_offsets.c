/* Tests of src/cpython/debug_offsets.c: _Py_DebugOffsets validation and layout override.
 *
 * Ground truth: the first bytes of _PyRuntime read from a live pyenv CPython 3.13 process
 * (its own published offsets), the built-in 3.13 table, and the DWARF of libpython3.13 for
 * the layout of _Py_DebugOffsets itself (through tools/layoutgen).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "debug_offsets.h"
#include "interpreters.h"
#include "layouts.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <libelf.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUT_MAX (64 * 1024)

/* ---- a pyenv CPython 3.13 ---- */

/* The newest pyenv 3.13 with its libpython (tests/common/interpreters.c), NULL when none. */
static const test_interp *pyenv_313(void)
{
    static test_interp all[TEST_MAX_INTERPRETERS];
    const test_interp *t =
        test_interp_pyenv_minor(all, test_find_interpreters(all, TEST_MAX_INTERPRETERS), 13);
    return t && t->libpython[0] ? t : NULL;
}

/* ---- where _PyRuntime is in a process ---- */

/* st_value of _PyRuntime in `lib` and its file offset, via the PT_LOAD holding it. */
static bool runtime_file_offset(const char *lib, uint64_t *file_off)
{
    if (elf_version(EV_CURRENT) == EV_NONE)
        return false;
    int fd = open(lib, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    Elf *e = elf_begin(fd, ELF_C_READ, NULL);
    bool ok = false;
    uint64_t value = 0;
    bool have_sym = false;
    Elf_Scn *scn = NULL;
    while (e && !have_sym && (scn = elf_nextscn(e, scn)) != NULL) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_DYNSYM && sh.sh_type != SHT_SYMTAB))
            continue;
        Elf_Data *data = elf_getdata(scn, NULL);
        size_t n = sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
        for (size_t i = 0; data && i < n; i++) {
            GElf_Sym sym;
            if (!gelf_getsym(data, (int)i, &sym))
                break;
            const char *name = elf_strptr(e, sh.sh_link, sym.st_name);
            if (name && strcmp(name, "_PyRuntime") == 0 && sym.st_value) {
                value = sym.st_value;
                have_sym = true;
                break;
            }
        }
    }
    size_t nph = 0;
    if (have_sym && elf_getphdrnum(e, &nph) == 0) {
        for (size_t i = 0; i < nph; i++) {
            GElf_Phdr ph;
            if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_LOAD && value >= ph.p_vaddr &&
                value < ph.p_vaddr + ph.p_filesz) {
                *file_off = value - ph.p_vaddr + ph.p_offset;
                ok = true;
                break;
            }
        }
    }
    if (e)
        elf_end(e);
    close(fd);
    return ok;
}

/* Address of _PyRuntime in pid: the mapping of `lib` that holds its file offset. */
static uint64_t runtime_address(pid_t pid, const char *lib)
{
    uint64_t file_off = 0;
    if (!runtime_file_offset(lib, &file_off))
        return 0;
    char maps[64], line[PATH_MAX + 128], real[PATH_MAX];
    snprintf(maps, sizeof maps, "/proc/%d/maps", (int)pid);
    if (!realpath(lib, real))
        return 0;
    FILE *f = fopen(maps, "r");
    if (!f)
        return 0;
    uint64_t addr = 0;
    while (!addr && fgets(line, sizeof line, f)) {
        unsigned long long start, end, off;
        char path[PATH_MAX];
        if (sscanf(line, "%llx-%llx %*s %llx %*s %*s %4095s", &start, &end, &off, path) != 4)
            continue;
        if (strcmp(path, real) == 0 && file_off >= off && file_off < off + (end - start))
            addr = start + (file_off - off);
    }
    fclose(f);
    return addr;
}

/* Start python3.13 (stays alive until its stdin closes), read DEBUG_OFFSETS_READ_SIZE bytes at
 * its _PyRuntime and its sys.hexversion. */
static bool read_live_runtime(const char *python, const char *lib, unsigned char *buf,
                              uint64_t *hexversion)
{
    int in[2], out[2];
    if (pipe(in) != 0)
        return false;
    if (pipe(out) != 0) {
        close(in[0]);
        close(in[1]);
        return false;
    }
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        execl(python, python, "-c",
              "import sys; print(sys.hexversion, flush=True); sys.stdin.read()", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    char line[64] = "";
    FILE *rf = fdopen(out[0], "r");
    bool ok = rf && fgets(line, sizeof line, rf) != NULL;
    *hexversion = strtoull(line, NULL, 10);
    uint64_t addr = ok ? runtime_address(pid, lib) : 0;
    if (addr) {
        struct iovec local = { buf, DEBUG_OFFSETS_READ_SIZE };
        struct iovec remote = { (void *)(uintptr_t)addr, DEBUG_OFFSETS_READ_SIZE };
        ok = process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)DEBUG_OFFSETS_READ_SIZE;
    } else {
        ok = false;
    }
    close(in[1]); /* EOF on stdin: the child exits */
    if (rf)
        fclose(rf);
    else
        close(out[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return ok;
}

/* ---- synthetic bytes built from the built-in table ---- */

static const layout_field *field_by_key(const char *key)
{
    for (size_t i = 0; i < layout_field_count; i++)
        if (strcmp(layout_fields[i].key, key) == 0)
            return &layout_fields[i];
    return NULL;
}

static void put_u64(unsigned char *b, size_t off, uint64_t v)
{
    memcpy(b + off, &v, sizeof v);
}

static uint64_t get_u64(const unsigned char *b, size_t off)
{
    uint64_t v;
    memcpy(&v, b + off, sizeof v);
    return v;
}

/* What a 3.13.0 final runtime whose layout is exactly our table would publish. */
static void synth_313(unsigned char *b)
{
    const dbgoff_spec *spec = debug_offsets_spec(13);
    const py_layout *l = layout_for_version(3, 13);
    assert_non_null(spec);
    memset(b, 0, DEBUG_OFFSETS_READ_SIZE);
    memcpy(b, DEBUG_OFFSETS_COOKIE, 8);
    put_u64(b, 8, 0x030d00f0);
    for (size_t i = 0; i < spec->nfields; i++) {
        const dbgoff_field *f = &spec->fields[i];
        if (f->size_src)
            put_u64(b, f->size_src, 1u << 20); /* section sizes */
    }
    const uint64_t gil_base = 7000; /* published offset of interp->_gil */
    for (size_t i = 0; i < spec->nfields; i++) {
        const dbgoff_field *f = &spec->fields[i];
        const layout_field *lf = field_by_key(f->layout_key);
        assert_non_null(lf);
        loff v;
        memcpy(&v, (const unsigned char *)l + lf->offset, sizeof v);
        if (f->base_src)
            put_u64(b, f->base_src, gil_base);
        put_u64(b, f->src, (uint64_t)v + (f->base_src ? gil_base : 0));
    }
}

static loff layout_get(const py_layout *l, const char *key)
{
    const layout_field *lf = field_by_key(key);
    assert_non_null(lf);
    loff v;
    memcpy(&v, (const unsigned char *)l + lf->offset, sizeof v);
    return v;
}

static const dbgoff_field *spec_field(const char *section, const char *field)
{
    const dbgoff_spec *spec = debug_offsets_spec(13);
    for (size_t i = 0; i < spec->nfields; i++)
        if (strcmp(spec->fields[i].section, section) == 0 &&
            strcmp(spec->fields[i].field, field) == 0)
            return &spec->fields[i];
    fail_msg("no spec field %s.%s", section, field);
    return NULL;
}

/* ---- tests ---- */

static void test_spec_table(void **state)
{
    (void)state;
    assert_null(debug_offsets_spec(12));
    for (unsigned minor = 13; minor <= APROF_PY_MAX_MINOR; minor++) {
        const dbgoff_spec *spec = debug_offsets_spec(minor);
        assert_non_null(spec);
        assert_true(spec->struct_size <= DEBUG_OFFSETS_READ_SIZE);
        for (size_t i = 0; i < spec->nfields; i++) {
            const dbgoff_field *f = &spec->fields[i];
            assert_true(f->src >= 24 && f->src + 8 <= spec->struct_size);
            assert_true(f->size_src == 0 || (f->size_src >= 24 && f->size_src < f->src));
            const layout_field *lf = f->layout_key ? field_by_key(f->layout_key) : NULL;
            if (f->layout_key && (!lf || lf->kind != LF_OFFSET))
                fail_msg("3.%u %s.%s maps to unknown layout key %s", minor, f->section,
                         f->field, f->layout_key);
        }
    }
    for (int st = DBGOFF_OK; st <= DBGOFF_IMPLAUSIBLE; st++)
        assert_non_null(debug_offsets_strerror((dbgoff_status)st));
}

static void test_synthetic_ok(void **state)
{
    (void)state;
    static unsigned char b[DEBUG_OFFSETS_READ_SIZE];
    synth_313(b);
    const py_layout *builtin = layout_for_version(3, 13);
    py_layout out;
    dbgoff_result res;
    assert_int_equal(debug_offsets_apply(b, sizeof b, 3, 13, 0, builtin, &out, &res), DBGOFF_OK);
    assert_int_equal(res.version, 0x030d00f0);
    assert_int_equal(res.applied, debug_offsets_spec(13)->nfields);
    assert_int_equal(res.ndiffs, 0);
    assert_memory_equal(&out, builtin, sizeof out);
    assert_int_equal(debug_offsets_apply(b, sizeof b, 3, 13, 0x030d00f0, builtin, &out, &res),
                     DBGOFF_OK);
}

static void test_override_reports_diffs(void **state)
{
    (void)state;
    static unsigned char b[DEBUG_OFFSETS_READ_SIZE];
    synth_313(b);
    const py_layout *builtin = layout_for_version(3, 13);
    const dbgoff_field *cf = spec_field("thread_state", "current_frame");
    const dbgoff_field *nx = spec_field("interpreter_state", "next");
    put_u64(b, cf->src, (uint64_t)builtin->tstate.frame + 8);
    put_u64(b, nx->src, (uint64_t)builtin->interp.next + 16);
    py_layout out;
    dbgoff_result res;
    assert_int_equal(debug_offsets_apply(b, sizeof b, 3, 13, 0, builtin, &out, &res), DBGOFF_OK);
    assert_int_equal(res.ndiffs, 2);
    assert_int_equal(out.tstate.frame, builtin->tstate.frame + 8);
    assert_int_equal(out.interp.next, builtin->interp.next + 16);
    bool saw_frame = false;
    for (size_t i = 0; i < res.ndiffs; i++) {
        if (strcmp(res.diffs[i].key, "tstate.frame") == 0) {
            saw_frame = true;
            assert_int_equal(res.diffs[i].builtin, builtin->tstate.frame);
            assert_int_equal(res.diffs[i].published, builtin->tstate.frame + 8);
        }
    }
    assert_true(saw_frame);
    /* fields not published stay as built in */
    assert_int_equal(out.asyncio.task_coro, builtin->asyncio.task_coro);
    assert_int_equal(out.tstate.asyncio_running_loop, builtin->tstate.asyncio_running_loop);
}

static void expect_rejected(const unsigned char *b, size_t len, unsigned minor, uint64_t hex,
                            dbgoff_status want)
{
    const py_layout *builtin = layout_for_version(3, 13);
    py_layout out;
    memset(&out, 0xab, sizeof out);
    dbgoff_result res;
    dbgoff_status st = debug_offsets_apply(b, len, 3, minor, hex, builtin, &out, &res);
    if (st != want)
        fail_msg("expected %s, got %s", debug_offsets_strerror(want), debug_offsets_strerror(st));
    assert_memory_equal(&out, builtin, sizeof out); /* nothing half-applied */
    assert_int_equal(res.applied, 0);
}

static void test_corruptions_rejected(void **state)
{
    (void)state;
    static unsigned char good[DEBUG_OFFSETS_READ_SIZE], b[DEBUG_OFFSETS_READ_SIZE];
    synth_313(good);

    memcpy(b, good, sizeof b);
    b[0] ^= 1; /* cookie */
    expect_rejected(b, sizeof b, 13, 0, DBGOFF_BAD_COOKIE);
    memset(b, 0, sizeof b); /* pre-3.13 runtimes start with other data */
    expect_rejected(b, sizeof b, 13, 0, DBGOFF_BAD_COOKIE);

    memcpy(b, good, sizeof b);
    put_u64(b, 8, 0x030c01f0); /* published 3.12 */
    expect_rejected(b, sizeof b, 13, 0, DBGOFF_VERSION_MISMATCH);
    expect_rejected(good, sizeof good, 12, 0, DBGOFF_VERSION_MISMATCH); /* caller expects 3.12 */
    expect_rejected(good, sizeof good, 13, 0x030d01f0, DBGOFF_VERSION_MISMATCH);
    put_u64(b, 8, 0xdeadbeef030d00f0ull); /* garbage high bits */
    expect_rejected(b, sizeof b, 13, 0, DBGOFF_VERSION_MISMATCH);

    memcpy(b, good, sizeof b);
    put_u64(b, 8, 0x030d00c1); /* 3.13.0rc1 */
    expect_rejected(b, sizeof b, 13, 0, DBGOFF_PRERELEASE);
    put_u64(b, 8, 0x030d00a4); /* 3.13.0a4 */
    expect_rejected(b, sizeof b, 13, 0, DBGOFF_PRERELEASE);

    memcpy(b, good, sizeof b);
    put_u64(b, 16, 1);
    expect_rejected(b, sizeof b, 13, 0, DBGOFF_FREE_THREADED);

    memcpy(b, good, sizeof b);
    put_u64(b, 8, 0x031000f0); /* a 3.16 we have no description for */
    expect_rejected(b, sizeof b, 16, 0, DBGOFF_UNKNOWN_VERSION);

    expect_rejected(good, 100, 13, 0, DBGOFF_TOO_SHORT);
    expect_rejected(good, 8, 13, 0, DBGOFF_TOO_SHORT);
    expect_rejected(NULL, 0, 13, 0, DBGOFF_TOO_SHORT);

    const dbgoff_field *cf = spec_field("thread_state", "current_frame");
    memcpy(b, good, sizeof b);
    put_u64(b, cf->src, 1u << 20); /* not below the published sizeof(PyThreadState) */
    expect_rejected(b, sizeof b, 13, 0, DBGOFF_IMPLAUSIBLE);
    memcpy(b, good, sizeof b);
    put_u64(b, cf->size_src, 1ull << 40);
    expect_rejected(b, sizeof b, 13, 0, DBGOFF_IMPLAUSIBLE);
    memcpy(b, good, sizeof b);
    put_u64(b, spec_field("interpreter_state", "gil_runtime_state_holder")->src, ~0ull);
    expect_rejected(b, sizeof b, 13, 0, DBGOFF_IMPLAUSIBLE);
    memcpy(b, good, sizeof b); /* holder before the GIL state it is relative to */
    put_u64(b, spec_field("interpreter_state", "gil_runtime_state_holder")->src, 8);
    expect_rejected(b, sizeof b, 13, 0, DBGOFF_IMPLAUSIBLE);
}

/* The layout of _Py_DebugOffsets in debug_offsets.c agrees with libpython3.13's DWARF. */
/* The description of 3.minor's _Py_DebugOffsets against the DWARF of lib, which has it. */
static void check_spec_against(unsigned minor, const char *lib)
{
    const dbgoff_spec *spec = debug_offsets_spec(minor);
    assert_non_null(spec);
    static char paths[128][128];
    char *argv[132];
    size_t a = 0, k = 0;
    static char tool[PATH_MAX];
    const char *bindir = getenv("APROF_BINARY_DIR");
    snprintf(tool, sizeof tool, "%s/layoutgen", bindir ? bindir : ".");
    argv[a++] = tool;
    argv[a++] = (char *)lib;
    snprintf(paths[k], sizeof paths[k], "sizeof:_Py_DebugOffsets");
    argv[a++] = paths[k++];
    for (size_t i = 0; i < spec->nfields && k + 2 < 128; i++) {
        snprintf(paths[k], sizeof paths[k], "_Py_DebugOffsets.%s.%s", spec->fields[i].section,
                 spec->fields[i].field);
        argv[a++] = paths[k++];
        snprintf(paths[k], sizeof paths[k], "_Py_DebugOffsets.%s.size", spec->fields[i].section);
        argv[a++] = paths[k++];
    }
    snprintf(paths[k], sizeof paths[k], "_Py_DebugOffsets.interpreter_state.gil_runtime_state");
    argv[a++] = paths[k++];
    argv[a] = NULL;

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(tool, argv);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    assert_non_null(f);
    char line[256];
    size_t lines = 0;
    while (fgets(line, sizeof line, f)) {
        char path[200];
        long long v;
        if (sscanf(line, "%199s %lld", path, &v) != 2)
            fail_msg("layoutgen: %s", line);
        lines++;
        if (strcmp(path, "sizeof:_Py_DebugOffsets") == 0) {
            assert_int_equal(v, spec->struct_size);
            continue;
        }
        for (size_t i = 0; i < spec->nfields; i++) {
            const dbgoff_field *fd = &spec->fields[i];
            char want[200];
            snprintf(want, sizeof want, "_Py_DebugOffsets.%s.%s", fd->section, fd->field);
            if (strcmp(path, want) == 0 && v != fd->src)
                fail_msg("%s: DWARF %lld, table %u", want, v, fd->src);
            snprintf(want, sizeof want, "_Py_DebugOffsets.%s.size", fd->section);
            if (strcmp(path, want) == 0 && fd->size_src && v != fd->size_src)
                fail_msg("%s: DWARF %lld, table %u", want, v, fd->size_src);
            if (strcmp(path, "_Py_DebugOffsets.interpreter_state.gil_runtime_state") == 0 &&
                fd->base_src && v != fd->base_src)
                fail_msg("%s: DWARF %lld, table base %u", path, v, fd->base_src);
        }
    }
    fclose(f);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(lines, k);
}

/* Every description against the DWARF of a build that has it: the pyenv 3.13 and, with
 * APROF_SID_ROOT, Debian sid's python3.14d and python3.15d. */
static void test_spec_matches_dwarf(void **state)
{
    (void)state;
    size_t checked = 0;
    const test_interp *py = pyenv_313();
    if (py) {
        check_spec_against(13, py->libpython);
        checked++;
    }
    const char *root = getenv("APROF_SID_ROOT");
    for (unsigned minor = 14; root && *root && minor <= 15; minor++) {
        char lib[PATH_MAX];
        snprintf(lib, sizeof lib, "%s/usr/bin/python3.%ud", root, minor);
        if (access(lib, R_OK) != 0)
            fail_msg("APROF_SID_ROOT is set but %s is missing", lib);
        check_spec_against(minor, lib);
        checked++;
    }
    if (!checked)
        skip();
}

/* Bytes from a live 3.13 process: accepted, and they agree with the built-in 3.13 table. */
static void test_live_313(void **state)
{
    (void)state;
    const test_interp *py = pyenv_313();
    if (!py)
        skip();
    const char *python = py->python, *lib = py->libpython;
    static unsigned char b[DEBUG_OFFSETS_READ_SIZE];
    uint64_t hex = 0;
    if (!read_live_runtime(python, lib, b, &hex))
        fail_msg("could not read _PyRuntime of %s", python);
    assert_int_equal(hex >> 16, 0x030d);

    const py_layout *builtin = layout_for_version(3, 13);
    py_layout out;
    dbgoff_result res;
    dbgoff_status st = debug_offsets_apply(b, sizeof b, 3, 13, hex, builtin, &out, &res);
    if (st != DBGOFF_OK)
        fail_msg("live 3.13 rejected: %s", debug_offsets_strerror(st));
    assert_int_equal(res.version, hex);
    assert_int_equal(res.applied, debug_offsets_spec(13)->nfields);
    for (size_t i = 0; i < res.ndiffs && i < DEBUG_OFFSETS_MAX_DIFFS; i++)
        print_message("differs: %s built-in %lld published %lld\n", res.diffs[i].key,
                      (long long)res.diffs[i].builtin, (long long)res.diffs[i].published);
    assert_int_equal(res.ndiffs, 0);
    assert_memory_equal(&out, builtin, sizeof out);

    /* spot checks straight from the bytes, independent of the spec table */
    assert_memory_equal(b, "xdebugpy", 8);
    assert_int_equal(get_u64(b, 16), 0);
    assert_int_equal(layout_get(&out, "tstate.frame"),
                     (loff)get_u64(b, spec_field("thread_state", "current_frame")->src));

    /* the same real bytes, corrupted, are rejected */
    static unsigned char c[DEBUG_OFFSETS_READ_SIZE];
    memcpy(c, b, sizeof c);
    memcpy(c, "xdebugpz", 8);
    expect_rejected(c, sizeof c, 13, 0, DBGOFF_BAD_COOKIE);
    memcpy(c, b, sizeof c);
    put_u64(c, 8, hex + 0x10000); /* 3.14 */
    expect_rejected(c, sizeof c, 13, 0, DBGOFF_VERSION_MISMATCH);
    memcpy(c, b, sizeof c);
    put_u64(c, 8, (hex & ~0xffull) | 0xb2); /* beta */
    expect_rejected(c, sizeof c, 13, 0, DBGOFF_PRERELEASE);
    expect_rejected(b, sizeof b, 13, hex + 1, DBGOFF_VERSION_MISMATCH);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_table),
        cmocka_unit_test(test_synthetic_ok),
        cmocka_unit_test(test_override_reports_diffs),
        cmocka_unit_test(test_corruptions_rejected),
        cmocka_unit_test(test_spec_matches_dwarf),
        cmocka_unit_test(test_live_313),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
