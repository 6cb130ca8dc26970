/* int objects of a target process. */
#include "pyobj_internal.h"

#define LONG_SHIFT 30 /* 30-bit digits (x86-64 builds) */

/* ---- int ------------------------------------------------------------------------------------ */

/* Sign (-1, 0, 1) and 30-bit digits, least significant first, of an int. */
static int long_read(const pyobj_ctx *c, uint64_t obj, int *sign, uint32_t *digits,
                     size_t *ndigits)
{
    if (!c)
        return PYOBJ_E_ARG;
    int rc = pyobj_check_type_flag(c, obj, TPF_LONG_SUBCLASS);
    if (rc < 0)
        return rc;
    uint64_t raw;
    if ((rc = pyobj_read_u64(c, obj + (uint64_t)c->L->longobj.size_or_tag, &raw)) < 0)
        return rc;
    uint64_t nd;
    if (c->L->longobj.tagged) {
        /* 3.12+ lv_tag: digit count << 3 | sign bits (0 positive, 1 zero, 2 negative). */
        unsigned sbits = raw & 3u;
        if (sbits == 3)
            return PYOBJ_E_CORRUPT;
        *sign = sbits == 0 ? 1 : sbits == 1 ? 0 : -1;
        nd = raw >> 3;
        if (*sign == 0)
            nd = 0;
    } else {
        int64_t size = (int64_t)raw;
        *sign = size < 0 ? -1 : size > 0;
        nd = size < 0 ? (uint64_t)0 - (uint64_t)size : (uint64_t)size;
    }
    if (nd > PYOBJ_MAX_INT_DIGITS)
        return nd > (1u << 28) ? PYOBJ_E_CORRUPT : PYOBJ_E_RANGE;
    if (*sign != 0 && nd == 0)
        return PYOBJ_E_CORRUPT;
    if (nd &&
        (rc = pyobj_read(c, obj + (uint64_t)c->L->longobj.digits, digits, (size_t)nd * 4)) < 0)
        return rc;
    for (uint64_t i = 0; i < nd; i++)
        if (digits[i] >> LONG_SHIFT)
            return PYOBJ_E_CORRUPT;
    /* Normalised ints have no leading zero digit. */
    if (nd && digits[nd - 1] == 0)
        return PYOBJ_E_CORRUPT;
    *ndigits = (size_t)nd;
    return PYOBJ_OK;
}

int pyobj_int_value(const pyobj_ctx *c, uint64_t obj, int64_t *out)
{
    if (!out)
        return PYOBJ_E_ARG;
    uint32_t digits[PYOBJ_MAX_INT_DIGITS];
    size_t nd = 0;
    int sign = 0;
    int rc = long_read(c, obj, &sign, digits, &nd);
    if (rc < 0)
        return rc;
    uint64_t v = 0;
    for (size_t i = nd; i-- > 0;) {
        if (v > (UINT64_MAX >> LONG_SHIFT))
            return PYOBJ_E_RANGE;
        v = (v << LONG_SHIFT) | digits[i];
    }
    if (sign >= 0) {
        if (v > (uint64_t)INT64_MAX)
            return PYOBJ_E_RANGE;
        *out = (int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX + 1)
            return PYOBJ_E_RANGE;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    }
    return PYOBJ_OK;
}
