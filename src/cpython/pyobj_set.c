/* set, frozenset and weakref objects of a target process. */
#include "pyobj_internal.h"

#include <string.h>

/* ---- set, weakref --------------------------------------------------------------------------- */

int pyobj_set_iter(const pyobj_ctx *c, uint64_t set, pyobj_item_cb cb, void *ud)
{
    if (!c || !cb)
        return PYOBJ_E_ARG;
    int rc = pyobj_is_instance(c, set, "set");
    if (rc == 0)
        rc = pyobj_is_instance(c, set, "frozenset");
    if (rc < 0)
        return rc;
    if (rc == 0)
        return PYOBJ_E_TYPE;
    const py_layout *L = c->L;
    int64_t mask;
    uint64_t table;
    if ((rc = pyobj_read_i64(c, set + (uint64_t)L->set.mask, &mask)) < 0 ||
        (rc = pyobj_read_u64(c, set + (uint64_t)L->set.table, &table)) < 0)
        return rc;
    if (mask < 7 || (uint64_t)mask >= PYOBJ_MAX_SET_SLOTS || (mask & (mask + 1)) != 0)
        return PYOBJ_E_CORRUPT;
    if (!pyobj_ptr_ok(table))
        return PYOBJ_E_PTR;
    unsigned es = L->set.entry_size;
    if (es < 16)
        return PYOBJ_E_UNSUPPORTED;
    enum { BATCH = 256 };
    uint8_t buf[BATCH * 16];
    size_t batch = sizeof buf / es;
    uint64_t n = (uint64_t)mask + 1;
    for (uint64_t base = 0; base < n; base += batch) {
        size_t k = n - base < batch ? (size_t)(n - base) : batch;
        if ((rc = pyobj_read(c, table + base * es, buf, k * es)) < 0)
            return rc;
        for (size_t i = 0; i < k; i++) {
            uint64_t key;
            int64_t hash;
            memcpy(&key, buf + i * es, 8);
            memcpy(&hash, buf + i * es + 8, 8);
            /* Empty slots have no key; deleted ones hold the dummy key with hash -1, a hash no
             * live object has (CPython maps -1 to -2). */
            if (key == 0 || hash == -1)
                continue;
            if (!pyobj_ptr_ok(key))
                return PYOBJ_E_CORRUPT;
            if (!cb(ud, key))
                return PYOBJ_OK;
        }
    }
    /* A set that grew or was rebuilt while it was read (a task registry as tasks come and go)
     * freed the table read here: its entries may be lost or garbage. Its mask and table, read
     * again directly (not from this sample's page cache, which may hold the first reading),
     * must be unchanged. */
    loff lo = L->set.mask < L->set.table ? L->set.mask : L->set.table;
    loff hi = L->set.mask < L->set.table ? L->set.table : L->set.mask;
    uint8_t again[64];
    if (hi - lo + 8 > (loff)sizeof again)
        return PYOBJ_E_UNSUPPORTED;
    if (mem_read_direct(c->m, set + (uint64_t)lo, again, (size_t)(hi - lo + 8)) != hi - lo + 8)
        return PYOBJ_E_READ;
    int64_t mask_again;
    uint64_t table_again;
    memcpy(&mask_again, again + (L->set.mask - lo), 8);
    memcpy(&table_again, again + (L->set.table - lo), 8);
    if (mask_again != mask || table_again != table)
        return PYOBJ_E_CORRUPT;
    return PYOBJ_OK;
}

/* 1 when obj's type is named exactly `name` (no MRO walk), 0 when not. */
static int type_is_exactly(const pyobj_ctx *c, uint64_t obj, const char *name)
{
    char buf[NAME_MAX_LEN];
    int rc = pyobj_type_name(c, obj, buf, sizeof buf);
    if (rc < 0)
        return rc;
    return strcmp(buf, name) == 0;
}

int pyobj_weakref_get(const pyobj_ctx *c, uint64_t ref, uint64_t *obj)
{
    if (!obj)
        return PYOBJ_E_ARG;
    int rc = pyobj_require_instance(c, ref, "ReferenceType");
    if (rc < 0)
        return rc;
    uint64_t target;
    if ((rc = pyobj_field_obj(c, ref, c->L->weakref.object, false, &target)) < 0)
        return rc;
    /* A dead reference points at None. */
    rc = type_is_exactly(c, target, "NoneType");
    if (rc < 0)
        return rc;
    if (rc)
        return PYOBJ_E_NOTFOUND;
    *obj = target;
    return PYOBJ_OK;
}
