#include "redact.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

bool redact_path(const char *path, char *out, size_t cap)
{
    const char *rest = NULL;
    if (path && strncmp(path, "/home/", 6) == 0 && path[6] && path[6] != '/') {
        rest = strchr(path + 6, '/');
        rest = rest ? rest : path + strlen(path);
    } else if (path && strncmp(path, "/root", 5) == 0 && (path[5] == '/' || !path[5])) {
        rest = path + 5;
    }
    if (!rest) {
        snprintf(out, cap, "%s", path ? path : "");
        return false;
    }
    snprintf(out, cap, "~%s", rest);
    return true;
}

bool task_name_is_default(const char *name)
{
    if (!name || strncmp(name, "Task-", 5) != 0 || !name[5])
        return false;
    for (const char *c = name + 5; *c; c++)
        if (*c < '0' || *c > '9')
            return false;
    return true;
}

/* "task-" and 8 hex digits: redact_task_name's placeholder of a name without a counter (its
 * hash may be all decimal digits; it is not a counter) */
static bool is_placeholder(const char *name, size_t n)
{
    if (n != 13 || strncmp(name, "task-", 5) != 0)
        return false;
    for (size_t i = 5; i < n; i++)
        if (!isxdigit((unsigned char)name[i]))
            return false;
    return true;
}

size_t task_name_group_len(const char *name)
{
    if (!name)
        return 0;
    size_t n = strlen(name), d = n;
    while (d > 0 && name[d - 1] >= '0' && name[d - 1] <= '9')
        d--;
    if (d == n || d < 2 || !strchr("-_.:# ", name[d - 1]) || is_placeholder(name, n))
        return 0;
    return d;
}

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a, 32 bits */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

bool redact_task_name(const char *name, char *out, size_t cap)
{
    if (!name || task_name_is_default(name)) {
        snprintf(out, cap, "%s", name ? name : "");
        return false;
    }
    /* A trailing counter stays (the hash is of the rest): the tasks of one kind keep grouping
     * (task_name_group_len), and a counter says nothing about the program. */
    size_t keep = task_name_group_len(name);
    if (keep)
        snprintf(out, cap, "task-%08x%s", fnv1a(name, keep - 1), name + keep - 1);
    else
        snprintf(out, cap, "task-%08x", fnv1a(name, strlen(name)));
    return true;
}
