/* The processes a recording samples: one target, or with --subprocesses a root process and
 * all its descendants as they come and go (worker processes forked or spawned, restarted).
 *
 * A rescan (procset_refresh, a few times a second) lists the root's descendants; each new one
 * is opened as a session sharing the set's strings. A process that is not (yet) a readable
 * CPython is tried again while its interpreter starts up, then listed once as skipped with the
 * reason (not Python, unsupported version, no permission); a skipped process that later execs
 * (its command name changes) is looked at again. A process whose reads fail while it lives on
 * (it exec'd another program) is dropped and looked at again as a new process.
 * Nothing here prints: what happens is reported through the hooks.
 */
#ifndef APROF_PROCSET_H
#define APROF_PROCSET_H

#include "session.h"
#include "status.h"
#include "strtab.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROCSET_MAX 256              /* processes followed at once */
#define PROCSET_SCAN_NS 50000000ull  /* how often descendants are listed */
#define PROCSET_READY_WAIT_NS 30000000000ull /* how long a starting interpreter is waited for */
/* A process just started (or just exec'd) may not have mapped its libpython yet: "not Python"
 * counts only after it has looked so for this long. */
#define PROCSET_NOT_PYTHON_GRACE_NS 1000000000ull

typedef struct procset_proc {
    session *s;            /* open */
    bool owned;            /* opened by the set (else the caller's) */
    uint64_t start_ticks;  /* with the pid: which process this is */
    uint64_t samples;      /* samples taken of it */
    bool exited;           /* set when it left because it exited */
    void *sampler;         /* the sampler's state for it (sampler.c) */
    void *user;            /* the consumer's state for it (set by the joined hook) */
} procset_proc;

typedef struct procset_hooks {
    /* A process was opened: turn on what the options ask for. false (with a reason in why)
     * skips it; its session is then closed. */
    bool (*joined)(void *ud, procset_proc *p, char *why, size_t whylen);
    /* It leaves (exited, or no longer readable): called before its session is closed. */
    void (*left)(void *ud, procset_proc *p);
    /* A descendant that is not sampled, once: its pid, command line and why. */
    void (*skipped)(void *ud, pid_t pid, const char *cmdline, aprof_status why, const char *msg);
    void *ud;
} procset_hooks;

typedef struct procset_seen procset_seen;

typedef struct procset {
    pid_t root;
    bool follow;           /* --subprocesses */
    strtab *st;            /* shared by the sessions the set opens */
    procset_hooks hooks;
    procset_proc *procs[PROCSET_MAX];
    size_t n;
    procset_seen *seen;    /* every process looked at: pid, start time, state */
    size_t nseen, cap_seen;
    uint64_t next_scan_ns;
    uint64_t joined_total; /* processes sampled at some point */
    uint64_t skipped_total;
    bool root_gone;        /* follow: the root process has exited */
    aprof_status root_status; /* why the root could not be opened at its last try (APROF_OK:
                               * it was, or not tried yet) */
    char root_msg[768];
} procset;

/* An empty set following root's descendants (and root itself, once it is a readable
 * CPython) when follow is set. */
void procset_init(procset *ps, pid_t root, bool follow, strtab *strings,
                  const procset_hooks *hooks);
/* Add a session the caller opened and keeps (a single target). 0, or -1 (ENOMEM/ENOSPC). */
int procset_add_session(procset *ps, session *s);
/* follow: list the descendants (when due, or now with force) and open the new ones. */
void procset_refresh(procset *ps, uint64_t now_ns, bool force);
/* Remove procs[i] (the left hook first; the session closed if the set opened it); later
 * entries move down by one. exited: it is gone (else it is looked at again at the next
 * scan, as a process that exec'd). */
void procset_drop(procset *ps, size_t i, bool exited);
/* The process with this pid, or NULL. */
procset_proc *procset_find(procset *ps, pid_t pid);
/* Drop every process (left hooks) and free the set. */
void procset_free(procset *ps);

#endif
