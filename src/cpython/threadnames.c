#include "threadnames.h"

#include "proc.h"
#include "pyobj.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_NAMES 1024

typedef struct name_entry {
    uint64_t ident; /* threading.get_ident() */
    pid_t tid;
    const char *name;
    bool from_python;
} name_entry;

struct threadnames {
    pid_t pid;
    mem *m;
    const py_layout *L;
    strtab *st;
    uint64_t interp;
    uint64_t last_refresh_ns;
    name_entry e[MAX_NAMES];
    size_t n;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

threadnames *threadnames_new(pid_t pid, mem *m, const py_layout *L, strtab *st, uint64_t interp)
{
    threadnames *tn = calloc(1, sizeof(*tn));
    if (!tn)
        return NULL;
    tn->pid = pid;
    tn->m = m;
    tn->L = L;
    tn->st = st;
    tn->interp = interp;
    return tn;
}

void threadnames_free(threadnames *tn)
{
    free(tn);
}

typedef struct collect_ctx {
    threadnames *tn;
    const pyobj_ctx *c;
} collect_ctx;

static void put(threadnames *tn, uint64_t ident, pid_t tid, const char *name, bool from_python)
{
    for (size_t i = 0; i < tn->n; i++) {
        if ((ident && tn->e[i].ident == ident) || (!ident && tid && tn->e[i].tid == tid)) {
            if (from_python || !tn->e[i].from_python) {
                tn->e[i].name = name;
                tn->e[i].from_python = from_python;
                if (tid)
                    tn->e[i].tid = tid;
            }
            return;
        }
    }
    if (tn->n == MAX_NAMES)
        tn->n = 0; /* rare: a target with more than MAX_NAMES threads over time; start over */
    tn->e[tn->n++] = (name_entry){ident, tid, name, from_python};
}

/* threading._active maps get_ident() values to Thread objects; their `_name` is Thread.name. */
static bool on_active(void *ud, uint64_t key, uint64_t value)
{
    collect_ctx *cc = ud;
    int64_t ident;
    uint64_t name_obj;
    const char *name;
    if (pyobj_int_value(cc->c, key, &ident) != PYOBJ_OK)
        return true;
    if (pyobj_getattr(cc->c, value, "_name", &name_obj) != PYOBJ_OK)
        return true;
    if (pyobj_str_intern(cc->c, name_obj, cc->tn->st, &name) < 0)
        return true;
    put(cc->tn, (uint64_t)ident, 0, name, true);
    return true;
}

static void refresh_python_names(threadnames *tn)
{
    if (!tn->interp || tn->L->interp.modules == LAYOUT_ABSENT)
        return;
    pyobj_ctx c = {tn->m, tn->L};
    uint64_t modules, threading, active;
    if (mem_read_u64(tn->m, tn->interp + (uint64_t)tn->L->interp.modules, &modules) != 0)
        return;
    if (pyobj_module_find(&c, modules, "threading", &threading) != PYOBJ_OK)
        return;
    if (pyobj_module_global(&c, threading, "_active", &active) != PYOBJ_OK)
        return;
    collect_ctx cc = {tn, &c};
    pyobj_dict_iter(&c, active, on_active, &cc);
}

static name_entry *find(threadnames *tn, uint64_t ident, pid_t tid)
{
    for (size_t i = 0; i < tn->n; i++)
        if (tn->e[i].ident == ident && (tn->e[i].from_python || tn->e[i].tid == tid))
            return &tn->e[i];
    return NULL;
}

const char *threadnames_lookup(void *ud, uint64_t ident, pid_t tid, bool is_main)
{
    threadnames *tn = ud;
    name_entry *e = find(tn, ident, tid);
    if (e && e->from_python)
        return e->name;
    /* A thread seen for the first time: ask `threading` at once. Known only by its kernel
     * name (not registered yet, or not a `threading` thread): ask again, but not too often. */
    uint64_t now = now_ns();
    if (!e || now - tn->last_refresh_ns >= THREADNAMES_REFRESH_NS) {
        tn->last_refresh_ns = now;
        refresh_python_names(tn);
        e = find(tn, ident, tid);
    }
    if (e)
        return e->name;
    /* Not known to `threading` (not imported, or a thread it did not start): the main thread
     * is still "MainThread" to Python; others get their kernel name. */
    char comm[64];
    if (is_main)
        snprintf(comm, sizeof(comm), "MainThread");
    else if (tn->pid)
        proc_thread_comm(tn->pid, tid, comm, sizeof(comm));
    else
        comm[0] = '\0'; /* a core file: no kernel names */
    const char *name = strtab_intern_cstr(tn->st, comm[0] ? comm : "?");
    if (!name)
        return "?";
    put(tn, ident, tid, name, false);
    return name;
}
