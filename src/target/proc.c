#include "proc.h"

#include "grow.h"
#include "hash.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void proc_maps_free(proc_maps *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->maps[i].path);
    free(m->maps);
    m->maps = NULL;
    m->n = 0;
}

int proc_maps_read(pid_t pid, proc_maps *out)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    out->maps = NULL;
    out->n = 0;
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            errno = ESRCH;
        return -1;
    }
    size_t cap = 0;
    char *line = NULL;
    size_t linecap = 0;
    while (getline(&line, &linecap, f) > 0) {
        proc_map m = {0};
        int consumed = 0;
        char perms[8] = "";
        unsigned long long start, end, off;
        if (sscanf(line, "%llx-%llx %7s %llx %*s %*s%n", &start, &end, perms, &off, &consumed) < 4)
            continue;
        m.start = start;
        m.end = end;
        m.offset = off;
        memcpy(m.perms, perms, 4);
        const char *p = line + consumed;
        while (*p == ' ')
            p++;
        size_t plen = strcspn(p, "\n");
        if (plen > 0 && p[0] == '/') {
            m.path = strndup(p, plen);
            if (!m.path)
                goto oom;
        }
        if (!grow_array((void **)&out->maps, &cap, out->n + 1, sizeof(*out->maps), 256, SIZE_MAX)) {
            free(m.path);
            goto oom;
        }
        out->maps[out->n++] = m;
    }
    free(line);
    fclose(f);
    return 0;
oom:
    free(line);
    fclose(f);
    proc_maps_free(out);
    errno = ENOMEM;
    return -1;
}

bool proc_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

void proc_cmdline_label(const char *cmdline, size_t max, char *buf, size_t len)
{
    if (!len)
        return;
    if (max + 4 > len)
        max = len > 4 ? len - 4 : 0;
    size_t n = 0;
    const char *p = cmdline ? cmdline : "";
    while (*p && n < max) {
        const char *end = strchr(p, ' ');
        if (!end)
            end = p + strlen(p);
        const char *base = p;
        for (const char *q = p; q < end; q++)
            if (*q == '/' && q + 1 < end)
                base = q + 1;
        while (base < end && n < max)
            buf[n++] = *base++;
        p = *end ? end + 1 : end;
        if (*p && n < max)
            buf[n++] = ' ';
    }
    snprintf(buf + n, len - n, "%s", *p ? "..." : "");
}

static int cmp_pid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

int proc_list_threads(pid_t pid, pid_t *tids, size_t max)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT)
            errno = ESRCH;
        return -1;
    }
    size_t n = 0, stored = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        if (stored < max)
            tids[stored++] = (pid_t)atoi(e->d_name);
        n++;
    }
    closedir(d);
    qsort(tids, stored, sizeof(pid_t), cmp_pid);
    return (int)n;
}

static ssize_t read_small_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

void proc_cmdline(pid_t pid, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    ssize_t n = read_small_file(path, buf, len);
    if (n <= 0) {
        buf[0] = '\0';
        return;
    }
    while (n > 0 && buf[n - 1] == '\0')
        n--;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[n] = '\0';
}

void proc_thread_comm(pid_t pid, pid_t tid, char *buf, size_t len)
{
    char path[96];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)pid, (int)tid);
    ssize_t n = read_small_file(path, buf, len);
    if (n <= 0) {
        buf[0] = '\0';
        return;
    }
    buf[strcspn(buf, "\n")] = '\0';
}

/* Open-addressed table tid -> fd of /proc/PID/task/TID/stat. */
#define STAT_SLOTS 4096
struct proc_stat_cache {
    pid_t pid;
    pid_t tid[STAT_SLOTS];
    int fd[STAT_SLOTS];         /* /proc/PID/task/TID/stat */
    int syscall_fd[STAT_SLOTS]; /* /proc/PID/task/TID/syscall, -1 until first used */
    int sched_fd[STAT_SLOTS];   /* /proc/PID/task/TID/schedstat, -1 until first used */
};

proc_stat_cache *proc_stat_cache_new(pid_t pid)
{
    proc_stat_cache *c = calloc(1, sizeof(*c));
    if (c)
        c->pid = pid;
    return c;
}

static void close_slot(proc_stat_cache *c, size_t i)
{
    if (c->tid[i] > 0 && c->fd[i] >= 0)
        close(c->fd[i]);
    if (c->tid[i] > 0 && c->syscall_fd[i] >= 0)
        close(c->syscall_fd[i]);
    if (c->tid[i] > 0 && c->sched_fd[i] >= 0)
        close(c->sched_fd[i]);
    c->tid[i] = 0;
}

void proc_stat_cache_free(proc_stat_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < STAT_SLOTS; i++)
        close_slot(c, i);
    free(c);
}

/* Slot of tid, opening its stat file on first use; -1 when gone or the table is full. */
static long slot_of_tid(proc_stat_cache *c, pid_t tid)
{
    size_t i = hash32((uint64_t)(uint32_t)tid) % STAT_SLOTS;
    for (size_t probe = 0; probe < STAT_SLOTS; probe++, i = (i + 1) % STAT_SLOTS) {
        if (c->tid[i] == tid)
            return (long)i;
        if (c->tid[i] == 0) {
            char path[96];
            snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)c->pid, (int)tid);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                return -1;
            c->tid[i] = tid;
            c->fd[i] = fd;
            c->syscall_fd[i] = -1;
            c->sched_fd[i] = -1;
            return (long)i;
        }
    }
    return -1; /* table full: more than STAT_SLOTS live threads */
}

/* A thread id is reused once the kernel's pid counter wraps (a process that starts thousands of
 * threads a second wraps it within seconds): the descriptors of a slot may belong to a thread
 * that has exited while a new one has its id. When a read through them fails, the slot is opened
 * again in place (keeping its probe chain); -1 if the thread is really gone. */
static int reopen_slot(proc_stat_cache *c, long i)
{
    pid_t tid = c->tid[i];
    close_slot(c, (size_t)i);
    c->tid[i] = tid;
    c->syscall_fd[i] = c->sched_fd[i] = -1;
    char path[96];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)c->pid, (int)tid);
    c->fd[i] = open(path, O_RDONLY | O_CLOEXEC);
    return c->fd[i];
}

/* Read a per-thread /proc file through a descriptor opened on first use; bytes read or -1. */
static ssize_t read_slot(proc_stat_cache *c, long i, int *fds, const char *name, char *buf,
                         size_t len)
{
    if (fds[i] < 0) {
        char path[96];
        snprintf(path, sizeof(path), "/proc/%d/task/%d/%s", (int)c->pid, (int)c->tid[i], name);
        fds[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (fds[i] < 0)
            return -1;
    }
    ssize_t n = pread(fds[i], buf, len - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return n;
}

static ssize_t read_cached(proc_stat_cache *c, pid_t tid, int *fds, const char *name, char *buf,
                           size_t len)
{
    long i = slot_of_tid(c, tid);
    if (i < 0)
        return -1;
    ssize_t n = read_slot(c, i, fds, name, buf, len);
    if (n < 0 && reopen_slot(c, i) >= 0)
        n = read_slot(c, i, fds, name, buf, len); /* the id of an exited thread, reused */
    return n;
}

bool proc_thread_syscall_regs(proc_stat_cache *c, pid_t tid, proc_syscall *out)
{
    char buf[256];
    out->nr = -2;
    out->sp = out->pc = 0;
    if (read_cached(c, tid, c->syscall_fd, "syscall", buf, sizeof(buf)) < 0)
        return false;
    if (strncmp(buf, "running", 7) == 0) {
        out->nr = -1;
        return true;
    }
    /* "NR ARG1 ... ARG6 SP PC" (hex after the number), or just "NR SP PC" for -1 (not in a
     * syscall but blocked, e.g. in a page fault) */
    char *p = buf, *end;
    long nr = strtol(p, &end, 10);
    if (end == p)
        return false;
    uint64_t v[8];
    int k = 0;
    for (p = end; k < 8; k++, p = end) {
        v[k] = strtoull(p, &end, 16);
        if (end == p)
            break;
    }
    if (k < 2)
        return false;
    out->nr = nr;
    out->sp = v[k - 2];
    out->pc = v[k - 1];
    return true;
}

long proc_thread_syscall_cached(proc_stat_cache *c, pid_t tid)
{
    proc_syscall sc;
    return proc_thread_syscall_regs(c, tid, &sc) ? sc.nr : -2;
}

bool proc_thread_cpu_ns(proc_stat_cache *c, pid_t tid, uint64_t *ns)
{
    char buf[128];
    if (read_cached(c, tid, c->sched_fd, "schedstat", buf, sizeof(buf)) < 0)
        return false;
    char *end;
    *ns = strtoull(buf, &end, 10);
    return end != buf;
}

char proc_thread_state(proc_stat_cache *c, pid_t tid)
{
    char buf[512];
    if (read_cached(c, tid, c->fd, "stat", buf, sizeof(buf)) < 0)
        return 0; /* the thread has exited */
    const char *rp = strrchr(buf, ')');
    if (!rp || rp[1] != ' ')
        return 0;
    return rp[2];
}

void proc_stat_cache_prune(proc_stat_cache *c, const pid_t *tids, size_t n)
{
    /* Close descriptors of exited threads, then re-insert the survivors so that linear-probe
     * chains stay intact without tombstones. */
    pid_t keep_tid[STAT_SLOTS];
    int keep_fd[STAT_SLOTS], keep_sfd[STAT_SLOTS], keep_cfd[STAT_SLOTS];
    size_t k = 0;
    for (size_t i = 0; i < STAT_SLOTS; i++) {
        if (c->tid[i] <= 0)
            continue;
        if (bsearch(&c->tid[i], tids, n, sizeof(pid_t), cmp_pid)) {
            keep_tid[k] = c->tid[i];
            keep_sfd[k] = c->syscall_fd[i];
            keep_cfd[k] = c->sched_fd[i];
            keep_fd[k++] = c->fd[i];
            c->tid[i] = 0;
        } else {
            close_slot(c, i);
        }
    }
    for (size_t j = 0; j < k; j++) {
        size_t i = hash32((uint64_t)(uint32_t)keep_tid[j]) % STAT_SLOTS;
        while (c->tid[i])
            i = (i + 1) % STAT_SLOTS;
        c->tid[i] = keep_tid[j];
        c->fd[i] = keep_fd[j];
        c->syscall_fd[i] = keep_sfd[j];
        c->sched_fd[i] = keep_cfd[j];
    }
}

bool proc_mapped_file_path(pid_t pid, uint64_t start, uint64_t end, const char *path, char *out,
                           size_t len)
{
    snprintf(out, len, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)pid, start, end);
    if (access(out, R_OK) == 0)
        return true;
    if (path && path[0] == '/') {
        snprintf(out, len, "/proc/%d/root%s", (int)pid, path);
        if (access(out, R_OK) == 0)
            return true;
        snprintf(out, len, "%s", path);
        if (access(out, R_OK) == 0)
            return true;
    }
    return false;
}

bool proc_thread_exists(pid_t pid, pid_t tid)
{
    return tid > 0 && syscall(SYS_tgkill, pid, tid, 0) == 0;
}
