#include "procset.h"

#include "grow.h"
#include "proc.h"
#include "proc_tree.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEEN 4096          /* processes remembered (oldest forgotten: looked at again) */

typedef enum seen_state {
    SEEN_SAMPLED,  /* in the set now */
    SEEN_WAITING,  /* an interpreter starting up, or one that exec'd: try again */
    SEEN_SKIPPED,  /* listed as skipped: never again */
} seen_state;

struct procset_seen {
    pid_t pid;
    uint64_t start_ticks;
    uint8_t state;
    uint64_t first_try_ns, next_try_ns;
    char comm[16];         /* its command name when last looked at: exec changes it */
};

void procset_init(procset *ps, pid_t root, bool follow, strtab *strings,
                  const procset_hooks *hooks)
{
    memset(ps, 0, sizeof(*ps));
    ps->root = root;
    ps->follow = follow;
    ps->st = strings;
    if (hooks)
        ps->hooks = *hooks;
}

static procset_proc *new_proc(procset *ps)
{
    if (ps->n >= PROCSET_MAX) {
        errno = ENOSPC;
        return NULL;
    }
    procset_proc *p = calloc(1, sizeof(*p));
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    ps->procs[ps->n++] = p;
    return p;
}

int procset_add_session(procset *ps, session *s)
{
    procset_proc *p = new_proc(ps);
    if (!p)
        return -1;
    p->s = s;
    proc_start_time(s->src.pid, &p->start_ticks);
    ps->joined_total++;
    return 0;
}

procset_proc *procset_find(procset *ps, pid_t pid)
{
    for (size_t i = 0; i < ps->n; i++)
        if (ps->procs[i]->s->src.pid == pid)
            return ps->procs[i];
    return NULL;
}

static procset_seen *find_seen(procset *ps, pid_t pid, uint64_t start)
{
    for (size_t i = 0; i < ps->nseen; i++)
        if (ps->seen[i].pid == pid && ps->seen[i].start_ticks == start)
            return &ps->seen[i];
    return NULL;
}

static procset_seen *add_seen(procset *ps, pid_t pid, uint64_t start, uint64_t now)
{
    if (ps->nseen == MAX_SEEN) { /* forget the oldest entry that is not in the set */
        size_t k = 0;
        while (k < ps->nseen && ps->seen[k].state == SEEN_SAMPLED)
            k++;
        if (k == ps->nseen)
            return NULL;
        memmove(&ps->seen[k], &ps->seen[k + 1], (ps->nseen - k - 1) * sizeof(ps->seen[0]));
        ps->nseen--;
    }
    if (!grow_array((void **)&ps->seen, &ps->cap_seen, ps->nseen + 1, sizeof(*ps->seen), 32,
                    SIZE_MAX))
        return NULL;
    procset_seen *e = &ps->seen[ps->nseen++];
    *e = (procset_seen){pid, start, SEEN_WAITING, now, now};
    return e;
}

static void skip(procset *ps, procset_seen *e, aprof_status why, const char *msg)
{
    e->state = SEEN_SKIPPED;
    ps->skipped_total++;
    if (ps->hooks.skipped) {
        char cmd[512];
        proc_cmdline(e->pid, cmd, sizeof(cmd));
        ps->hooks.skipped(ps->hooks.ud, e->pid, cmd, why, msg);
    }
}

/* Look at one process: open it when it is a readable CPython. */
static void try_open(procset *ps, procset_seen *e, uint64_t now)
{
    if (ps->n >= PROCSET_MAX) {
        skip(ps, e, APROF_E_INTERNAL, "too many processes followed at once");
        return;
    }
    session *s = calloc(1, sizeof(*s));
    if (!s)
        return; /* tried again at the next scan */
    aprof_error err = {0};
    aprof_status rc = session_open_shared(s, e->pid, ps->st, &err);
    if (e->pid == ps->root) {
        ps->root_status = rc;
        snprintf(ps->root_msg, sizeof(ps->root_msg), "%s", rc == APROF_OK ? "" : err.msg);
    }
    if ((rc == APROF_E_NOT_READY && now - e->first_try_ns < PROCSET_READY_WAIT_NS) ||
        (rc == APROF_E_NOT_PYTHON && now - e->first_try_ns < PROCSET_NOT_PYTHON_GRACE_NS)) {
        free(s);
        e->next_try_ns = now; /* again at the next scan */
        return;
    }
    if (rc == APROF_E_NO_PROCESS) {
        free(s);
        e->state = SEEN_SKIPPED; /* exited before it was opened: nothing to list */
        return;
    }
    if (rc != APROF_OK) {
        free(s);
        skip(ps, e, rc, err.msg);
        return;
    }
    procset_proc *p = new_proc(ps);
    char why[512] = "";
    if (!p) {
        session_close(s);
        free(s);
        return;
    }
    p->s = s;
    p->owned = true;
    p->start_ticks = e->start_ticks;
    if (ps->hooks.joined && !ps->hooks.joined(ps->hooks.ud, p, why, sizeof(why))) {
        ps->n--;
        session_close(s);
        free(s);
        free(p);
        skip(ps, e, APROF_E_INTERNAL, why);
        return;
    }
    e->state = SEEN_SAMPLED;
    ps->joined_total++;
}

static void look_at(procset *ps, pid_t pid, uint64_t now)
{
    uint64_t start;
    char comm[16];
    if (!proc_identity(pid, &start, comm, sizeof(comm)))
        return; /* gone */
    procset_seen *e = find_seen(ps, pid, start);
    if (e && e->state == SEEN_SKIPPED && e->pid && strcmp(e->comm, comm) != 0) {
        e->state = SEEN_WAITING; /* it exec'd since: perhaps a Python now */
        e->first_try_ns = e->next_try_ns = now;
    }
    if (!e) {
        /* a reused pid: forget what the old process was */
        for (size_t i = 0; i < ps->nseen; i++)
            if (ps->seen[i].pid == pid && ps->seen[i].state != SEEN_SAMPLED)
                ps->seen[i].state = SEEN_SKIPPED, ps->seen[i].pid = 0;
        e = add_seen(ps, pid, start, now);
        if (!e)
            return;
    }
    snprintf(e->comm, sizeof(e->comm), "%s", comm);
    if (e->state == SEEN_WAITING && now >= e->next_try_ns)
        try_open(ps, e, now);
}

void procset_refresh(procset *ps, uint64_t now_ns, bool force)
{
    if (!ps->follow || (!force && now_ns < ps->next_scan_ns))
        return;
    ps->next_scan_ns = now_ns + PROCSET_SCAN_NS;
    if (!ps->root_gone) {
        if (!proc_alive(ps->root))
            ps->root_gone = true;
        else if (!procset_find(ps, ps->root))
            look_at(ps, ps->root, now_ns);
    }
    pid_t kids[PROCSET_MAX * 4];
    int n = proc_descendants(ps->root, kids, sizeof(kids) / sizeof(kids[0]));
    for (int i = 0; i < n && i < (int)(sizeof(kids) / sizeof(kids[0])); i++)
        if (!procset_find(ps, kids[i]))
            look_at(ps, kids[i], now_ns);
}

void procset_drop(procset *ps, size_t i, bool exited)
{
    if (i >= ps->n)
        return;
    procset_proc *p = ps->procs[i];
    p->exited = exited;
    if (ps->hooks.left)
        ps->hooks.left(ps->hooks.ud, p);
    procset_seen *e = find_seen(ps, p->s->src.pid, p->start_ticks);
    if (e) {
        /* alive but unreadable: it exec'd (or its interpreter is shutting down); look again */
        e->state = exited ? SEEN_SKIPPED : SEEN_WAITING;
        e->first_try_ns = e->next_try_ns = ps->next_scan_ns;
    }
    if (p->owned) {
        session_close(p->s);
        free(p->s);
    }
    free(p);
    memmove(&ps->procs[i], &ps->procs[i + 1], (ps->n - i - 1) * sizeof(ps->procs[0]));
    ps->n--;
}

void procset_free(procset *ps)
{
    while (ps->n)
        procset_drop(ps, ps->n - 1, false);
    free(ps->seen);
    memset(ps, 0, sizeof(*ps));
}
