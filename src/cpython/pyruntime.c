#include "pyruntime.h"

#include "core_file.h"
#include "debug_offsets.h"
#include "elfimage.h"
#include "proc.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The basename looks like libpython3.11.so..., libpython3.11d.so, or python3.11 / python3. */
static bool parse_name_version(const char *path, unsigned *major, unsigned *minor)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *p = NULL;
    if (strncmp(base, "libpython", 9) == 0)
        p = base + 9;
    else if (strncmp(base, "python", 6) == 0)
        p = base + 6;
    if (!p || !isdigit((unsigned char)p[0]) || p[1] != '.' || !isdigit((unsigned char)p[2]))
        return false;
    *major = (unsigned)(p[0] - '0');
    *minor = (unsigned)strtoul(p + 2, NULL, 10);
    return true;
}

static bool looks_like_python(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    return strncmp(base, "libpython", 9) == 0 || strncmp(base, "python", 6) == 0;
}

/* Search .rodata for the PY_VERSION literal "M.m.u" (optionally followed by a release tag such
 * as "rc1" or "+") that Py_GetVersion() formats. The linker may merge it into the tail of a
 * longer string (a build path ending in "Python-3.10.13"), so only its end is NUL-delimited. */
static bool rodata_version(elf_image *img, unsigned want_major, unsigned want_minor,
                           unsigned *micro, char *out, size_t outlen)
{
    const uint8_t *d;
    uint64_t size;
    if (elf_image_section(img, ".rodata", NULL, &size, &d) != 0 || !d)
        return false;
    char prefix[16];
    int pl = snprintf(prefix, sizeof(prefix), "%u.%u.", want_major, want_minor);
    for (uint64_t i = 1; i + (uint64_t)pl + 1 < size; i++) {
        if (isdigit(d[i - 1]) || d[i - 1] == '.' || memcmp(d + i, prefix, (size_t)pl) != 0)
            continue;
        uint64_t j = i + (uint64_t)pl;
        if (j >= size || !isdigit(d[j]))
            continue;
        uint64_t k = j;
        while (k < size && k - i < 20 && (isalnum(d[k]) || d[k] == '+'))
            k++;
        if (k >= size || d[k] != 0)
            continue;
        *micro = (unsigned)strtoul((const char *)d + j, NULL, 10);
        snprintf(out, outlen, "%.*s", (int)(k - i), (const char *)d + i);
        return true;
    }
    return false;
}

typedef struct candidate {
    const char *path;
    uint64_t first_start, first_end; /* lowest mapping of the file */
} candidate;

static size_t collect_candidates(const proc_maps *maps, candidate *out, size_t max)
{
    size_t n = 0;
    /* libpython before executables: when both are mapped, the library holds the runtime. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < maps->n; i++) {
            const proc_map *m = &maps->maps[i];
            if (!m->path || !looks_like_python(m->path))
                continue;
            const char *base = strrchr(m->path, '/') + 1;
            bool is_lib = strncmp(base, "libpython", 9) == 0;
            if (is_lib != (pass == 0))
                continue;
            bool seen = false;
            for (size_t k = 0; k < n; k++)
                if (strcmp(out[k].path, m->path) == 0)
                    seen = true;
            if (!seen && n < max)
                out[n++] = (candidate){m->path, m->start, m->end};
        }
    }
    return n;
}

static pyrt_status read_error_status(int err)
{
    if (err == ESRCH)
        return PYRT_NO_PROCESS;
    if (err == EPERM || err == EACCES)
        return PYRT_PERMISSION;
    return PYRT_INTERNAL;
}

/* 3.13+ publish their own offsets at the start of _PyRuntime (_Py_DebugOffsets). When they
 * validate, they win over the built-in table; otherwise the built-in table stays. */
static dbgoff_status refine_with_debug_offsets(pyruntime *rt, mem *m)
{
    if (!rt->layout.facts.debug_offsets)
        return DBGOFF_OK;
    uint8_t buf[DEBUG_OFFSETS_READ_SIZE];
    if (mem_read(m, rt->runtime_addr, buf, sizeof(buf)) != 0)
        return DBGOFF_TOO_SHORT;
    py_layout refined;
    dbgoff_result res;
    dbgoff_status st = debug_offsets_apply(buf, sizeof(buf), rt->major, rt->minor,
                                           rt->version_hex, &rt->layout, &refined, &res);
    if (st == DBGOFF_OK) {
        rt->layout = refined;
        rt->debug_offsets_used = true;
        rt->debug_offsets_diffs = res.ndiffs;
    }
    return st;
}

/* Version from Py_Version (3.11+), else the file name, else .rodata. */
static bool detect_version(pyruntime *rt, elf_image *img, const char *path, mem *m, uint64_t bias)
{
    uint64_t sym;
    uint32_t hex = 0;
    if (elf_image_symbol(img, "Py_Version", &sym, NULL) == 0 &&
        mem_read_u32(m, sym + bias, &hex) == 0 && (hex >> 24) == 3) {
        rt->version_hex = hex;
        rt->major = hex >> 24;
        rt->minor = (hex >> 16) & 0xff;
        rt->micro = (hex >> 8) & 0xff;
        unsigned level = (hex >> 4) & 0xf, serial = hex & 0xf;
        const char *tag = level == 0xa ? "a" : level == 0xb ? "b" : level == 0xc ? "rc" : "";
        if (*tag)
            snprintf(rt->version, sizeof(rt->version), "%u.%u.%u%s%u", rt->major, rt->minor,
                     rt->micro, tag, serial);
        else
            snprintf(rt->version, sizeof(rt->version), "%u.%u.%u", rt->major, rt->minor, rt->micro);
        return true;
    }
    unsigned major, minor;
    if (!parse_name_version(path, &major, &minor))
        return false;
    rt->major = major;
    rt->minor = minor;
    if (!rodata_version(img, major, minor, &rt->micro, rt->version, sizeof(rt->version))) {
        rt->micro = 0;
        snprintf(rt->version, sizeof(rt->version), "%u.%u", major, minor);
    }
    return true;
}

pyrt_status pyruntime_locate(pid_t pid, pyruntime *rt, char *msg, size_t msglen)
{
    target_src t = target_src_live(pid);
    return pyruntime_locate_src(&t, rt, msg, msglen);
}

/* The file a candidate names, opened as the target mapped it. A core's file may be missing on
 * this machine or be another build: that ends the search with its own message. */
static pyrt_status open_candidate(const target_src *t, const candidate *c, elf_image *img,
                                  char *msg, size_t msglen)
{
    char hp[PATH_MAX + 32];
    if (t->core) {
        char why[512];
        if (core_mapped_file_path(t->core, c->first_start, c->path, hp, sizeof hp, why,
                                  sizeof why) != CORE_FILE_FOUND) {
            snprintf(msg, msglen, "%s", why);
            return PYRT_MISSING_FILE;
        }
    } else if (!proc_mapped_file_path(t->pid, c->first_start, c->first_end, c->path, hp,
                                      sizeof hp)) {
        return PYRT_NOT_PYTHON;
    }
    return elf_image_open(hp, img) == 0 ? PYRT_OK : PYRT_NOT_PYTHON;
}

pyrt_status pyruntime_locate_src(const target_src *t, pyruntime *rt, char *msg, size_t msglen)
{
    pid_t pid = t->pid;
    memset(rt, 0, sizeof(*rt));
    rt->pid = pid;
    proc_maps maps;
    if (target_src_maps(t, &maps) != 0) {
        int err = errno;
        pyrt_status st = read_error_status(err);
        if (st == PYRT_NO_PROCESS)
            snprintf(msg, msglen, "no process with pid %d", (int)pid);
        else if (st == PYRT_PERMISSION)
            snprintf(msg, msglen, "permission denied reading /proc/%d/maps", (int)pid);
        else
            snprintf(msg, msglen, "cannot read /proc/%d/maps: %s", (int)pid, strerror(err));
        return st;
    }
    mem m;
    if (mem_init(&m, *t) != 0) {
        proc_maps_free(&maps);
        snprintf(msg, msglen, "out of memory");
        return PYRT_INTERNAL;
    }
    /* who the messages name: "process 4242", or the process of a core file */
    char who[PATH_MAX + 64];
    if (t->core)
        snprintf(who, sizeof who, "the process of core file %s (pid %d)", core_path(t->core),
                 (int)pid);
    else
        snprintf(who, sizeof who, "process %d", (int)pid);
    candidate cands[16];
    size_t nc = collect_candidates(&maps, cands, 16);
    pyrt_status st = PYRT_NOT_PYTHON;
    snprintf(msg, msglen, "%s is not a CPython process (no libpython or python binary "
                          "with _PyRuntime mapped)", who);
    for (size_t i = 0; i < nc; i++) {
        elf_image img;
        pyrt_status ost = open_candidate(t, &cands[i], &img, msg, msglen);
        if (ost == PYRT_MISSING_FILE) {
            st = ost;
            break;
        }
        if (ost != PYRT_OK)
            continue;
        uint64_t bias = img.is_pie_or_so ? cands[i].first_start - img.first_load : 0;
        uint64_t runtime_sym = 0;
        bool has_runtime = elf_image_symbol(&img, "_PyRuntime", &runtime_sym, NULL) == 0;
        if (!has_runtime) {
            /* Not a modern CPython; but if it is a Python (2.x, <3.7) say which version. */
            uint64_t dummy;
            if (elf_image_symbol(&img, "Py_Initialize", &dummy, NULL) == 0 &&
                detect_version(rt, &img, cands[i].path, &m, bias)) {
                snprintf(msg, msglen, "Python %s found in %s is not supported "
                         "(aprof supports CPython 3.%d to 3.%d)", rt->version, who,
                         APROF_PY_MIN_MINOR, APROF_PY_MAX_MINOR);
                st = PYRT_UNSUPPORTED;
            }
            elf_image_close(&img);
            continue;
        }
        if (!detect_version(rt, &img, cands[i].path, &m, bias)) {
            elf_image_close(&img);
            continue;
        }
        const py_layout *L = layout_for_version(rt->major, rt->minor);
        if (!L) {
            /* A later version's _Py_DebugOffsets would describe much of it, but the layout of
             * that struct itself changes with every minor version: this aprof cannot parse it. */
            if (rt->major == 3 && rt->minor > APROF_PY_MAX_MINOR)
                snprintf(msg, msglen, "Python %s found in %s is newer than this aprof "
                         "(it reads CPython 3.%d to 3.%d): the layout of its _Py_DebugOffsets "
                         "and of the structures they do not describe is not known here",
                         rt->version, who, APROF_PY_MIN_MINOR, APROF_PY_MAX_MINOR);
            else
                snprintf(msg, msglen, "Python %s found in %s is not supported "
                         "(aprof supports CPython 3.%d to 3.%d)", rt->version, who,
                         APROF_PY_MIN_MINOR, APROF_PY_MAX_MINOR);
            st = PYRT_UNSUPPORTED;
            elf_image_close(&img);
            break;
        }
        rt->layout = *L;
        rt->bias = bias;
        rt->runtime_addr = runtime_sym + bias;
        uint64_t code_type;
        if (elf_image_symbol(&img, "PyCode_Type", &code_type, NULL) == 0)
            rt->code_type_addr = code_type + bias;
        rt->stripped = !elf_image_has_debug_info(&img);
        snprintf(rt->binary, sizeof(rt->binary), "%s", cands[i].path);
        elf_image_close(&img);

        /* Probe the memory: this is where permission problems show up. */
        uint8_t probe[8];
        if (mem_read(&m, rt->runtime_addr, probe, sizeof(probe)) != 0) {
            int err = errno;
            st = read_error_status(err);
            if (st == PYRT_PERMISSION)
                snprintf(msg, msglen, "permission denied reading the memory of %s",
                         who);
            else if (st == PYRT_NO_PROCESS)
                snprintf(msg, msglen, "%s exited", who);
            else
                snprintf(msg, msglen, "cannot read the memory of %s: %s", who,
                         strerror(err));
            break;
        }
        /* A free-threaded build has other object layouts than any table; from 3.14 on the
         * table only fills in what the target's own offsets do not publish. */
        dbgoff_status dst = refine_with_debug_offsets(rt, &m);
        if (dst == DBGOFF_FREE_THREADED ||
            (dst != DBGOFF_OK && rt->layout.facts.debug_offsets == DEBUG_OFFSETS_REQUIRED)) {
            snprintf(msg, msglen, "Python %s found in %s is not supported: %s",
                     rt->version, who, debug_offsets_strerror(dst));
            st = PYRT_UNSUPPORTED;
            break;
        }
        st = pyruntime_first_interp(rt, &m) ? PYRT_OK : PYRT_NOT_READY;
        if (st == PYRT_NOT_READY)
            snprintf(msg, msglen, "the Python interpreter in %s is not initialised yet",
                     who);
        else
            msg[0] = '\0';
        break;
    }
    mem_free(&m);
    proc_maps_free(&maps);
    return st;
}

uint64_t pyruntime_first_interp(const pyruntime *rt, mem *m)
{
    uint64_t interp = 0;
    if (mem_read_u64(m, rt->runtime_addr + (uint64_t)rt->layout.runtime.interpreters_head,
                     &interp) != 0 || !mem_ptr_ok(interp, true))
        return 0;
    return interp;
}
