/* Reading Python objects out of a target process (see pyobj.h, docs/internals-objects.md): the
 * common part (error names, raw reads, type checks) and the small readers of modules,
 * functions, methods and cells. The other kinds are in pyobj_str.c, pyobj_num.c, pyobj_seq.c,
 * pyobj_dict.c and pyobj_set.c. */
#include "pyobj_internal.h"

#include <string.h>

const char *pyobj_strerror(int err)
{
    switch (err) {
    case PYOBJ_OK: return "ok";
    case PYOBJ_TRUNCATED: return "truncated";
    case PYOBJ_E_READ: return "remote read failed";
    case PYOBJ_E_PTR: return "null or implausible pointer";
    case PYOBJ_E_TYPE: return "object of another type";
    case PYOBJ_E_CORRUPT: return "implausible object contents";
    case PYOBJ_E_NOTFOUND: return "not found";
    case PYOBJ_E_RANGE: return "out of range";
    case PYOBJ_E_UNSUPPORTED: return "unsupported object form";
    case PYOBJ_E_ARG: return "bad argument";
    case PYOBJ_E_NOMEM: return "out of memory";
    default: return "unknown error";
    }
}

/* ---- raw reads ------------------------------------------------------------------------------ */

bool pyobj_ptr_ok(uint64_t p) { return mem_ptr_ok(p, true); }

int pyobj_read(const pyobj_ctx *c, uint64_t addr, void *dst, size_t n)
{
    if (!mem_ptr_ok(addr, false))
        return PYOBJ_E_PTR;
    return mem_read(c->m, addr, dst, n) == 0 ? PYOBJ_OK : PYOBJ_E_READ;
}

int pyobj_read_u64(const pyobj_ctx *c, uint64_t addr, uint64_t *out)
{
    return pyobj_read(c, addr, out, sizeof *out);
}

int pyobj_read_i64(const pyobj_ctx *c, uint64_t addr, int64_t *out)
{
    return pyobj_read(c, addr, out, sizeof *out);
}

/* A field of obj at a layout offset; ABSENT fields are unsupported on this version. */
int pyobj_field_u64(const pyobj_ctx *c, uint64_t obj, loff off, uint64_t *out)
{
    if (off == LAYOUT_ABSENT)
        return PYOBJ_E_UNSUPPORTED;
    return pyobj_read_u64(c, obj + (uint64_t)off, out);
}

/* A pointer field that must hold a plausible object pointer (or 0 when may_be_null). */
int pyobj_field_obj(const pyobj_ctx *c, uint64_t obj, loff off, bool may_be_null, uint64_t *out)
{
    int rc = pyobj_field_u64(c, obj, off, out);
    if (rc < 0)
        return rc;
    if (*out == 0 && may_be_null)
        return PYOBJ_OK;
    return pyobj_ptr_ok(*out) ? PYOBJ_OK : PYOBJ_E_PTR;
}

/* A NUL-terminated C string of at most cap-1 bytes, read page by page so that a string near the
 * end of a mapping is still readable. */
static int read_cstr(const pyobj_ctx *c, uint64_t addr, char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return PYOBJ_E_ARG;
    buf[0] = '\0';
    if (!mem_ptr_ok(addr, false))
        return PYOBJ_E_PTR;
    size_t got = 0;
    while (got < cap - 1) {
        uint64_t a = addr + got;
        size_t chunk = MEM_PAGE_SIZE - (size_t)(a & (MEM_PAGE_SIZE - 1));
        if (chunk > cap - 1 - got)
            chunk = cap - 1 - got;
        if (mem_read(c->m, a, buf + got, chunk) != 0) {
            buf[got] = '\0';
            return PYOBJ_E_READ;
        }
        char *nul = memchr(buf + got, '\0', chunk);
        if (nul)
            return PYOBJ_OK;
        got += chunk;
    }
    buf[cap - 1] = '\0';
    return PYOBJ_TRUNCATED;
}

/* ---- types ---------------------------------------------------------------------------------- */

int pyobj_type(const pyobj_ctx *c, uint64_t obj, uint64_t *type)
{
    if (!c || !type)
        return PYOBJ_E_ARG;
    if (!pyobj_ptr_ok(obj))
        return PYOBJ_E_PTR;
    return pyobj_field_obj(c, obj, c->L->object.type, false, type);
}

int pyobj_type_flags(const pyobj_ctx *c, uint64_t type, uint64_t *flags)
{
    if (!c || !flags)
        return PYOBJ_E_ARG;
    if (!pyobj_ptr_ok(type))
        return PYOBJ_E_PTR;
    return pyobj_field_u64(c, type, c->L->type.flags, flags);
}

/* OK when obj's type has every bit of `flag` (a fast-subclass flag), else PYOBJ_E_TYPE. */
int pyobj_check_type_flag(const pyobj_ctx *c, uint64_t obj, uint64_t flag)
{
    uint64_t type, flags;
    int rc = pyobj_type(c, obj, &type);
    if (rc < 0)
        return rc;
    rc = pyobj_type_flags(c, type, &flags);
    if (rc < 0)
        return rc;
    return (flags & flag) == flag ? PYOBJ_OK : PYOBJ_E_TYPE;
}

static int type_tp_name(const pyobj_ctx *c, uint64_t type, char *buf, size_t cap)
{
    uint64_t name;
    int rc = pyobj_field_u64(c, type, c->L->type.name, &name);
    if (rc < 0) {
        if (buf && cap)
            buf[0] = '\0';
        return rc;
    }
    return read_cstr(c, name, buf, cap);
}

int pyobj_type_name(const pyobj_ctx *c, uint64_t obj, char *buf, size_t cap)
{
    if (!c || !buf || cap == 0)
        return PYOBJ_E_ARG;
    buf[0] = '\0';
    uint64_t type;
    int rc = pyobj_type(c, obj, &type);
    if (rc < 0)
        return rc;
    return type_tp_name(c, type, buf, cap);
}

/* "Task" matches "Task" and "_asyncio.Task"; "_asyncio.Task" matches only itself. */
static bool tp_name_matches(const char *tp_name, const char *want)
{
    if (strcmp(tp_name, want) == 0)
        return true;
    const char *dot = strrchr(tp_name, '.');
    return dot && strcmp(dot + 1, want) == 0;
}

static int type_name_matches(const pyobj_ctx *c, uint64_t type, const char *want)
{
    char buf[NAME_MAX_LEN];
    int rc = type_tp_name(c, type, buf, sizeof buf);
    if (rc < 0)
        return rc;
    return tp_name_matches(buf, want) ? 1 : 0;
}

int pyobj_is_instance(const pyobj_ctx *c, uint64_t obj, const char *name)
{
    if (!c || !name)
        return PYOBJ_E_ARG;
    uint64_t type;
    int rc = pyobj_type(c, obj, &type);
    if (rc < 0)
        return rc;
    rc = type_name_matches(c, type, name);
    if (rc != 0)
        return rc;

    /* tp_mro: a tuple of the type and its bases in resolution order. */
    uint64_t mro;
    if (pyobj_field_obj(c, type, c->L->type.mro, false, &mro) == PYOBJ_OK) {
        uint64_t items[PYOBJ_MAX_MRO];
        size_t n = 0;
        int mrc = pyobj_seq_items(c, mro, items, PYOBJ_MAX_MRO, &n);
        if (mrc >= 0 && n > 0) {
            for (size_t i = 1; i < n; i++) {
                if (!pyobj_ptr_ok(items[i]))
                    return PYOBJ_E_PTR;
                rc = type_name_matches(c, items[i], name);
                if (rc != 0)
                    return rc;
            }
            return 0;
        }
    }
    /* No readable MRO (a type still being created): only the type itself was compared. */
    return 0;
}
int pyobj_require_instance(const pyobj_ctx *c, uint64_t obj, const char *name)
{
    int rc = pyobj_is_instance(c, obj, name);
    if (rc < 0)
        return rc;
    return rc ? PYOBJ_OK : PYOBJ_E_TYPE;
}

/* ---- modules -------------------------------------------------------------------------------- */

int pyobj_module_find(const pyobj_ctx *c, uint64_t sys_modules, const char *name,
                      uint64_t *module)
{
    if (!module)
        return PYOBJ_E_ARG;
    uint64_t m = 0;
    int rc = pyobj_dict_get_str(c, sys_modules, name, &m);
    if (rc < 0)
        return rc;
    /* sys.modules may map a name to None (import blocked) or to any object. */
    if ((rc = pyobj_require_instance(c, m, "module")) < 0)
        return rc;
    *module = m;
    return PYOBJ_OK;
}

int pyobj_module_global(const pyobj_ctx *c, uint64_t module, const char *name, uint64_t *value)
{
    if (!c || !name || !value)
        return PYOBJ_E_ARG;
    int rc = pyobj_require_instance(c, module, "module");
    if (rc < 0)
        return rc;
    uint64_t dict;
    if ((rc = pyobj_read_u64(c, module + PYOBJ_MODULE_MD_DICT, &dict)) < 0)
        return rc;
    if (!pyobj_ptr_ok(dict))
        return PYOBJ_E_PTR;
    return pyobj_dict_get_str(c, dict, name, value);
}

/* ---- functions, methods, cells -------------------------------------------------------------- */

int pyobj_func_closure(const pyobj_ctx *c, uint64_t func, uint64_t *closure)
{
    if (!closure)
        return PYOBJ_E_ARG;
    int rc = pyobj_require_instance(c, func, "function");
    if (rc < 0)
        return rc;
    return pyobj_field_obj(c, func, c->L->func.closure, true, closure);
}

int pyobj_method_parts(const pyobj_ctx *c, uint64_t method, uint64_t *func, uint64_t *self)
{
    int rc = pyobj_require_instance(c, method, "method");
    if (rc < 0)
        return rc;
    uint64_t f, s;
    if ((rc = pyobj_field_obj(c, method, c->L->method.func, false, &f)) < 0 ||
        (rc = pyobj_field_obj(c, method, c->L->method.self, false, &s)) < 0)
        return rc;
    if (func)
        *func = f;
    if (self)
        *self = s;
    return PYOBJ_OK;
}

int pyobj_cell_get(const pyobj_ctx *c, uint64_t cell, uint64_t *obj)
{
    if (!obj)
        return PYOBJ_E_ARG;
    int rc = pyobj_require_instance(c, cell, "cell");
    if (rc < 0)
        return rc;
    return pyobj_field_obj(c, cell, c->L->cell.ref, true, obj);
}
