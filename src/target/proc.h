/* Reading /proc for a target process: memory maps, threads, per-thread run state, names. */
#ifndef APROF_PROC_H
#define APROF_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct proc_map {
    uint64_t start, end, offset;
    char perms[5];
    char *path; /* NULL for anonymous mappings */
} proc_map;

typedef struct proc_maps {
    proc_map *maps;
    size_t n;
} proc_maps;

/* 0 on success; -1 with errno (ESRCH when the process does not exist). */
int proc_maps_read(pid_t pid, proc_maps *out);

/* A path through which aprof can open the file that pid maps at [start, end) under `path` (as
 * /proc/PID/maps names it): /proc/PID/map_files/START-END, the very file mapped whatever mount
 * namespace or chroot the target lives in; else /proc/PID/root + path (containers); else path
 * itself (a chroot: maps names host paths). false when none can be opened. */
bool proc_mapped_file_path(pid_t pid, uint64_t start, uint64_t end, const char *path, char *out,
                           size_t len);
void proc_maps_free(proc_maps *m);

/* Is tid a thread of process pid now (tgkill with signal 0)? */
bool proc_thread_exists(pid_t pid, pid_t tid);

/* Does the process exist (and is it not a zombie)? */
bool proc_alive(pid_t pid);

/* Thread ids of the process, sorted ascending. Returns the count (may exceed max: then only
 * max were stored), or -1 with errno. */
int proc_list_threads(pid_t pid, pid_t *tids, size_t max);

/* The command line with NULs turned into spaces (truncated to len-1); "" when unreadable. */
void proc_cmdline(pid_t pid, char *buf, size_t len);
/* A short label for a command line: every path cut to its file name, at most max characters,
 * then "..." when cut ("/usr/bin/python3 /srv/app/main.py -w 2" -> "python3 main.py -w 2"). */
void proc_cmdline_label(const char *cmdline, size_t max, char *buf, size_t len);
/* /proc/PID/task/TID/comm without the newline; "" when unreadable. */
void proc_thread_comm(pid_t pid, pid_t tid, char *buf, size_t len);

/* Per-thread /proc/PID/task/TID/stat readers with cached descriptors: one pread per call. */
typedef struct proc_stat_cache proc_stat_cache;
proc_stat_cache *proc_stat_cache_new(pid_t pid);
void proc_stat_cache_free(proc_stat_cache *c);
/* Run state letter ('R', 'S', 'D', 'T', 't', 'Z', ...), or 0 when the thread is gone. See
 * thread_state_of_letter() in sample.h for aprof's thread_state. */
char proc_thread_state(proc_stat_cache *c, pid_t tid);
/* /proc/PID/task/TID/syscall through a cached descriptor (one pread per call): the number of
 * the syscall the thread is blocked in, -1 when it runs in user space, -2 when unknown. */
long proc_thread_syscall_cached(proc_stat_cache *c, pid_t tid);

/* /proc/PID/task/TID/syscall in full: the syscall a blocked thread is in (nr; -1 running) and
 * its user stack and instruction pointers. False when unreadable. */
typedef struct proc_syscall {
    long nr;
    uint64_t sp, pc;
} proc_syscall;
bool proc_thread_syscall_regs(proc_stat_cache *c, pid_t tid, proc_syscall *out);

/* CPU time the thread has used so far (/proc/PID/task/TID/schedstat), in ns. It does not move
 * while the thread sleeps: equal before and after a read, the thread did not run in between.
 * False when unreadable (no schedstat in this kernel). */
bool proc_thread_cpu_ns(proc_stat_cache *c, pid_t tid, uint64_t *ns);
/* Forget descriptors of threads that are not in tids (call after a thread list refresh). */
void proc_stat_cache_prune(proc_stat_cache *c, const pid_t *tids, size_t n);

#endif
