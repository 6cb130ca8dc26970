/* A profiling session on one target process: everything needed to take samples of it. */
#ifndef APROF_SESSION_H
#define APROF_SESSION_H

#include "memory.h"
#include "proc.h"
#include "pyruntime.h"
#include "pystack.h"
#include "sample.h"
#include "strtab.h"
#include "threadnames.h"

#include <stdbool.h>

typedef struct session {
    pid_t pid;
    pyruntime rt;
    mem m;
    strtab *st;
    pystack ps;
    threadnames *names;
    proc_stat_cache *stat;
    char cmdline[1024];
    bool want_state; /* read each thread's run state from /proc in every sample */
} session;

/* Attach (read-only) to pid. On failure prints one "aprof: " line and returns the exit code;
 * 0 on success. With `quiet_not_ready`, PYRT_NOT_READY returns -1 silently (launch mode polls). */
int session_open(session *s, pid_t pid, bool quiet_not_ready);
void session_close(session *s);

/* Take one sample of every Python thread. Returns the number of threads, or -1 when the target
 * cannot be read (errno ESRCH: it exited). */
int session_sample(session *s, aprof_sample *out);

/* Exit code and message for a pyrt_status. */
int session_status_exit(pyrt_status st);

#endif
