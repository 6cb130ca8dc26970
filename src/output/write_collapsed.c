/* Folded stacks ("collapsed") writer: one line per distinct stack of each profile,
 *   PROFILE;outer frame;...;inner frame COUNT
 * with frames "name (file:line)" (line 0 when unknown), or just "name" when the file is unknown.
 * The format has no escaping, so names are sanitised: ';' (the frame separator) becomes ':',
 * control characters (line breaks) become spaces, invalid UTF-8 becomes U+FFFD.
 */
#include "json.h" /* utf8_valid_len */
#include "writers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void put_sanitised(FILE *out, const char *str)
{
    const unsigned char *s = (const unsigned char *)(str ? str : "");
    size_t len = strlen((const char *)s), i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t skip = 1, ok = utf8_valid_len(s + i, len - i, &skip);
            if (ok) {
                fwrite(s + i, 1, ok, out);
                i += ok;
            } else {
                fputs("\xEF\xBF\xBD", out);
                i += skip;
            }
            continue;
        }
        if (c == ';')
            c = ':';
        else if (c < 0x20 || c == 0x7f)
            c = ' ';
        putc(c, out);
        i++;
    }
}

static void put_frame(FILE *out, const aprof_frame *f)
{
    put_sanitised(out, f->name);
    if (f->file && f->file[0]) {
        fputs(" (", out);
        put_sanitised(out, f->file);
        fprintf(out, ":%d)", f->line > 0 ? (int)f->line : 0);
    }
}

int write_collapsed(const agg *a, FILE *out)
{
    if (!a || !out) {
        errno = EINVAL;
        return -1;
    }
    uint32_t max_depth = agg_max_depth(a);
    size_t nn = agg_node_count(a);
    uint32_t *stack = malloc((max_depth ? max_depth : 1) * sizeof(uint32_t));
    uint64_t *count = malloc((nn + 1) * sizeof(uint64_t));
    uint64_t *weight = malloc((nn + 1) * sizeof(uint64_t));
    if (!stack || !count || !weight) {
        free(stack);
        free(count);
        free(weight);
        errno = ENOMEM;
        return -1;
    }
    int rc = 0;
    size_t nprof = agg_profile_count(a);
    errno = 0; /* so that a failed write's errno (ENOSPC, EIO...) can be told from a stale one */
    /* Same order as the speedscope writer: thread profiles, then synthetic ones. */
    for (size_t k = 0; k < 2 * nprof && rc == 0; k++) {
        const agg_profile *p = agg_profile_at(a, k % nprof);
        if (p->npoints == 0 || (p->tid != 0) != (k < nprof))
            continue;
        /* Sample counts per leaf (the empty stack last, as index nn). */
        if (agg_profile_leaf_totals(a, p, count, weight) < 0) {
            rc = -1;
            break;
        }
        for (size_t leaf = 0; leaf <= nn; leaf++) {
            if (count[leaf] == 0)
                continue;
            put_sanitised(out, p->name);
            uint32_t depth = leaf == nn ? 0 : agg_stack_frames(a, (uint32_t)leaf, stack, max_depth);
            for (uint32_t d = 0; d < depth; d++) {
                putc(';', out);
                put_frame(out, agg_frame_at(a, stack[d]));
            }
            fprintf(out, " %llu\n", (unsigned long long)count[leaf]);
        }
        if (ferror(out)) {
            if (!errno)
                errno = EIO;
            rc = -1;
        }
    }
    free(stack);
    free(count);
    free(weight);
    if (rc == 0) {
        errno = 0;
        if (fflush(out) != 0 || ferror(out)) {
            if (!errno)
                errno = EIO;
            rc = -1;
        }
    }
    return rc;
}
