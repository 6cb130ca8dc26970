#include "native_merge.h"

#include <stddef.h>

uint32_t native_merge_groups(const aprof_frame *py, uint32_t npy)
{
    uint32_t g = 0;
    for (uint32_t i = 0; i < npy; i++)
        g += (py[i].flags & FRAMEF_ENTRY) != 0;
    return g;
}

uint32_t native_merge_evals(const merge_native *native, uint32_t nnative)
{
    uint32_t e = 0;
    for (uint32_t i = 0; i < nnative; i++)
        e += native[i].is_eval;
    return e;
}

static void put(merge_output *out, const aprof_frame *f, uint64_t owner, int32_t *index)
{
    if (out->n >= out->cap) {
        out->truncated = true;
        if (index)
            *index = -1;
        return;
    }
    if (index)
        *index = (int32_t)out->n;
    out->frames[out->n] = *f;
    if (out->owners)
        out->owners[out->n] = owner;
    out->n++;
}

static void put_py(const merge_input *in, merge_output *out, uint32_t i)
{
    put(out, &in->py[i], in->py_owners ? in->py_owners[i] : 0,
        out->py_index ? &out->py_index[i] : NULL);
}

static merge_result unmerged(const merge_input *in, merge_output *out)
{
    out->n = 0;
    for (uint32_t i = 0; i < in->npy; i++)
        put_py(in, out, i);
    put(out, &in->unmerged_mark, 0, NULL);
    /* The native frames inside the innermost evaluation call (all of them if none is known). */
    uint32_t inner = in->nnative;
    for (uint32_t i = 0; i < in->nnative; i++) {
        if (in->native[i].is_eval) {
            inner = i;
            break;
        }
    }
    for (uint32_t i = inner; i-- > 0;)
        put(out, &in->native[i].f, 0, NULL);
    return MERGE_UNMERGED;
}

merge_result native_merge(const merge_input *in, merge_output *out)
{
    out->n = 0;
    out->truncated = false;
    uint32_t groups = native_merge_groups(in->py, in->npy);
    uint32_t evals = native_merge_evals(in->native, in->nnative);
    bool aligned = !in->py_broken && groups <= evals &&
                   (in->npy == 0 || (in->py[0].flags & FRAMEF_ENTRY)) &&
                   (in->native_complete || groups == evals);
    if (!aligned)
        return unmerged(in, out);
    uint32_t next_py = 0;  /* first Python frame not yet placed */
    uint32_t eval_no = 0;  /* evaluation calls seen so far, outermost first */
    for (uint32_t k = in->nnative; k-- > 0;) {
        const merge_native *nf = &in->native[k];
        if (!nf->is_eval) {
            put(out, &nf->f, 0, NULL);
            continue;
        }
        if (eval_no++ >= groups)
            continue; /* an innermost call with no visible frame yet */
        /* This call's group: its entry frame and the non-entry frames after it. */
        uint32_t i = next_py;
        do {
            put_py(in, out, i);
            i++;
        } while (i < in->npy && !(in->py[i].flags & FRAMEF_ENTRY));
        next_py = i;
    }
    return MERGE_OK;
}
