#include "strtab.h"

#include "grow.h"
#include "hash.h"
#include "hmap.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    size_t len;
    char *str;
} entry;

struct strtab {
    entry *entries;
    size_t count, cap;
    hmap map; /* hash of the bytes -> index in entries */
};

size_t strtab_count(const strtab *t)
{
    return t ? t->count : 0;
}

strtab *strtab_new(void)
{
    strtab *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (hmap_init(&t->map, 1024) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

void strtab_free(strtab *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->count; i++)
        free(t->entries[i].str);
    free(t->entries);
    hmap_free(&t->map);
    free(t);
}

typedef struct str_query {
    const strtab *t;
    const char *s;
    size_t len;
} str_query;

static bool str_is(const void *ctx, uint32_t idx)
{
    const str_query *q = ctx;
    const entry *e = &q->t->entries[idx];
    return e->len == q->len && memcmp(e->str, q->s, q->len) == 0;
}

const char *strtab_intern(strtab *t, const char *s, size_t len)
{
    if (!t || (!s && len))
        return NULL;
    uint32_t h = hash32(hash_bytes(s, len));
    str_query q = {t, s, len};
    uint32_t found = hmap_find(&t->map, h, str_is, &q);
    if (found != HMAP_NONE)
        return t->entries[found].str;
    if (!grow_array((void **)&t->entries, &t->cap, t->count + 1, sizeof(*t->entries), 1024,
                    SIZE_MAX))
        return NULL;
    char *copy = malloc(len + 1);
    if (!copy || hmap_insert(&t->map, h, (uint32_t)t->count) != 0) {
        free(copy);
        return NULL;
    }
    if (len)
        memcpy(copy, s, len);
    copy[len] = '\0';
    t->entries[t->count++] = (entry){len, copy};
    return copy;
}

const char *strtab_intern_cstr(strtab *t, const char *s)
{
    return strtab_intern(t, s, s ? strlen(s) : 0);
}

