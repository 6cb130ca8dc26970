/* tuple and list objects of a target process. */
#include "pyobj_internal.h"

/* ---- tuple, list ---------------------------------------------------------------------------- */

/* Size and address of the item array of a tuple or list. */
static int seq_info(const pyobj_ctx *c, uint64_t seq, uint64_t *size, uint64_t *items)
{
    if (!c)
        return PYOBJ_E_ARG;
    uint64_t type, flags;
    int rc = pyobj_type(c, seq, &type);
    if (rc < 0 || (rc = pyobj_type_flags(c, type, &flags)) < 0)
        return rc;
    const py_layout *L = c->L;
    int64_t n;
    if (flags & TPF_TUPLE_SUBCLASS) {
        if ((rc = pyobj_read_i64(c, seq + (uint64_t)L->tuple.size, &n)) < 0)
            return rc;
        *items = seq + (uint64_t)L->tuple.items;
    } else if (flags & TPF_LIST_SUBCLASS) {
        if ((rc = pyobj_read_i64(c, seq + (uint64_t)L->list.size, &n)) < 0 ||
            (rc = pyobj_read_u64(c, seq + (uint64_t)L->list.items, items)) < 0)
            return rc;
        if (n > 0 && !pyobj_ptr_ok(*items))
            return PYOBJ_E_PTR;
    } else {
        return PYOBJ_E_TYPE;
    }
    if (n < 0 || (uint64_t)n > PYOBJ_MAX_SEQ_ITEMS)
        return PYOBJ_E_CORRUPT;
    *size = (uint64_t)n;
    return PYOBJ_OK;
}

int pyobj_seq_size(const pyobj_ctx *c, uint64_t seq, uint64_t *n)
{
    if (!n)
        return PYOBJ_E_ARG;
    uint64_t items;
    return seq_info(c, seq, n, &items);
}

int pyobj_seq_item(const pyobj_ctx *c, uint64_t seq, uint64_t i, uint64_t *item)
{
    if (!item)
        return PYOBJ_E_ARG;
    uint64_t n, items;
    int rc = seq_info(c, seq, &n, &items);
    if (rc < 0)
        return rc;
    if (i >= n)
        return PYOBJ_E_RANGE;
    if ((rc = pyobj_read_u64(c, items + 8 * i, item)) < 0)
        return rc;
    return pyobj_ptr_ok(*item) ? PYOBJ_OK : PYOBJ_E_PTR;
}

int pyobj_seq_items(const pyobj_ctx *c, uint64_t seq, uint64_t *out, size_t cap, size_t *n)
{
    if (!n || (!out && cap))
        return PYOBJ_E_ARG;
    *n = 0;
    uint64_t size, items;
    int rc = seq_info(c, seq, &size, &items);
    if (rc < 0)
        return rc;
    size_t want = size < cap ? (size_t)size : cap;
    if (want && (rc = pyobj_read(c, items, out, want * 8)) < 0)
        return rc;
    for (size_t i = 0; i < want; i++)
        if (!pyobj_ptr_ok(out[i]))
            return PYOBJ_E_PTR;
    *n = want;
    return want < size ? PYOBJ_TRUNCATED : PYOBJ_OK;
}
