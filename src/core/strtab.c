#include "strtab.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    uint64_t hash;
    size_t len;
    char *str;
} entry;

struct strtab {
    entry *slots;
    size_t cap; /* power of two */
    size_t count;
};

uint64_t strtab_hash(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}

strtab *strtab_new(void)
{
    strtab *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->cap = 1024;
    t->slots = calloc(t->cap, sizeof(entry));
    if (!t->slots) {
        free(t);
        return NULL;
    }
    return t;
}

void strtab_free(strtab *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i].str);
    free(t->slots);
    free(t);
}

static int grow(strtab *t)
{
    size_t ncap = t->cap * 2;
    entry *ns = calloc(ncap, sizeof(entry));
    if (!ns)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i].str)
            continue;
        size_t j = t->slots[i].hash & (ncap - 1);
        while (ns[j].str)
            j = (j + 1) & (ncap - 1);
        ns[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = ns;
    t->cap = ncap;
    return 0;
}

const char *strtab_intern(strtab *t, const char *s, size_t len)
{
    if (!t || (!s && len))
        return NULL;
    if ((t->count + 1) * 4 > t->cap * 3 && grow(t) < 0)
        return NULL;
    uint64_t h = strtab_hash(s, len);
    size_t i = h & (t->cap - 1);
    while (t->slots[i].str) {
        entry *e = &t->slots[i];
        if (e->hash == h && e->len == len && memcmp(e->str, s, len) == 0)
            return e->str;
        i = (i + 1) & (t->cap - 1);
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    if (len)
        memcpy(copy, s, len);
    copy[len] = '\0';
    t->slots[i] = (entry){h, len, copy};
    t->count++;
    return copy;
}

const char *strtab_intern_cstr(strtab *t, const char *s)
{
    return strtab_intern(t, s, s ? strlen(s) : 0);
}

