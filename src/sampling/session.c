#include "session.h"

#include "clock.h"
#include "core_file.h"
#include "native_stack.h"
#include "redact.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

aprof_status session_status_of(pyrt_status st)
{
    switch (st) {
    case PYRT_OK: return APROF_OK;
    case PYRT_NO_PROCESS: return APROF_E_NO_PROCESS;
    case PYRT_PERMISSION: return APROF_E_PERMISSION;
    case PYRT_NOT_PYTHON: return APROF_E_NOT_PYTHON;
    case PYRT_NOT_READY: return APROF_E_NOT_READY;
    case PYRT_UNSUPPORTED: return APROF_E_UNSUPPORTED;
    case PYRT_MISSING_FILE: return APROF_E_MISSING_FILE;
    case PYRT_INTERNAL: break;
    }
    return APROF_E_INTERNAL;
}

aprof_status session_open(session *s, pid_t pid, aprof_error *err)
{
    return session_open_shared(s, pid, NULL, err);
}

static aprof_status open_src(session *s, target_src src, strtab *strings, aprof_error *err)
{
    memset(s, 0, sizeof(*s));
    pid_t pid = src.pid;
    s->src = src;
    char msg[768];
    pyrt_status st = pyruntime_locate_src(&src, &s->rt, msg, sizeof(msg));
    if (st == PYRT_PERMISSION)
        return aprof_error_set(err, APROF_E_PERMISSION,
                               "%s: run aprof as root or the target's user with CAP_SYS_PTRACE, "
                               "and check kernel.yama.ptrace_scope (docs/troubleshooting.md)", msg);
    if (st != PYRT_OK)
        return aprof_error_set(err, session_status_of(st), "%s", msg);
    if (mem_init(&s->m, src) != 0)
        return aprof_error_set(err, APROF_E_INTERNAL, "out of memory");
    s->shared_strings = strings != NULL;
    s->st = strings ? strings : strtab_new();
    s->stat = src.core ? NULL : proc_stat_cache_new(pid);
    if (!s->st || (!s->stat && !src.core) || pystack_init(&s->ps, &s->rt, &s->m, s->st) != 0) {
        session_close(s);
        return aprof_error_set(err, APROF_E_INTERNAL, "out of memory");
    }
    s->names = threadnames_new(src.core ? 0 : pid, &s->m, &s->rt.layout, s->st,
                               pyruntime_first_interp(&s->rt, &s->m));
    if (!s->names) {
        session_close(s);
        return aprof_error_set(err, APROF_E_INTERNAL, "out of memory");
    }
    s->ps.names.lookup = threadnames_lookup;
    s->ps.names.ud = s->names;
    if (src.core)
        snprintf(s->cmdline, sizeof(s->cmdline), "%s", core_command(src.core));
    else
        proc_cmdline(pid, s->cmdline, sizeof(s->cmdline));
    return APROF_OK;
}

aprof_status session_open_shared(session *s, pid_t pid, strtab *strings, aprof_error *err)
{
    return open_src(s, target_src_live(pid), strings, err);
}

aprof_status session_open_core(session *s, core_file *core, aprof_error *err)
{
    return open_src(s, (target_src){core_pid(core), core}, NULL, err);
}

void session_close(session *s)
{
    if (!s->src.pid)
        return; /* never opened */
    native_stack_close(s->native);
    pystack_free(&s->ps);
    threadnames_free(s->names);
    if (s->stat)
        proc_stat_cache_free(s->stat);
    if (!s->shared_strings)
        strtab_free(s->st);
    mem_free(&s->m);
    memset(s, 0, sizeof(*s));
}

static bool is_poll_syscall(long nr)
{
    /* x86-64: poll, select, pselect6, ppoll, epoll_wait, epoll_pwait, epoll_pwait2 */
    return nr == 7 || nr == 23 || nr == 270 || nr == 271 || nr == 232 || nr == 281 || nr == 441;
}

/* A loop thread is idle when it is back in its selector. For loops written in C, like uvloop,
 * the kernel (a poll syscall) is the only witness. */
/* The syscall a thread is blocked in (-1: in user space, -2: unknown): from /proc, or from the
 * registers a core saved (orig_rax is the syscall number while in one, else -1). */
static long thread_syscall(session *s, pid_t tid)
{
    if (s->src.core) {
        const core_thread *ct = core_thread_of(s->src.core, tid);
        return ct ? (long)(int64_t)ct->regs[CORE_ORIG_RAX] : -2;
    }
    return proc_thread_syscall_cached(s->stat, tid);
}

static void classify_loop_thread(session *s, aprof_thread_sample *t)
{
    long nr = thread_syscall(s, t->tid);
    t->syscall = (int32_t)nr;
    /* Polling = in the selector's select() (Python view; this includes a non-blocking poll
     * between two busy iterations), or blocked in a poll syscall while no callback runs (a poll
     * made by a callback itself is blocking, not idling). */
    /* For asyncio's own loop the Python view is conclusive, and the kernel's is read after the
     * stack: a loop busy in its own code when its stack was read may be back in epoll_wait by
     * then, and would be counted idle. Loops in C have only the kernel's. */
    if (t->loop == LOOP_NATIVE && nr >= 0 && is_poll_syscall(nr) && t->callback_frame < 0)
        t->loop_idle = 1;
    if (t->loop_idle) {
        t->callback_frame = -1;
        t->callback_id = 0;
    }
}

asyncio_reader *session_asyncio_reader(session *s)
{
    asyncio_target t = {.pid = s->src.pid, .core = s->src.core, .m = &s->m, .rt = &s->rt, .st = s->st, .cc = s->ps.cc,
                        .redact = s->redact};
    return asyncio_reader_new(&t);
}

aprof_status session_enable_native(session *s, const char *unwinder_name, aprof_error *err)
{
    unwinder_kind kind;
    if (!unwinder_parse_kind(unwinder_name, &kind))
        return aprof_error_set(err, APROF_E_USAGE, "--unwinder: '%s' is not one of libunwind, dw",
                               unwinder_name);
    int e = native_stack_open(&s->native, s->src, s->st, kind);
    if (e == EPERM || e == EACCES)
        return aprof_error_set(
            err, APROF_E_PERMISSION,
            "--native needs to stop process %d with ptrace, which is not permitted (%s): run "
            "aprof as root or as the target's user with CAP_SYS_PTRACE, make sure no debugger is "
            "attached to it, and check kernel.yama.ptrace_scope (docs/troubleshooting.md)",
            (int)s->src.pid, strerror(e));
    if (e == ESRCH)
        return aprof_error_set(err, APROF_E_NO_PROCESS, "process %d exited", (int)s->src.pid);
    if (e != 0)
        return aprof_error_set(err, APROF_E_INTERNAL,
                               "cannot prepare native unwinding of process %d: %s", (int)s->src.pid,
                               strerror(e));
    if (s->redact)
        native_stack_redact_paths(s->native);
    s->ps.want_gil = true;
    s->ps.gc_leaf = false; /* the collector's own C frames show where it runs */
    s->want_state = true;
    return APROF_OK;
}

void session_enable_redaction(session *s)
{
    s->redact = true;
    codecache_redact_paths(s->ps.cc);
    if (s->native)
        native_stack_redact_paths(s->native);
    snprintf(s->cmdline, sizeof(s->cmdline), "%s", REDACT_COMMAND_LINE);
    char shown[sizeof(s->rt.binary)];
    redact_path(s->rt.binary, shown, sizeof(shown));
    memcpy(s->rt.binary, shown, sizeof(shown));
}

aprof_status session_enable_marks(session *s, aprof_error *err)
{
    if (threadstate_marks_init(&s->marks, s->st) != 0)
        return aprof_error_set(err, APROF_E_INTERNAL, "out of memory");
    s->mark_state = true;
    s->ps.want_gil = true;
    s->want_state = true;
    return APROF_OK;
}

static char read_state(void *ud, pid_t tid)
{
    return proc_thread_state(ud, tid);
}

static int read_python(void *ud, aprof_sample *out)
{
    session *s = ud;
    /* --native reads run states itself, right before stopping each thread */
    s->ps.states.read = s->want_state && !s->native && s->stat ? read_state : NULL;
    s->ps.states.ud = s->stat;
    return pystack_sample(&s->ps, out, aprof_now_ns());
}

void session_prune_threads(session *s)
{
    enum { MAX_TIDS = 8192 };
    if (!s->stat)
        return; /* a core file */
    pid_t *tids = malloc(MAX_TIDS * sizeof(*tids));
    if (!tids)
        return;
    int n = proc_list_threads(s->src.pid, tids, MAX_TIDS);
    if (n >= 0 && n <= MAX_TIDS)
        proc_stat_cache_prune(s->stat, tids, (size_t)n);
    free(tids);
}

int session_sample(session *s, aprof_sample *out)
{
    /* --native reads run states itself, right before stopping each thread: read afterwards,
     * every thread would look runnable (it was just resumed). */
    int n = s->native ? native_stack_sample(s->native, out, read_python, s,
                                            s->want_state ? s->stat : NULL)
                      : read_python(s, out);
    if (n < 0)
        return -1;
    out->pid = s->src.pid;
    for (uint32_t i = 0; i < out->nthreads; i++) {
        aprof_thread_sample *t = &out->threads[i];
        /* A core keeps no run state; its saved registers tell a thread blocked in a syscall
         * (sleeping, as the kernel would have said but for a busy-waiting syscall) from one
         * in user space (running or runnable). */
        if (s->src.core && s->want_state)
            t->state = thread_syscall(s, t->tid) >= 0 ? TS_SLEEPING : TS_RUNNING;
        if (t->loop != LOOP_NONE && !(t->flags & TSF_TORN))
            classify_loop_thread(s, t);
        if (s->mark_state)
            threadstate_prepend_mark(&s->marks, t);
    }
    return n;
}
