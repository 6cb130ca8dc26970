#include "redact.h"

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

size_t task_name_group_len(const char *name)
{
    if (!name)
        return 0;
    size_t n = strlen(name), d = n;
    while (d > 0 && name[d - 1] >= '0' && name[d - 1] <= '9')
        d--;
    if (d == n || d < 2 || !strchr("-_.:# ", name[d - 1]))
        return 0;
    return d;
}

bool redact_task_name(const char *name, char *out, size_t cap)
{
    if (!name || task_name_is_default(name)) {
        snprintf(out, cap, "%s", name ? name : "");
        return false;
    }
    uint32_t h = 2166136261u; /* FNV-1a, 32 bits */
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        h = (h ^ *c) * 16777619u;
    snprintf(out, cap, "task-%08x", h);
    return true;
}
