/* A profiling session on one target process: everything needed to take samples of it. */
#ifndef APROF_SESSION_H
#define APROF_SESSION_H

#include "asyncio_reader.h"
#include "memory.h"
#include "status.h"
#include "proc.h"
#include "pyruntime.h"
#include "pystack.h"
#include "sample.h"
#include "strtab.h"
#include "target_src.h"
#include "threadnames.h"
#include "threadstate.h"

#include <stdbool.h>

struct native_stack;

typedef struct session {
    target_src src; /* the process (src.pid), live or as a core file records it (session_open_core) */
    pyruntime rt;
    mem m;
    strtab *st;
    bool shared_strings;         /* st belongs to the caller (session_open_shared) */
    pystack ps;
    threadnames *names;
    proc_stat_cache *stat;
    char cmdline[1024];
    bool want_state; /* read each thread's run state from /proc in every sample */
    struct native_stack *native; /* --native: merged native stacks (session_enable_native) */
    bool mark_state;             /* root every stack in a <state> mark frame (--native, --gil;
                                  * session_enable_marks) */
    threadstate_marks marks;
    bool redact;                 /* --redact (session_enable_redaction) */
} session;

/* Attach (read-only) to pid. APROF_OK, or a status with its message in err
 * (APROF_E_NOT_READY: a CPython interpreter not initialised yet; launch mode polls). */
aprof_status session_open(session *s, pid_t pid, aprof_error *err);
/* The same, interning the session's strings in `strings`, which the caller owns and which must
 * outlive the session: the sessions of several processes then share frames and names. */
aprof_status session_open_shared(session *s, pid_t pid, strtab *strings, aprof_error *err);
/* A session on a core file (core_file.h), which the caller owns and which must outlive it: the
 * same samples and asyncio reader as of a live process, without run states or kernel thread
 * names (a core has neither); a loop thread's syscall comes from its saved registers. */
aprof_status session_open_core(session *s, struct core_file *core, aprof_error *err);
void session_close(session *s);

/* Take one sample of every Python thread. Returns the number of threads, or -1 when the target
 * cannot be read (errno ESRCH: it exited). */
int session_sample(session *s, aprof_sample *out);

/* --native: from now on every sample stops the target, unwinds its threads' native stacks with
 * `unwinder_name` ("libunwind" or "dw") and merges them with the Python stacks (docs/native.md).
 * Also reads run states and the GIL holder. On failure returns a status with its message in err
 * (APROF_E_PERMISSION when the target may not be ptraced). */
aprof_status session_enable_native(session *s, const char *unwinder_name, aprof_error *err);

/* --native / --gil output: read run states and the GIL holder, and put a FRAME_MARK frame such
 * as "<running, GIL>" or "<sleeping>" at the root of every stack (threadstate.h). */
aprof_status session_enable_marks(session *s, aprof_error *err);

/* --redact: from now on, paths under home directories read as ~/..., task names as
 * placeholders, and the command line as REDACT_COMMAND_LINE in everything the session reads
 * (redact.h). Call it right after session_open, before sampling. */
void session_enable_redaction(session *s);

/* An asyncio reader of the session's target, sharing its memory, runtime, strings and code
 * cache (the session must outlive it). NULL when out of memory. */
asyncio_reader *session_asyncio_reader(session *s);

/* Forget per-thread /proc descriptors of threads that have exited (call now and then). */
void session_prune_threads(session *s);

/* The status of a pyruntime_locate result. */
aprof_status session_status_of(pyrt_status st);

#endif
