/* A process's descendants, from /proc: for following worker processes (--subprocesses). */
#ifndef APROF_PROC_TREE_H
#define APROF_PROC_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The live descendants of root (children, their children, ...), not root itself, parents
 * before their children. Read from every thread's /proc/PID/task/TID/children (a child's parent
 * is the thread that forked it), else from the parent pid of every process in /proc. Returns
 * the count (at most max are stored), or -1 with errno (ESRCH: root is gone). */
int proc_descendants(pid_t root, pid_t *out, size_t max);

/* When the process started (field 22 of /proc/PID/stat, clock ticks since boot): with the pid,
 * the identity of a process across pid reuse. false when it is gone. */
bool proc_start_time(pid_t pid, uint64_t *ticks);

/* Its start time and its command name (/proc/PID/stat's comm, at most 15 bytes: exec changes
 * it). false when it is gone. */
bool proc_identity(pid_t pid, uint64_t *ticks, char *comm, size_t len);

/* The parent pid, or -1 when the process is gone. */
pid_t proc_parent(pid_t pid);

#endif
