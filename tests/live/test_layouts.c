/* Checks of the per-version layout table (src/cpython/layouts.c).
 *
 * Three kinds of ground truth:
 *  - the DWARF of every pyenv CPython 3.10-3.13 on the machine and of Debian sid's python3.14d
 *    and python3.15d (APROF_SID_ROOT), through `layoutgen --check`
 *    (every field described in layout_fields[]);
 *  - the running interpreters themselves, including stripped ones without DWARF (Debian's
 *    python3.11): a Python probe (below) reads each field of real objects through
 *    ctypes and compares it with what Python reports (id(), len(), __basicsize__, ...);
 *  - internal consistency of the table and its descriptors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "interpreters.h"
#include "layouts.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUT_MAX (64 * 1024)
#define MAX_ARGS 256

/* ---- running helper programs ---- */

/* Run argv[0] with argv, stdout+stderr captured into out (NUL-terminated, truncated to
 * outlen-1). Returns the exit status, 128+signal when killed, -1 when it could not run. */
static int run_capture(char *const argv[], char *out, size_t outlen)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    size_t used = 0;
    for (;;) {
        char buf[4096];
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t take = (size_t)n;
        if (used + take > outlen - 1)
            take = outlen - 1 - used;
        memcpy(out + used, buf, take);
        used += take;
    }
    out[used] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static const char *layoutgen_path(void)
{
    static char path[PATH_MAX];
    const char *dir = getenv("APROF_BINARY_DIR");
    snprintf(path, sizeof path, "%s/layoutgen", dir ? dir : ".");
    return path;
}

/* ---- the interpreters on this machine ---- */

/* One interpreter to check, out of those tests/common/interpreters.c finds. */
typedef struct interp {
    unsigned minor;
    const char *python;
    const char *lib; /* libpython with DWARF, "" for stripped system builds */
    char aio[PATH_MAX];
} interp;

/* Filled by main(). */
static test_interp all[TEST_MAX_INTERPRETERS];
static size_t nall;

/* pyenv builds 3.10-3.13 (the newest of each minor) with shared libpython and _asyncio (DWARF). */
static size_t find_pyenv(interp *out, size_t max)
{
    size_t n = 0;
    for (unsigned minor = APROF_PY_MIN_MINOR; minor <= APROF_PY_MAX_MINOR && n < max; minor++) {
        const test_interp *t = test_interp_pyenv_minor(all, nall, (int)minor);
        if (!t)
            continue;
        interp *it = &out[n];
        it->minor = minor;
        it->python = t->python;
        it->lib = t->libpython;
        int len = snprintf(it->aio, sizeof it->aio,
                           "%s/lib/python3.%u/lib-dynload/_asyncio.cpython-3%u-x86_64-linux-gnu.so",
                           t->prefix, minor, minor);
        if (len > 0 && (size_t)len < sizeof it->aio && t->libpython[0] && is_file(it->aio))
            n++;
        else
            fprintf(stderr, "skipping %s: no shared libpython or _asyncio\n", t->prefix);
    }
    return n;
}

/* Debian sid's Py_DEBUG builds in the root of scripts/sid_root.sh (APROF_SID_ROOT), the DWARF
 * the 3.14 and 3.15 tables come from: python3.14d with its _asyncio extension, python3.15d
 * with _asyncio built into the executable. */
static size_t find_sid_debug(interp *out, size_t max)
{
    const char *root = getenv("APROF_SID_ROOT");
    static char pythons[2][PATH_MAX];
    size_t n = 0;
    if (!root || !*root)
        return 0;
    for (unsigned minor = 14; minor <= 15 && n < max; minor++) {
        interp *it = &out[n];
        snprintf(pythons[n], sizeof pythons[n], "%s/usr/bin/python3.%ud", root, minor);
        if (minor == 14)
            snprintf(it->aio, sizeof it->aio,
                     "%s/usr/lib/python3.14/lib-dynload/_asyncio.cpython-314d-x86_64-linux-gnu.so",
                     root);
        else
            snprintf(it->aio, sizeof it->aio, "%s", pythons[n]);
        if (!is_file(pythons[n]) || !is_file(it->aio)) {
            fprintf(stderr, "skipping 3.%u debug build: not in %s\n", minor, root);
            continue;
        }
        it->minor = minor;
        it->python = pythons[n];
        it->lib = pythons[n];
        n++;
    }
    return n;
}

/* System interpreters (Debian's python3.11): stripped, checked by the probe only. */
static size_t find_system(interp *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < nall && n < max; i++) {
        if (all[i].pyenv)
            continue;
        interp *it = &out[n++];
        it->minor = (unsigned)all[i].minor;
        it->python = all[i].python;
        it->lib = "";
        it->aio[0] = '\0';
    }
    return n;
}

/* ---- table sanity ---- */

static int64_t field_value(const py_layout *l, const layout_field *f)
{
    const unsigned char *p = (const unsigned char *)l + f->offset;
    if (f->kind != LF_OFFSET)
        return *p;
    loff v;
    memcpy(&v, p, sizeof v);
    return v;
}

static int64_t field_absent(const layout_field *f)
{
    return f->kind == LF_OFFSET ? LAYOUT_ABSENT : f->kind == LF_SIZE8 ? 0 : LAYOUT_NOT_BITFIELD;
}

static void test_lookup(void **state)
{
    (void)state;
    assert_int_equal(layout_table_count, APROF_PY_MAX_MINOR - APROF_PY_MIN_MINOR + 1);
    for (unsigned m = APROF_PY_MIN_MINOR; m <= APROF_PY_MAX_MINOR; m++) {
        const py_layout *l = layout_for_version(3, m);
        assert_non_null(l);
        assert_int_equal(l->version, 0x0300u | m);
        char name[8];
        snprintf(name, sizeof name, "3.%u", m);
        assert_string_equal(l->name, name);
        assert_ptr_equal(layout_table[m - APROF_PY_MIN_MINOR], l);
        assert_int_equal(l->instr_kind, m == 10 ? INSTR_LASTI_INDEX : INSTR_POINTER);
        assert_int_equal(l->linetable_kind, m == 10 ? LINETABLE_310 : LINETABLE_311);
        assert_int_equal(l->longobj.tagged, m >= 12);
        assert_int_equal(l->dict.dk_size_is_log2, m >= 11);
    }
    assert_null(layout_for_version(3, APROF_PY_MIN_MINOR - 1));
    assert_null(layout_for_version(3, APROF_PY_MAX_MINOR + 1));
    assert_null(layout_for_version(2, 7));
    assert_null(layout_for_version(4, 10));
}

/* Keys whose value may legitimately be 0 (first member of their struct). */
static bool zero_allowed(const char *key)
{
    static const char *const ok[] = {
        "interp.next", "tstate.prev", "frame.code", "tstate.cframe_current_frame",
        "methoddef.name", "dict.values_values", "dict.values_capacity", "chunk.previous",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(ok[i], key) == 0)
            return true;
    return false;
}

static void test_descriptors(void **state)
{
    (void)state;
    assert_true(layout_field_count > 100);
    for (size_t i = 0; i < layout_field_count; i++) {
        const layout_field *f = &layout_fields[i];
        assert_true(f->offset + (f->kind == LF_OFFSET ? sizeof(loff) : 1) <= sizeof(py_layout));
        assert_true(f->module == NULL || strcmp(f->module, "_asyncio") == 0);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(layout_fields[j].key, f->key) == 0 || layout_fields[j].offset == f->offset)
                fail_msg("duplicate descriptor %s / %s", f->key, layout_fields[j].key);
        }
        for (unsigned m = APROF_PY_MIN_MINOR; m <= APROF_PY_MAX_MINOR; m++) {
            const py_layout *l = layout_for_version(3, m);
            const char *path = f->dwarf[m - APROF_PY_MIN_MINOR];
            int64_t v = field_value(l, f);
            if (!path) {
                if (v != field_absent(f))
                    fail_msg("3.%u %s: no DWARF path but value %lld", m, f->key, (long long)v);
                continue;
            }
            if (v == field_absent(f) && f->kind != LF_BIT8)
                fail_msg("3.%u %s: has a DWARF path but is ABSENT", m, f->key);
            switch (f->kind) {
            case LF_OFFSET:
                if (v < 0 || v >= (1 << 20))
                    fail_msg("3.%u %s: implausible offset %lld", m, f->key, (long long)v);
                if (v == 0 && !zero_allowed(f->key))
                    fail_msg("3.%u %s: 0 where 0 is impossible", m, f->key);
                break;
            case LF_SIZE8:
                if (v == 0 || v % 8)
                    fail_msg("3.%u %s: implausible size %lld", m, f->key, (long long)v);
                break;
            case LF_BIT8:
                if (v > 7)
                    fail_msg("3.%u %s: bit %lld", m, f->key, (long long)v);
                break;
            default:
                fail_msg("%s: unknown kind", f->key);
            }
        }
    }
    /* readers take the 32-bit unicode state at unicode.state and shift: the bits must be in it */
    for (size_t i = 0; i < layout_table_count; i++) {
        const py_layout *l = layout_table[i];
        assert_true(l->unicode.kind_shift + 3 <= 32 && l->unicode.compact_bit < 32 &&
                    l->unicode.ascii_bit < 32);
        assert_true(l->unicode.ascii_data < l->unicode.compact_data);
        assert_true(l->asyncio.task_coro < l->asyncio.task_sizeof);
    }
}

/* ---- DWARF checks through tools/layoutgen ---- */

static void test_dwarf_check(void **state)
{
    (void)state;
    interp found[8];
    size_t n = find_pyenv(found, 8);
    if (n == 0)
        fail_msg("no pyenv CPython 3.%d-3.%d with shared libpython found", APROF_PY_MIN_MINOR,
                 APROF_PY_MAX_MINOR);
    n += find_sid_debug(found + n, 8 - n);
    static char out[OUT_MAX];
    for (size_t i = 0; i < n; i++) {
        char minor[8];
        snprintf(minor, sizeof minor, "%u", found[i].minor);
        char *argv[] = { (char *)layoutgen_path(), "--check", minor, (char *)found[i].lib,
                         found[i].aio, NULL };
        int rc = run_capture(argv, out, sizeof out);
        printf("%s", out);
        if (rc != 0)
            fail_msg("layoutgen --check 3.%u against %s failed (%d)", found[i].minor,
                     found[i].lib, rc);
        assert_non_null(strstr(out, " 0 mismatches"));
    }
}

/* The check must be able to fail: the 3.(m) table does not match 3.(m+1) DWARF. */
static void test_dwarf_check_detects_mismatch(void **state)
{
    (void)state;
    interp found[8];
    size_t n = find_pyenv(found, 8);
    if (n < 2)
        skip();
    static char out[OUT_MAX];
    char minor[8];
    snprintf(minor, sizeof minor, "%u", found[0].minor);
    char *argv[] = { (char *)layoutgen_path(), "--check", minor, (char *)found[1].lib,
                     found[1].aio, NULL };
    assert_int_equal(run_capture(argv, out, sizeof out), 1);
    assert_non_null(strstr(out, "MISMATCH"));
}

static void test_coverage(void **state)
{
    (void)state;
    static char out[OUT_MAX];
    char *argv[] = { (char *)layoutgen_path(), "--coverage", NULL };
    int rc = run_capture(argv, out, sizeof out);
    printf("%s", out);
    if (rc == 2 && strstr(out, "build with -g"))
        skip(); /* a build without debug info cannot describe py_layout */
    assert_int_equal(rc, 0);
}

/* ---- the runtime probe ---- */

/* The probe (Python 3.10+, run with -c): argv is the table as key=value, -1 for absent.
 * It checks each field against the interpreter's own objects via ctypes and prints
 * "FAIL key: ..." lines, "UNCHECKED keys..." and exits 1 on any failure. */
static const char probe_py[] =
    "# Runtime probe run by tests/live/test_layouts.c inside each interpreter: argv holds the\n"
    "# table for this version as key=value (-1: absent). Each table field is checked against the\n"
    "# running interpreter's own objects through ctypes, which also covers stripped builds.\n"
    "import asyncio, ctypes, gc, sys, threading, weakref\n"
    "L = {}\n"
    "for a in sys.argv[1:]:\n"
    "    k, v = a.split('=', 1)\n"
    "    L[k] = int(v)\n"
    "fails = []\n"
    "checked = set()\n"
    "def present(k):\n"
    "    return L[k] != -1\n"
    "def check(k, cond, msg=''):\n"
    "    checked.add(k)\n"
    "    if not cond:\n"
    "        fails.append('%s: %s' % (k, msg))\n"
    "def P(a): return ctypes.c_void_p.from_address(a).value or 0\n"
    "def I64(a): return ctypes.c_int64.from_address(a).value\n"
    "def I32(a): return ctypes.c_int32.from_address(a).value\n"
    "def U32(a): return ctypes.c_uint32.from_address(a).value\n"
    "def U8(a): return ctypes.c_uint8.from_address(a).value\n"
    "def I8(a): return ctypes.c_int8.from_address(a).value\n"
    "def UL(a): return ctypes.c_ulong.from_address(a).value\n"
    "def MEM(a, n): return ctypes.string_at(a, n)\n"
    "def o(k): return L[k]\n"
    "minor = sys.version_info[1]\n"
    "api = ctypes.pythonapi\n"
    "api.PyThreadState_Get.restype = ctypes.c_void_p\n"
    "api.PyInterpreterState_Get.restype = ctypes.c_void_p\n"
    "TS = api.PyThreadState_Get()\n"
    "INTERP = api.PyInterpreterState_Get()\n"
    "RT = ctypes.addressof(ctypes.c_char.in_dll(api, '_PyRuntime'))\n"
    "\n"
    "# ---- runtime, interpreter, threads ----\n"
    "check('runtime.interpreters_head', P(RT + o('runtime.interpreters_head')) == INTERP)\n"
    "check('runtime.interpreters_main', P(RT + o('runtime.interpreters_main')) == INTERP)\n"
    "check('runtime.main_thread', UL(RT + o('runtime.main_thread')) == threading.main_thread().ident)\n"
    "if present('runtime.gil_last_holder'):\n"
    "    check('runtime.gil_last_holder', P(RT + o('runtime.gil_last_holder')) == TS)\n"
    "    check('runtime.gil_locked', I32(RT + o('runtime.gil_locked')) == 1)\n"
    "if present('interp.gil'):\n"
    "    g = P(INTERP + o('interp.gil'))\n"
    "    check('interp.gil', g != 0)\n"
    "    check('interp.gil_last_holder', g and P(g + o('interp.gil_last_holder')) == TS)\n"
    "    check('interp.gil_locked', g and I32(g + o('interp.gil_locked')) == 1)\n"
    "check('interp.next', P(INTERP + o('interp.next')) == 0)\n"
    "check('interp.modules', P(INTERP + o('interp.modules')) == id(sys.modules))\n"
    "# the cyclic GC's collecting flag: 1 inside a collection (its callbacks run there), 0 after\n"
    "GCF = INTERP + o('interp.gc') + o('gc.collecting')\n"
    "during = []\n"
    "def gc_cb(phase, info):\n"
    "    if phase == 'start':\n"
    "        during.append(I32(GCF))\n"
    "gc.callbacks.append(gc_cb)\n"
    "gc.collect()\n"
    "gc.callbacks.remove(gc_cb)\n"
    "for k in ('interp.gc', 'gc.collecting'):\n"
    "    check(k, during[:1] == [1] and I32(GCF) == 0, 'collecting %s during, %d after' % (during, I32(GCF)))\n"
    "if present('interp.threads_main'):\n"
    "    check('interp.threads_main', P(INTERP + o('interp.threads_main')) == TS)\n"
    "check('tstate.interp', P(TS + o('tstate.interp')) == INTERP)\n"
    "check('tstate.thread_id', UL(TS + o('tstate.thread_id')) == threading.get_ident())\n"
    "if present('tstate.native_thread_id'):\n"
    "    check('tstate.native_thread_id', UL(TS + o('tstate.native_thread_id')) == threading.get_native_id())\n"
    "ev = threading.Event()\n"
    "th = threading.Thread(target=ev.wait)\n"
    "th.start()\n"
    "try:\n"
    "    seen, prev, t, n = [], 0, P(INTERP + o('interp.threads_head')), 0\n"
    "    while t and n < 100:\n"
    "        check('tstate.prev', P(t + o('tstate.prev')) == prev, 'prev link')\n"
    "        seen.append(UL(t + o('tstate.thread_id')))\n"
    "        prev, t, n = t, P(t + o('tstate.next')), n + 1\n"
    "    check('interp.threads_head', sorted(seen) == sorted([threading.get_ident(), th.ident]), str(seen))\n"
    "    check('tstate.next', len(seen) == 2)\n"
    "finally:\n"
    "    ev.set()\n"
    "    th.join()\n"
    "\n"
    "# ---- frames ----\n"
    "def code_of_frame(f):\n"
    "    return P(f + o('frame.code'))\n"
    "CF = o('tstate.cframe_current_frame')\n"
    "TSF = TS + o('tstate.frame')\n"
    "RAW = ctypes.c_void_p.from_address\n"
    "def probe_frames(arg):\n"
    "    # only C calls before this point: f must be the frame of probe_frames itself\n"
    "    f = RAW(TSF).value if CF == -1 else RAW(RAW(TSF).value + CF).value\n"
    "    me = sys._getframe()\n"
    "    if CF != -1:\n"
    "        check('tstate.cframe_current_frame', f != 0 and code_of_frame(f) == id(me.f_code))\n"
    "        # called inline from <module>: the outermost evaluation, whose previous cframe is\n"
    "        # the root one inside the thread state\n"
    "        prev_cf = P(RAW(TSF).value + o('tstate.cframe_previous'))\n"
    "        check('tstate.cframe_previous', TS < prev_cf < TS + 4096, hex(prev_cf))\n"
    "    if minor == 10:\n"
    "        check('tstate.frame', f == id(me))\n"
    "    else:\n"
    "        check('tstate.frame', code_of_frame(f) == id(me.f_code))\n"
    "    check('frame.code', code_of_frame(f) == id(me.f_code))\n"
    "    check('frame.localsplus', P(f + o('frame.localsplus')) == id(arg))\n"
    "    caller = P(f + o('frame.previous'))\n"
    "    cf = me.f_back\n"
    "    check('frame.previous', code_of_frame(caller) == id(cf.f_code))\n"
    "    if minor == 10:\n"
    "        check('frame.instr', I32(caller + o('frame.instr')) * 2 == cf.f_lasti)\n"
    "        check('frame.state', I8(f + o('frame.state')) == 0, 'FRAME_EXECUTING')\n"
    "    else:\n"
    "        base = id(cf.f_code) + o('code.code_adaptive')\n"
    "        d = P(caller + o('frame.instr')) - base\n"
    "        check('frame.instr', d in (cf.f_lasti, cf.f_lasti + 2), '%d vs f_lasti %d' % (d, cf.f_lasti))\n"
    "        check('frame.owner', U8(caller + o('frame.owner')) == 0, 'FRAME_OWNED_BY_THREAD')\n"
    "        co = cf.f_code\n"
    "        nlp = len(co.co_varnames) + len(co.co_cellvars) + len(co.co_freevars)\n"
    "        st = I32(caller + o('frame.stacktop'))\n"
    "        check('frame.stacktop', len(co.co_varnames) <= st <= nlp + co.co_stacksize, str(st))\n"
    "        chunk = P(TS + o('tstate.datastack_chunk'))\n"
    "        top = P(TS + o('tstate.datastack_top'))\n"
    "        limit = P(TS + o('tstate.datastack_limit'))\n"
    "        check('tstate.datastack_chunk', chunk and chunk < f)\n"
    "        check('tstate.datastack_top', f < top <= limit)\n"
    "        check('tstate.datastack_limit', limit - chunk < (1 << 30))\n"
    "        # frames lie end to end on the data stack: the callee where its caller ends\n"
    "        if present('code.framesize'):\n"
    "            fs = I32(id(co) + o('code.framesize'))\n"
    "            check('code.framesize', caller + 8 * fs == f, '%d slots' % fs)\n"
    "        else:\n"
    "            nl, ss = I32(id(co) + o('code.nlocalsplus')), I32(id(co) + o('code.stacksize'))\n"
    "            check('code.nlocalsplus', nl == nlp, str(nl))\n"
    "            check('code.stacksize', ss == co.co_stacksize, str(ss))\n"
    "            check('code.nlocalsplus', caller + o('frame.localsplus') + 8 * (nl + ss) == f)\n"
    "        # the thread's first chunk keeps its first frame one slot in\n"
    "        low, x = f, f\n"
    "        for _ in range(200):\n"
    "            x = P(x + o('frame.previous'))\n"
    "            if not x:\n"
    "                break\n"
    "            if chunk <= x < limit:\n"
    "                low = min(low, x)\n"
    "        root = P(chunk + o('chunk.previous')) == 0\n"
    "        check('chunk.previous', root, 'the probe runs in the first chunk')\n"
    "        check('chunk.data', low == chunk + o('chunk.data') + 8, hex(low - chunk))\n"
    "    if present('frame.is_entry'):\n"
    "        check('frame.is_entry', U8(f + o('frame.is_entry')) == 0)\n"
    "        x, n = f, 0\n"
    "        while P(x + o('frame.previous')) and n < 100:\n"
    "            x, n = P(x + o('frame.previous')), n + 1\n"
    "        check('frame.is_entry', U8(x + o('frame.is_entry')) == 1, 'bottom frame is an entry frame')\n"
    "def caller_of_probe(arg):\n"
    "    probe_frames(arg)\n"
    "    return arg\n"
    "caller_of_probe(object())\n"
    "\n"
    "# ---- generators (suspended in yield from: the awaited object is on top of the stack) ----\n"
    "def sub():\n"
    "    yield 1\n"
    "    yield 2\n"
    "def gen():\n"
    "    yield from SUB\n"
    "SUB = sub()\n"
    "g, g0 = gen(), gen()\n"
    "next(g)\n"
    "if present('gen.frame'):\n"
    "    fr = P(id(g) + o('gen.frame'))\n"
    "    check('gen.frame', fr == id(g.gi_frame))\n"
    "    check('frame.gen', P(fr + o('frame.gen')) == id(g))\n"
    "    check('frame.state', I8(fr + o('frame.state')) == -1, 'FRAME_SUSPENDED')\n"
    "    depth = I32(fr + o('frame.stacktop'))\n"
    "    check('frame.stacktop', depth >= 1, str(depth))\n"
    "    vs = P(fr + o('frame.valuestack'))\n"
    "    check('frame.valuestack', depth >= 1 and P(vs + 8 * (depth - 1)) == id(SUB))\n"
    "else:\n"
    "    fr = id(g) + o('gen.iframe')\n"
    "    check('gen.iframe', code_of_frame(fr) == id(g.gi_code))\n"
    "    st = I32(fr + o('frame.stacktop'))\n"
    "    check('frame.stacktop', st >= 1 and P(fr + o('frame.localsplus') + 8 * (st - 1)) == id(SUB))\n"
    "    check('frame.owner', U8(fr + o('frame.owner')) == 1, 'FRAME_OWNED_BY_GENERATOR')\n"
    "    s1, s0 = I8(id(g) + o('gen.frame_state')), I8(id(g0) + o('gen.frame_state'))\n"
    "    check('gen.frame_state', s0 < s1 < 0 and g.gi_suspended, '%d %d' % (s0, s1))\n"
    "if present('gen.code'):\n"
    "    check('gen.code', P(id(g) + o('gen.code')) == id(g.gi_code))\n"
    "check('gen.name', P(id(g) + o('gen.name')) == id(g.__name__))\n"
    "check('gen.qualname', P(id(g) + o('gen.qualname')) == id(g.__qualname__))\n"
    "\n"
    "# ---- code objects ----\n"
    "def never_called(a, b=2):\n"
    "    c = a + b\n"
    "    return c\n"
    "co = never_called.__code__\n"
    "check('code.filename', P(id(co) + o('code.filename')) == id(co.co_filename))\n"
    "check('code.name', P(id(co) + o('code.name')) == id(co.co_name))\n"
    "if present('code.qualname'):\n"
    "    check('code.qualname', P(id(co) + o('code.qualname')) == id(co.co_qualname))\n"
    "check('code.linetable', P(id(co) + o('code.linetable')) == id(co.co_linetable))\n"
    "check('code.firstlineno', I32(id(co) + o('code.firstlineno')) == co.co_firstlineno)\n"
    "check('code.flags', I32(id(co) + o('code.flags')) == co.co_flags)\n"
    "if present('code.code'):\n"
    "    check('code.code', P(id(co) + o('code.code')) == id(co.co_code))\n"
    "if present('code.code_adaptive'):\n"
    "    check('code.size', I64(id(co) + o('code.size')) * 2 == len(co.co_code))\n"
    "    check('code.code_adaptive', MEM(id(co) + o('code.code_adaptive'), 2) == co.co_code[:2])\n"
    "if present('code.firsttraceable'):\n"
    "    import dis\n"
    "    ft = I32(id(co) + o('code.firsttraceable'))\n"
    "    check('code.firsttraceable', 0 <= 2 * ft < len(co.co_code) and co.co_code[2 * ft] == dis.opmap['RESUME'])\n"
    "\n"
    "# ---- str, bytes, tuple, list, int ----\n"
    "def state(s):\n"
    "    st = U32(id(s) + o('unicode.state'))\n"
    "    return (st >> o('unicode.kind_shift')) & 7, (st >> o('unicode.compact_bit')) & 1, (st >> o('unicode.ascii_bit')) & 1\n"
    "s = ''.join(['pro', 'be'])\n"
    "check('unicode.length', I64(id(s) + o('unicode.length')) == 5)\n"
    "check('unicode.kind_shift', state(s)[0] == 1)\n"
    "check('unicode.compact_bit', state(s)[1] == 1)\n"
    "check('unicode.ascii_bit', state(s)[2] == 1)\n"
    "check('unicode.state', state(s) == (1, 1, 1))\n"
    "check('unicode.ascii_data', MEM(id(s) + o('unicode.ascii_data'), 6) == b'probe\\0')\n"
    "u = ''.join(['h', '\\u20ac'])\n"
    "check('unicode.state', state(u) == (2, 1, 0), str(state(u)))\n"
    "check('unicode.compact_data', MEM(id(u) + o('unicode.compact_data'), 4) == u.encode('utf-16-le'))\n"
    "l1 = ''.join(['h', '\\xe9'])\n"
    "check('unicode.state', state(l1) == (1, 1, 0), str(state(l1)))\n"
    "check('unicode.compact_data', MEM(id(l1) + o('unicode.compact_data'), 2) == b'h\\xe9')\n"
    "b = bytes([120, 121, 122])\n"
    "check('bytes.size', I64(id(b) + o('bytes.size')) == 3)\n"
    "check('bytes.sval', MEM(id(b) + o('bytes.sval'), 4) == b'xyz\\0')\n"
    "A, B = object(), object()\n"
    "t = (A, B)\n"
    "check('tuple.size', I64(id(t) + o('tuple.size')) == 2)\n"
    "check('tuple.items', P(id(t) + o('tuple.items')) == id(A) and P(id(t) + o('tuple.items') + 8) == id(B))\n"
    "lst = [A, B, A]\n"
    "check('list.size', I64(id(lst) + o('list.size')) == 3)\n"
    "check('list.items', P(P(id(lst) + o('list.items')) + 8) == id(B))\n"
    "check('object.type', P(id(lst) + o('object.type')) == id(list))\n"
    "n = 3 << 31\n"
    "tag = I64(id(n) + o('longobj.size_or_tag'))\n"
    "ndig = tag >> 3 if L['longobj.tagged'] else tag\n"
    "check('longobj.size_or_tag', ndig == 2 and (not L['longobj.tagged'] or tag & 3 == 0), str(tag))\n"
    "d0, d1 = U32(id(n) + o('longobj.digits')), U32(id(n) + o('longobj.digits') + 4)\n"
    "check('longobj.digits', d0 | (d1 << 30) == n)\n"
    "\n"
    "# ---- types, dicts, sets ----\n"
    "class C:\n"
    "    def __init__(self):\n"
    "        self.first = A\n"
    "        self.second = B\n"
    "    def meth(self):\n"
    "        pass\n"
    "c = C()\n"
    "check('type.name', ctypes.c_char_p.from_address(id(int) + o('type.name')).value == b'int')\n"
    "check('type.basicsize', I64(id(C) + o('type.basicsize')) == C.__basicsize__)\n"
    "check('type.flags', UL(id(C) + o('type.flags')) == C.__flags__)\n"
    "check('type.dictoffset', I64(id(C) + o('type.dictoffset')) == C.__dictoffset__ and I64(id(type) + o('type.dictoffset')) == type.__dictoffset__)\n"
    "check('type.mro', P(id(C) + o('type.mro')) == id(C.__mro__))\n"
    "check('type.dict', P(id(C) + o('type.dict')) == id(gc.get_referents(C.__dict__)[0]))\n"
    "check('type.ht_qualname', P(id(C) + o('type.ht_qualname')) == id(C.__qualname__))\n"
    "cd = c.__dict__\n"
    "check('type.ht_cached_keys', P(id(C) + o('type.ht_cached_keys')) == P(id(cd) + o('dict.keys')) != 0)\n"
    "vals = P(id(cd) + o('dict.values'))\n"
    "check('dict.values', vals != 0)\n"
    "if present('dict.values_values'):\n"
    "    check('dict.values_values', vals and P(vals + o('dict.values_values')) == id(A) and P(vals + o('dict.values_values') + 8) == id(B))\n"
    "k1, k2 = 10 ** 20, ''.join(['k', 'ey'])\n"
    "d = {k1: A, k2: B}\n"
    "check('dict.used', I64(id(d) + o('dict.used')) == 2)\n"
    "keys = P(id(d) + o('dict.keys'))\n"
    "check('dict.keys', keys != 0 and keys != P(id(cd) + o('dict.keys')))\n"
    "if L['dict.dk_size_is_log2']:\n"
    "    check('dict.dk_size', U8(keys + o('dict.dk_size')) == 3)\n"
    "    check('dict.dk_kind', U8(keys + o('dict.dk_kind')) == 0, 'DICT_KEYS_GENERAL')\n"
    "else:\n"
    "    check('dict.dk_size', I64(keys + o('dict.dk_size')) == 8)\n"
    "check('dict.dk_nentries', I64(keys + o('dict.dk_nentries')) == 2)\n"
    "ent = keys + o('dict.dk_indices') + 8\n"
    "check('dict.dk_indices', I8(keys + o('dict.dk_indices')) in (-1, 0, 1))\n"
    "check('dict.entry_size', P(ent + 8) == id(k1) and P(ent + 16) == id(A) and P(ent + o('dict.entry_size') + 8) == id(k2))\n"
    "if present('dict.unicode_entry_size'):\n"
    "    du = {k2: A, 'other': B}\n"
    "    ku = P(id(du) + o('dict.keys'))\n"
    "    check('dict.dk_kind', U8(ku + o('dict.dk_kind')) == 1, 'DICT_KEYS_UNICODE')\n"
    "    eu = ku + o('dict.dk_indices') + 8\n"
    "    check('dict.unicode_entry_size', P(eu) == id(k2) and P(eu + 8) == id(A) and P(eu + o('dict.unicode_entry_size') + 8) == id(B))\n"
    "E1, E2, E3 = object(), object(), object()\n"
    "st = {E1, E2, E3}\n"
    "check('set.used', I64(id(st) + o('set.used')) == 3)\n"
    "check('set.fill', I64(id(st) + o('set.fill')) == 3)\n"
    "check('set.mask', I64(id(st) + o('set.mask')) == 7)\n"
    "tb = P(id(st) + o('set.table'))\n"
    "found = set(P(tb + i * o('set.entry_size')) for i in range(8))\n"
    "check('set.table', {id(E1), id(E2), id(E3)} <= found)\n"
    "check('set.entry_size', {id(E1), id(E2), id(E3)} <= found)\n"
    "\n"
    "# ---- functions, cells, builtins, methods, weakrefs ----\n"
    "def outer():\n"
    "    v = object()\n"
    "    def inner():\n"
    "        return v\n"
    "    return inner\n"
    "f = outer()\n"
    "check('func.closure', P(id(f) + o('func.closure')) == id(f.__closure__))\n"
    "check('func.qualname', P(id(f) + o('func.qualname')) == id(f.__qualname__))\n"
    "check('func.code', P(id(f) + o('func.code')) == id(f.__code__))\n"
    "cell = f.__closure__[0]\n"
    "check('cell.ref', P(id(cell) + o('cell.ref')) == id(cell.cell_contents))\n"
    "ml = P(id(len) + o('cfunc.ml'))\n"
    "check('cfunc.ml', ml != 0)\n"
    "check('methoddef.name', ml and ctypes.c_char_p.from_address(ml + o('methoddef.name')).value == b'len')\n"
    "import builtins\n"
    "check('cfunc.self', P(id(len) + o('cfunc.self')) == id(builtins))\n"
    "m = c.meth\n"
    "check('method.func', P(id(m) + o('method.func')) == id(m.__func__))\n"
    "check('method.self', P(id(m) + o('method.self')) == id(c))\n"
    "class W:\n"
    "    pass\n"
    "w = W()\n"
    "r = weakref.ref(w)\n"
    "check('weakref.object', P(id(r) + o('weakref.object')) == id(w))\n"
    "\n"
    "# ---- asyncio (C _asyncio.Task / Future) ----\n"
    "import _asyncio\n"
    "def flag(obj, k):\n"
    "    if present(k + '_bit'):\n"
    "        return (U8(id(obj) + o(k)) >> o(k + '_bit')) & 1\n"
    "    return I32(id(obj) + o(k))\n"
    "async def child_waiter(fut):\n"
    "    await fut\n"
    "async def nothing():\n"
    "    pass\n"
    "async def amain():\n"
    "    loop = asyncio.get_running_loop()\n"
    "    t = asyncio.current_task()\n"
    "    check('asyncio.task_sizeof', type(t) is _asyncio.Task and o('asyncio.task_sizeof') == _asyncio.Task.__basicsize__)\n"
    "    if present('tstate.asyncio_running_loop'):\n"
    "        check('tstate.asyncio_running_loop', P(TS + o('tstate.asyncio_running_loop')) == id(loop))\n"
    "    check('asyncio.fut_loop', P(id(t) + o('asyncio.fut_loop')) == id(loop))\n"
    "    check('asyncio.task_coro', P(id(t) + o('asyncio.task_coro')) == id(t.get_coro()))\n"
    "    t.set_name(''.join(['probe', '-task']))\n"
    "    check('asyncio.task_name', P(id(t) + o('asyncio.task_name')) == id(t.get_name()))\n"
    "    import contextvars\n"
    "    if hasattr(t, 'get_context'):\n"
    "        check('asyncio.task_context', P(id(t) + o('asyncio.task_context')) == id(t.get_context()))\n"
    "    else:\n"
    "        tc = P(id(t) + o('asyncio.task_context'))\n"
    "        check('asyncio.task_context', tc and P(tc + o('object.type')) == id(contextvars.Context))\n"
    "    ctx = contextvars.copy_context()\n"
    "    cb1, cb2 = (lambda fut: None), (lambda fut: None)\n"
    "    fut = loop.create_future()\n"
    "    check('asyncio.fut_state', I32(id(fut) + o('asyncio.fut_state')) == 0, 'PENDING')\n"
    "    fut.add_done_callback(cb1, context=ctx)\n"
    "    check('asyncio.fut_callback0', P(id(fut) + o('asyncio.fut_callback0')) == id(cb1))\n"
    "    check('asyncio.fut_context0', P(id(fut) + o('asyncio.fut_context0')) == id(ctx))\n"
    "    check('asyncio.fut_callbacks', P(id(fut) + o('asyncio.fut_callbacks')) == 0)\n"
    "    fut.add_done_callback(cb2, context=ctx)\n"
    "    cbl = P(id(fut) + o('asyncio.fut_callbacks'))\n"
    "    check('asyncio.fut_callbacks', cbl and P(cbl + o('object.type')) == id(list))\n"
    "    res = object()\n"
    "    fut.set_result(res)\n"
    "    check('asyncio.fut_state', I32(id(fut) + o('asyncio.fut_state')) == 2, 'FINISHED')\n"
    "    check('asyncio.fut_result', P(id(fut) + o('asyncio.fut_result')) == id(res))\n"
    "    fe = loop.create_future()\n"
    "    exc = ValueError('probe')\n"
    "    fe.set_exception(exc)\n"
    "    check('asyncio.fut_exception', P(id(fe) + o('asyncio.fut_exception')) == id(exc))\n"
    "    fe.exception()\n"
    "    fc = loop.create_future()\n"
    "    msg = ''.join(['cancel', '-msg'])\n"
    "    fc.cancel(msg)\n"
    "    check('asyncio.fut_state', I32(id(fc) + o('asyncio.fut_state')) == 1, 'CANCELLED')\n"
    "    check('asyncio.fut_cancel_msg', P(id(fc) + o('asyncio.fut_cancel_msg')) == id(msg))\n"
    "    inner = loop.create_future()\n"
    "    tw = loop.create_task(child_waiter(inner))\n"
    "    await asyncio.sleep(0)\n"
    "    check('asyncio.task_fut_waiter', P(id(tw) + o('asyncio.task_fut_waiter')) == id(inner))\n"
    "    tn = loop.create_task(nothing())\n"
    "    check('asyncio.task_must_cancel', flag(tn, 'asyncio.task_must_cancel') == 0)\n"
    "    check('asyncio.task_log_destroy_pending', flag(tn, 'asyncio.task_log_destroy_pending') == 1)\n"
    "    tn.cancel()\n"
    "    tn._log_destroy_pending = False\n"
    "    check('asyncio.task_must_cancel', flag(tn, 'asyncio.task_must_cancel') == 1)\n"
    "    check('asyncio.task_log_destroy_pending', flag(tn, 'asyncio.task_log_destroy_pending') == 0)\n"
    "    checked.update(['asyncio.task_must_cancel_bit', 'asyncio.task_log_destroy_pending_bit'])\n"
    "    inner.set_result(None)\n"
    "    await tw\n"
    "    try:\n"
    "        await tn\n"
    "    except asyncio.CancelledError:\n"
    "        pass\n"
    "asyncio.run(amain())\n"
    "\n"
    "# ---- facts: what the table says of this version beyond offsets ----\n"
    "def fact(k):\n"
    "    checked.add('facts.' + k)\n"
    "    return L['facts.' + k]\n"
    "import dis, opcode\n"
    "opnames = getattr(dis, '_all_opname', None) or getattr(opcode, '_all_opname', None) or dis.opname\n"
    "YF_NAMES = {0: ('YIELD_FROM',), 1: ('RESUME', 'RESUME_QUICK', 'INSTRUMENTED_RESUME', 'RESUME_CHECK'), 2: ()}\n"
    "yf = fact('yf')\n"
    "ops = sorted(v for v in (fact('yf_op0'), fact('yf_op1'), fact('yf_op2')) if v)\n"
    "want = sorted(i for i, n in enumerate(opnames) if n in YF_NAMES.get(yf, ()))\n"
    "check('facts.yf_op0', yf in YF_NAMES and ops == want, 'kind %d: %s, the interpreter has %s' % (yf, ops, want))\n"
    "def frame_state(gobj):\n"
    "    if present('gen.frame_state'):\n"
    "        return I8(id(gobj) + o('gen.frame_state'))\n"
    "    fr = P(id(gobj) + o('gen.frame'))\n"
    "    return I8(fr + o('frame.state')) if fr else 99\n"
    "async def leaf():\n"
    "    await asyncio.sleep(0)\n"
    "async def awaiting():\n"
    "    await leaf()\n"
    "def plain():\n"
    "    yield 1\n"
    "c0 = awaiting()\n"
    "check('facts.fs_created', frame_state(c0) == fact('fs_created'), str(frame_state(c0)))\n"
    "c1 = awaiting()\n"
    "c1.send(None)   # suspended in await, awaiting leaf()\n"
    "p1 = plain()\n"
    "next(p1)        # suspended at a plain yield\n"
    "s_await, s_plain = frame_state(c1), frame_state(p1)\n"
    "if yf == 2:\n"
    "    check('facts.fs_suspended_yield_from', s_await == fact('fs_suspended_yield_from') != s_plain, '%d %d' % (s_await, s_plain))\n"
    "elif yf == 1:\n"
    "    ins = P(id(c1) + o('gen.iframe') + o('frame.instr')) + 2\n"
    "    check('facts.yf_op1', U8(ins) in ops and U8(ins + 1) >= 2, 'next %d oparg %d' % (U8(ins), U8(ins + 1)))\n"
    "    fact('fs_suspended_yield_from')\n"
    "else:\n"
    "    fr = P(id(c1) + o('gen.frame'))\n"
    "    lasti = I32(fr + o('frame.instr'))\n"
    "    code = P(id(c1.cr_code) + o('code.code'))\n"
    "    check('facts.yf_op1', U8(code + o('bytes.sval') + (lasti + 1) * 2) == ops[0], 'next opcode')\n"
    "    fact('fs_suspended_yield_from')\n"
    "for x in (p1,):\n"
    "    for _ in x:\n"
    "        pass\n"
    "c1.close()\n"
    "c0.close()\n"
    "done_state = frame_state(p1)\n"
    "check('facts.fs_completed', s_await < fact('fs_completed') and s_plain < fact('fs_completed') and (done_state >= fact('fs_completed')), '%d %d %d' % (s_await, s_plain, done_state))\n"
    "fact('yf_op2')\n"
    "# C-to-Python calls: how the called frame shows it\n"
    "entry = fact('entry')\n"
    "def called_from_c(_):\n"
    "    f = RAW(TSF).value if CF == -1 else RAW(RAW(TSF).value + CF).value\n"
    "    if entry == 1:\n"
    "        return U8(f + o('frame.is_entry'))\n"
    "    if entry == 2:\n"
    "        prev = P(f + o('frame.previous'))\n"
    "        return U8(prev + o('frame.owner')) if prev else -1\n"
    "    return 0\n"
    "def called_from_python():\n"
    "    return called_from_c(None)\n"
    "got_c, got_py = list(map(called_from_c, [0]))[0], called_from_python()\n"
    "if entry == 0:\n"
    "    check('facts.entry', not present('frame.is_entry') and minor == 10, 'every frame object is entered on its own')\n"
    "elif entry == 1:\n"
    "    check('facts.entry', present('frame.is_entry') and got_c == 1 and got_py == 0, '%d %d' % (got_c, got_py))\n"
    "else:\n"
    "    check('facts.entry', not present('frame.is_entry') and got_c == fact('owner_cstack') and got_py == 0, '%d %d' % (got_c, got_py))\n"
    "fact('owner_cstack')\n"
    "# managed dicts\n"
    "class Managed:\n"
    "    def __init__(self):\n"
    "        self.a, self.b = 1, 2\n"
    "md = fact('managed_dict')\n"
    "m = Managed()\n"
    "flags = type(m).__flags__\n"
    "if md == 0:\n"
    "    check('facts.managed_dict', not (flags & (1 << 4)), 'Py_TPFLAGS_MANAGED_DICT set')\n"
    "else:\n"
    "    off = fact('managed_dict_offset')\n"
    "    word = P(id(m) + off)\n"
    "    if md == 1:\n"
    "        check('facts.managed_dict', word == 0 and P(id(m) + fact('managed_values_offset')) != 0, hex(word))\n"
    "    elif md == 2:\n"
    "        check('facts.managed_dict', word & 1 == 1, hex(word))\n"
    "    else:\n"
    "        vals = id(m) + type(m).__basicsize__\n"
    "        check('facts.managed_dict', word == 0 and flags & (1 << 2) and U8(vals + o('dict.values_valid')) == 1 and U8(vals + o('dict.values_capacity')) >= 2, hex(word))\n"
    "        checked.update(['dict.values_valid', 'dict.values_capacity'])\n"
    "    d = m.__dict__\n"
    "    check('facts.managed_dict_offset', P(id(m) + off) == id(d), 'materialised dict')\n"
    "fact('managed_dict_offset'); fact('managed_values_offset')\n"
    "# _Py_DebugOffsets at the start of _PyRuntime\n"
    "check('facts.debug_offsets', (MEM(RT, 8) == b'xdebugpy') == (fact('debug_offsets') != 0), repr(MEM(RT, 8)))\n"
    "\n"
    "for k in sorted(checked):\n"
    "    if k not in L:\n"
    "        fails.append('%s: not a table key' % k)\n"
    "unchecked = sorted(k for k in L if present(k) and k not in checked and k not in ('longobj.tagged', 'dict.dk_size_is_log2'))\n"
    "for msg in fails:\n"
    "    print('FAIL', msg)\n"
    "print('UNCHECKED', ' '.join(unchecked))\n"
    "print('CHECKED %d FAILED %d' % (len(checked), len(fails)))\n"
    "sys.exit(1 if fails else 0)\n";

/* Run the probe in `python` with the 3.minor table; `tweak` (may be NULL) names a field whose
 * offset is moved by 8 to show that the probe notices. Returns the exit status. */
static int run_probe(const char *python, unsigned minor, const char *tweak, char *out,
                     size_t outlen)
{
    const py_layout *l = layout_for_version(3, minor);
    assert_non_null(l);
    static char argbuf[MAX_ARGS][96];
    char *argv[MAX_ARGS + 4];
    size_t a = 0;
    argv[a++] = (char *)python;
    argv[a++] = "-c";
    argv[a++] = (char *)probe_py;
    size_t k = 0;
    for (size_t i = 0; i < layout_field_count && k < MAX_ARGS - 2; i++) {
        const layout_field *f = &layout_fields[i];
        int64_t v = field_value(l, f);
        if (!f->dwarf[minor - APROF_PY_MIN_MINOR])
            v = -1; /* absent, whatever the kind */
        else if (tweak && strcmp(tweak, f->key) == 0)
            v += 8;
        snprintf(argbuf[k], sizeof argbuf[k], "%s=%lld", f->key, (long long)v);
        argv[a++] = argbuf[k++];
    }
    snprintf(argbuf[k], sizeof argbuf[k], "longobj.tagged=%u", l->longobj.tagged);
    argv[a++] = argbuf[k++];
    snprintf(argbuf[k], sizeof argbuf[k], "dict.dk_size_is_log2=%u", l->dict.dk_size_is_log2);
    argv[a++] = argbuf[k++];
    /* the hand-written facts, checked by their behaviour */
    const py_facts *F = &l->facts;
    const long long facts[][2] = {
        {0, F->entry}, {1, F->owner_cstack}, {2, F->yf}, {3, F->yf_op[0]}, {4, F->yf_op[1]},
        {5, F->yf_op[2]}, {6, F->fs_created}, {7, F->fs_suspended_yield_from},
        {8, F->fs_completed}, {9, F->managed_dict}, {10, F->managed_dict_offset},
        {11, F->managed_values_offset}, {12, F->debug_offsets},
    };
    static const char *const fact_names[] = {
        "entry", "owner_cstack", "yf", "yf_op0", "yf_op1", "yf_op2", "fs_created",
        "fs_suspended_yield_from", "fs_completed", "managed_dict", "managed_dict_offset",
        "managed_values_offset", "debug_offsets",
    };
    for (size_t i = 0; i < sizeof facts / sizeof facts[0] && k < MAX_ARGS; i++) {
        long long v = facts[i][1];
        if (tweak && strcmp(tweak, fact_names[i]) == 0)
            v = strcmp(tweak, "debug_offsets") == 0 ? !v : v + 1; /* present or not */
        snprintf(argbuf[k], sizeof argbuf[k], "facts.%s=%lld", fact_names[i], v);
        argv[a++] = argbuf[k++];
    }
    argv[a] = NULL;
    return run_capture(argv, out, outlen);
}

static void test_runtime_probe(void **state)
{
    (void)state;
    interp found[16];
    size_t n = find_pyenv(found, 8);
    n += find_system(found + n, 8);
    if (n == 0)
        fail_msg("no CPython 3.%d-3.%d found", APROF_PY_MIN_MINOR, APROF_PY_MAX_MINOR);
    static char out[OUT_MAX];
    for (size_t i = 0; i < n; i++) {
        int rc = run_probe(found[i].python, found[i].minor, NULL, out, sizeof out);
        printf("probe %s (3.%u): %s", found[i].python, found[i].minor, out);
        if (rc != 0)
            fail_msg("layout probe failed in %s (exit %d)", found[i].python, rc);
        /* every present field of the table must have been checked */
        assert_non_null(strstr(out, "UNCHECKED \n"));
    }
}

static void test_runtime_probe_detects_errors(void **state)
{
    (void)state;
    interp found[8];
    size_t n = find_pyenv(found, 8);
    if (n == 0)
        n = find_system(found, 8);
    if (n == 0)
        skip();
    static char out[OUT_MAX];
    const char *tweaks[] = { "code.name", "asyncio.task_coro", "tstate.thread_id" };
    for (size_t i = 0; i < sizeof tweaks / sizeof tweaks[0]; i++) {
        int rc = run_probe(found[0].python, found[0].minor, tweaks[i], out, sizeof out);
        char want[64];
        snprintf(want, sizeof want, "FAIL %s:", tweaks[i]);
        if (rc == 0 || !strstr(out, want))
            fail_msg("probe did not notice a wrong %s (exit %d): %s", tweaks[i], rc, out);
    }
    /* and the facts, on every version (each has its own) */
    const char *facts[] = { "yf_op0", "fs_created", "entry", "debug_offsets" };
    for (size_t v = 0; v < n; v++) {
        for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++) {
            int rc = run_probe(found[v].python, found[v].minor, facts[i], out, sizeof out);
            char want[64];
            snprintf(want, sizeof want, "FAIL facts.%s:", facts[i]);
            if (rc == 0 || !strstr(out, want))
                fail_msg("3.%u: probe did not notice a wrong fact %s (exit %d): %s",
                         found[v].minor, facts[i], rc, out);
        }
    }
}

int main(void)
{
    nall = test_find_interpreters(all, TEST_MAX_INTERPRETERS);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_descriptors),
        cmocka_unit_test(test_dwarf_check),
        cmocka_unit_test(test_dwarf_check_detects_mismatch),
        cmocka_unit_test(test_coverage),
        cmocka_unit_test(test_runtime_probe),
        cmocka_unit_test(test_runtime_probe_detects_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
