/* dict objects of a target process, and the attributes of instances, however the version
 * stores them (dict, split keys, managed dict, inline values). */
#include "pyobj_internal.h"

#include <string.h>

/* Managed dicts live in a pre-header before the object (Include/internal/pycore_object.h);
 * where, and how, is a fact of each version (py_facts.managed_dict*). */

/* One byte (dk_log2_size, dk_kind, the PyDictValues header). */
static int rd_u8(const pyobj_ctx *c, uint64_t addr, uint8_t *out)
{
    return pyobj_read(c, addr, out, 1);
}

/* ---- dict ----------------------------------------------------------------------------------- */

/* A dict's entries seen through its keys object, and where its values are: in the entries
 * (combined table) or in a separate array indexed like the entries (split table). */
typedef struct dict_view {
    uint64_t entries;    /* address of entry 0 */
    uint64_t nentries;   /* entries in use or deleted (dk_nentries) */
    unsigned entry_size; /* 24: {hash, key, value}; 16 (3.11+ str-only keys): {key, value} */
    uint64_t values;     /* split table: address of values[0]; 0 for a combined table */
    uint64_t nvalues;    /* split table: slots readable in values[] */
} dict_view;

static int keys_view(const pyobj_ctx *c, uint64_t keys, dict_view *v)
{
    const py_layout *L = c->L;
    if (!pyobj_ptr_ok(keys))
        return PYOBJ_E_PTR;
    int rc;
    uint64_t size;
    unsigned ixsize;
    if (L->dict.dk_size_is_log2) {
        uint8_t log2;
        if ((rc = rd_u8(c, keys + (uint64_t)L->dict.dk_size, &log2)) < 0)
            return rc;
        if (log2 > 40) /* 0: the shared empty keys of {} */
            return PYOBJ_E_CORRUPT;
        size = 1ull << log2;
        ixsize = log2 < 8 ? 1 : log2 < 16 ? 2 : log2 < 32 ? 4 : 8;
    } else {
        int64_t s;
        if ((rc = pyobj_read_i64(c, keys + (uint64_t)L->dict.dk_size, &s)) < 0)
            return rc;
        if (s < 1 || s > (1ll << 40) || (s & (s - 1)) != 0) /* 1: the shared empty keys */
            return PYOBJ_E_CORRUPT;
        size = (uint64_t)s;
        ixsize = size <= 0xff ? 1 : size <= 0xffff ? 2 : size <= 0xffffffffull ? 4 : 8;
    }
    bool unicode = false;
    if (L->dict.dk_kind != LAYOUT_ABSENT) {
        uint8_t kind;
        if ((rc = rd_u8(c, keys + (uint64_t)L->dict.dk_kind, &kind)) < 0)
            return rc;
        if (kind > 2) /* DICT_KEYS_GENERAL, _UNICODE, _SPLIT */
            return PYOBJ_E_CORRUPT;
        unicode = kind != 0;
    }
    int64_t nentries;
    if ((rc = pyobj_read_i64(c, keys + (uint64_t)L->dict.dk_nentries, &nentries)) < 0)
        return rc;
    if (nentries < 0 || (uint64_t)nentries > size || (uint64_t)nentries > PYOBJ_MAX_DICT_ENTRIES)
        return PYOBJ_E_CORRUPT;
    v->entries = keys + (uint64_t)L->dict.dk_indices + size * ixsize;
    v->nentries = (uint64_t)nentries;
    v->entry_size = unicode ? L->dict.unicode_entry_size : L->dict.entry_size;
    if (v->entry_size < 16)
        return PYOBJ_E_UNSUPPORTED;
    v->values = 0;
    v->nvalues = 0;
    return PYOBJ_OK;
}

/* Attach a split table's values array (address of the PyDictValues). */
static int view_set_values(const pyobj_ctx *c, dict_view *v, uint64_t dictvalues)
{
    if (!pyobj_ptr_ok(dictvalues))
        return PYOBJ_E_PTR;
    loff vv = c->L->dict.values_values;
    v->values = dictvalues + (uint64_t)(vv == LAYOUT_ABSENT ? 0 : vv);
    v->nvalues = v->nentries;
    if (c->L->dict.values_capacity != LAYOUT_ABSENT) {
        uint8_t capacity;
        int rc = rd_u8(c, dictvalues + (uint64_t)c->L->dict.values_capacity, &capacity);
        if (rc < 0)
            return rc;
        if (capacity < v->nvalues)
            v->nvalues = capacity;
    }
    return PYOBJ_OK;
}

static int dict_view_of(const pyobj_ctx *c, uint64_t dict, dict_view *v)
{
    int rc = pyobj_check_type_flag(c, dict, TPF_DICT_SUBCLASS);
    if (rc < 0)
        return rc;
    uint64_t keys, values;
    if ((rc = pyobj_field_u64(c, dict, c->L->dict.keys, &keys)) < 0 ||
        (rc = pyobj_field_u64(c, dict, c->L->dict.values, &values)) < 0)
        return rc;
    if ((rc = keys_view(c, keys, v)) < 0)
        return rc;
    if (values)
        return view_set_values(c, v, values);
    return PYOBJ_OK;
}

/* Visit every live entry. Entries and values are read in page-sized batches. */
static int view_iter(const pyobj_ctx *c, const dict_view *v, pyobj_pair_cb cb, void *ud)
{
    enum { BATCH = 160 };
    uint8_t ebuf[BATCH * 24];
    uint64_t vbuf[BATCH];
    unsigned es = v->entry_size;
    size_t batch = sizeof ebuf / es;
    uint64_t n = v->values && v->nvalues < v->nentries ? v->nvalues : v->nentries;
    for (uint64_t base = 0; base < n; base += batch) {
        size_t k = n - base < batch ? (size_t)(n - base) : batch;
        int rc = pyobj_read(c, v->entries + base * es, ebuf, k * es);
        if (rc < 0)
            return rc;
        if (v->values && (rc = pyobj_read(c, v->values + base * 8, vbuf, k * 8)) < 0)
            return rc;
        for (size_t i = 0; i < k; i++) {
            uint64_t key, value;
            /* Both entry forms end with {key, value}. */
            memcpy(&key, ebuf + i * es + es - 16, 8);
            if (v->values)
                value = vbuf[i];
            else
                memcpy(&value, ebuf + i * es + es - 8, 8);
            if (key == 0 || value == 0)
                continue; /* deleted entry, or a split-table slot this object does not use */
            if (!pyobj_ptr_ok(key) || !pyobj_ptr_ok(value))
                return PYOBJ_E_CORRUPT;
            if (!cb(ud, key, value))
                return PYOBJ_OK;
        }
    }
    return PYOBJ_OK;
}

int pyobj_dict_iter(const pyobj_ctx *c, uint64_t dict, pyobj_pair_cb cb, void *ud)
{
    if (!c || !cb)
        return PYOBJ_E_ARG;
    dict_view v;
    int rc = dict_view_of(c, dict, &v);
    if (rc < 0)
        return rc;
    return view_iter(c, &v, cb, ud);
}

typedef struct lookup_state {
    const pyobj_ctx *c;
    const char *key;
    size_t len, ncp;
    uint64_t value;
    int rc; /* PYOBJ_E_NOTFOUND until found, or the first read error */
} lookup_state;

static bool lookup_cb(void *ud, uint64_t key, uint64_t value)
{
    lookup_state *s = ud;
    int eq = pyobj_str_equals_counted(s->c, key, s->key, s->len, s->ncp);
    if (eq == PYOBJ_E_TYPE)
        return true; /* a non-str key */
    if (eq < 0) {
        s->rc = eq;
        return false;
    }
    if (eq) {
        s->value = value;
        s->rc = PYOBJ_OK;
        return false;
    }
    return true;
}

static int view_lookup(const pyobj_ctx *c, const dict_view *v, const char *key, uint64_t *value)
{
    lookup_state s = {c, key, strlen(key), 0, 0, PYOBJ_E_NOTFOUND};
    s.ncp = pyobj_utf8_count(key, s.len);
    int rc = view_iter(c, v, lookup_cb, &s);
    if (rc < 0)
        return rc;
    if (s.rc == PYOBJ_OK)
        *value = s.value;
    return s.rc;
}

int pyobj_dict_get_str(const pyobj_ctx *c, uint64_t dict, const char *key, uint64_t *value)
{
    if (!c || !key || !value)
        return PYOBJ_E_ARG;
    dict_view v;
    int rc = dict_view_of(c, dict, &v);
    if (rc < 0)
        return rc;
    return view_lookup(c, &v, key, value);
}

/* ---- instance attributes -------------------------------------------------------------------- */

/* Where the instance's attributes are: *have = false when it has none (yet). */
static int instance_view(const pyobj_ctx *c, uint64_t obj, dict_view *v, bool *have)
{
    const py_layout *L = c->L;
    *have = false;
    uint64_t type, flags;
    int rc = pyobj_type(c, obj, &type);
    if (rc < 0 || (rc = pyobj_type_flags(c, type, &flags)) < 0)
        return rc;
    const py_facts *F = &L->facts;

    if (F->managed_dict != MANAGED_DICT_NONE && (flags & TPF_MANAGED_DICT)) {
        if (!(flags & TPF_HEAPTYPE))
            return PYOBJ_E_UNSUPPORTED;
        uint64_t word, values = 0;
        if ((rc = pyobj_read_u64(c, obj + (uint64_t)(int64_t)F->managed_dict_offset, &word)) < 0)
            return rc;
        if (F->managed_dict == MANAGED_DICT_TAGGED && (word & 1)) {
            values = word + 1; /* tagged: the word holds (PyDictValues *) - 1 */
        } else if (word) {
            *have = true;
            return dict_view_of(c, word, v); /* a materialised dict */
        } else if (F->managed_dict == MANAGED_DICT_VALUES_PTR) {
            if ((rc = pyobj_read_u64(c, obj + (uint64_t)(int64_t)F->managed_values_offset,
                                     &values)) < 0)
                return rc;
        } else if (F->managed_dict == MANAGED_DICT_INLINE && (flags & TPF_INLINE_VALUES)) {
            int64_t basicsize;
            uint8_t valid;
            if ((rc = pyobj_read_i64(c, type + (uint64_t)L->type.basicsize, &basicsize)) < 0)
                return rc;
            if (basicsize < 16 || basicsize > (1 << 20))
                return PYOBJ_E_CORRUPT;
            values = obj + (uint64_t)basicsize;
            if (L->dict.values_valid == LAYOUT_ABSENT)
                return PYOBJ_E_UNSUPPORTED;
            if ((rc = rd_u8(c, values + (uint64_t)L->dict.values_valid, &valid)) < 0)
                return rc;
            if (!valid)
                return PYOBJ_OK; /* moved to a dict that is now gone: no attributes */
        }
        if (!values)
            return PYOBJ_OK;
        /* Split table: keys shared by all instances, cached on the type. */
        uint64_t keys;
        if ((rc = pyobj_field_u64(c, type, L->type.ht_cached_keys, &keys)) < 0)
            return rc;
        if ((rc = keys_view(c, keys, v)) < 0 || (rc = view_set_values(c, v, values)) < 0)
            return rc;
        *have = true;
        return PYOBJ_OK;
    }

    int64_t dictoffset;
    if ((rc = pyobj_read_i64(c, type + (uint64_t)L->type.dictoffset, &dictoffset)) < 0)
        return rc;
    if (dictoffset == 0)
        return PYOBJ_OK; /* no __dict__ (__slots__ or a builtin type) */
    if (dictoffset < 0 || dictoffset > (1 << 20))
        return PYOBJ_E_UNSUPPORTED; /* var-sized base (int, tuple subclasses) */
    uint64_t dict;
    if ((rc = pyobj_read_u64(c, obj + (uint64_t)dictoffset, &dict)) < 0)
        return rc;
    if (!dict)
        return PYOBJ_OK;
    *have = true;
    return dict_view_of(c, dict, v);
}

int pyobj_getattr(const pyobj_ctx *c, uint64_t obj, const char *name, uint64_t *value)
{
    if (!c || !name || !value)
        return PYOBJ_E_ARG;
    dict_view v;
    bool have;
    int rc = instance_view(c, obj, &v, &have);
    if (rc < 0)
        return rc;
    if (!have)
        return PYOBJ_E_NOTFOUND;
    return view_lookup(c, &v, name, value);
}
