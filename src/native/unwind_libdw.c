/* Unwinding with libdw (--unwinder dw): elfutils' own unwinder on native_symbols' Dwfl, with
 * thread callbacks that hand it the registers we read with PTRACE_GETREGS and memory through
 * the unwinder's caches (libdw would otherwise read words one PTRACE_PEEKDATA at a time). */
#include "unwinder_impl.h"

#include <elfutils/libdwfl.h>
#include <stdlib.h>

typedef struct dw_impl {
    Dwfl *dwfl;
} dw_impl;

typedef struct frame_walk {
    unwind_frame *frames;
    uint32_t n, max;
    bool cut;
} frame_walk;

static pid_t next_thread(Dwfl *dwfl, void *arg, void **thread_argp)
{
    (void)dwfl, (void)arg, (void)thread_argp;
    return 0; /* threads are only ever asked for by id */
}

static bool get_thread(Dwfl *dwfl, pid_t tid, void *arg, void **thread_argp)
{
    (void)dwfl;
    unwinder *u = arg;
    if (tid != u->tid)
        return false;
    *thread_argp = u;
    return true;
}

static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
    (void)dwfl;
    return unwinder_read(arg, addr, result, sizeof(*result)) == 0;
}

static bool set_initial_registers(Dwfl_Thread *thread, void *thread_arg)
{
    unwinder *u = thread_arg;
    uint64_t regs[UNW_DWARF_NREGS];
    unwinder_dwarf_regs(&u->regs, regs);
    Dwarf_Word w[UNW_DWARF_NREGS];
    for (int i = 0; i < UNW_DWARF_NREGS; i++)
        w[i] = regs[i];
    if (!dwfl_thread_state_registers(thread, 0, UNW_DWARF_NREGS, w))
        return false;
    dwfl_thread_state_register_pc(thread, u->regs.rip);
    return true;
}

static const Dwfl_Thread_Callbacks callbacks = {
    .next_thread = next_thread,
    .get_thread = get_thread,
    .memory_read = memory_read,
    .set_initial_registers = set_initial_registers,
    .detach = NULL,
    .thread_detach = NULL,
};

static void *dw_create(unwinder *u)
{
    dw_impl *im = calloc(1, sizeof(*im));
    if (!im)
        return NULL;
    im->dwfl = native_symbols_dwfl(u->ns);
    if (!dwfl_attach_state(im->dwfl, NULL, u->pid, &callbacks, u)) {
        free(im);
        return NULL;
    }
    return im;
}

static void dw_destroy(void *impl)
{
    free(impl); /* the process state goes with the Dwfl (dwfl_end) */
}

static int on_frame(Dwfl_Frame *state, void *arg)
{
    frame_walk *w = arg;
    Dwarf_Addr pc = 0;
    bool activation = false;
    if (!dwfl_frame_pc(state, &pc, &activation) || pc == 0)
        return DWARF_CB_ABORT;
    Dwarf_Word sp = 0;
    if (dwfl_frame_reg(state, 7, &sp) != 0)
        sp = 0;
    w->frames[w->n++] = (unwind_frame){pc, sp, activation};
    if (w->n >= w->max) {
        w->cut = true;
        return DWARF_CB_ABORT;
    }
    return DWARF_CB_OK;
}

static int dw_unwind(void *impl, unwinder *u, unwind_frame *frames, uint32_t max, bool *complete)
{
    dw_impl *im = impl;
    frame_walk w = {frames, 0, max, false};
    int rc = dwfl_getthread_frames(im->dwfl, u->tid, on_frame, &w);
    /* 0: libdw reached a frame whose return address is undefined (the outermost one). */
    *complete = rc == 0 && !w.cut;
    if (w.n == 0 && rc != 0)
        return -1;
    return (int)w.n;
}

const unwinder_ops unwind_libdw_ops = {"dw", dw_create, dw_destroy, dw_unwind};
