#include "proc_tree.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The fields after the command name of /proc/PID/stat (the name may hold spaces and ')'). */
static const char *stat_fields(pid_t pid, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' ? rp + 2 : NULL;
}

/* Field k (1-based, as proc(5) counts: 3 is the state) of a stat line's fields after ')'. */
static bool stat_field(const char *f, int k, unsigned long long *v)
{
    for (int i = 3; i < k && f; i++) {
        f = strchr(f, ' ');
        if (f)
            f++;
    }
    if (!f || !isdigit((unsigned char)*f))
        return false;
    *v = strtoull(f, NULL, 10);
    return true;
}

bool proc_start_time(pid_t pid, uint64_t *ticks)
{
    char buf[1024];
    const char *f = stat_fields(pid, buf, sizeof(buf));
    unsigned long long v;
    if (!f || !stat_field(f, 22, &v))
        return false;
    *ticks = v;
    return true;
}

bool proc_identity(pid_t pid, uint64_t *ticks, char *comm, size_t len)
{
    char buf[1024];
    const char *f = stat_fields(pid, buf, sizeof(buf));
    unsigned long long v;
    if (!f || !stat_field(f, 22, &v))
        return false;
    *ticks = v;
    const char *open_paren = strchr(buf, '(');
    size_t n = open_paren ? (size_t)(f - 2 - (open_paren + 1)) : 0; /* up to the last ')' */
    if (len) {
        if (n >= len)
            n = len - 1;
        memcpy(comm, open_paren ? open_paren + 1 : "", n);
        comm[n] = '\0';
    }
    return true;
}

pid_t proc_parent(pid_t pid)
{
    char buf[1024];
    const char *f = stat_fields(pid, buf, sizeof(buf));
    unsigned long long v;
    return f && stat_field(f, 4, &v) ? (pid_t)v : -1;
}

static bool listed(const pid_t *v, size_t n, pid_t p)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == p)
            return true;
    return false;
}

/* Append the children of every thread of pid that are not listed yet. */
static void add_children(pid_t pid, pid_t *out, size_t *n, size_t max, size_t *total)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return; /* gone meanwhile: no children to follow */
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        char cpath[300], buf[4096];
        snprintf(cpath, sizeof(cpath), "/proc/%d/task/%s/children", (int)pid, e->d_name);
        int fd = open(cpath, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t got = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (got <= 0)
            continue;
        buf[got] = '\0';
        for (char *p = buf; *p;) {
            char *end;
            long c = strtol(p, &end, 10);
            if (end == p)
                break;
            p = end;
            while (*p == ' ' || *p == '\n')
                p++;
            if (c <= 0 || listed(out, *n < max ? *n : max, (pid_t)c))
                continue;
            (*total)++;
            if (*n < max)
                out[(*n)++] = (pid_t)c;
        }
    }
    closedir(d);
}

/* Fallback: every process's parent from /proc/PID/stat, then a walk from root. */
static int scan_all(pid_t root, pid_t *out, size_t max)
{
    size_t cap = 1024, n = 0;
    pid_t *pid = malloc(cap * sizeof(*pid)), *ppid = malloc(cap * sizeof(*ppid));
    DIR *d = opendir("/proc");
    if (!pid || !ppid || !d) {
        free(pid);
        free(ppid);
        if (d)
            closedir(d);
        errno = ENOMEM;
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pid_t p = (pid_t)atoi(e->d_name);
        pid_t pp = proc_parent(p);
        if (pp <= 0)
            continue;
        if (n == cap) {
            size_t ncap = cap * 2;
            pid_t *a = realloc(pid, ncap * sizeof(*a));
            if (a)
                pid = a;
            pid_t *b = a ? realloc(ppid, ncap * sizeof(*b)) : NULL;
            if (!b)
                break;
            ppid = b;
            cap = ncap;
        }
        pid[n] = p;
        ppid[n] = pp;
        n++;
    }
    closedir(d);
    size_t got = 0, total = 0, head = 0;
    pid_t cur = root;
    for (int depth = 0;; depth++) {
        for (size_t i = 0; i < n; i++)
            if (ppid[i] == cur && !listed(out, got, pid[i])) {
                total++;
                if (got < max)
                    out[got++] = pid[i];
            }
        if (head >= got || depth > 100000)
            break;
        cur = out[head++];
    }
    free(pid);
    free(ppid);
    return (int)total;
}

int proc_descendants(pid_t root, pid_t *out, size_t max)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)root);
    if (access(path, F_OK) != 0) {
        errno = ESRCH;
        return -1;
    }
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)root, (int)root);
    if (access(path, R_OK) != 0)
        return scan_all(root, out, max); /* a kernel without CONFIG_PROC_CHILDREN */
    size_t n = 0, total = 0, head = 0;
    add_children(root, out, &n, max, &total);
    /* breadth first: each listed process's children after it (bounded by max) */
    while (head < n)
        add_children(out[head++], out, &n, max, &total);
    return (int)total;
}
