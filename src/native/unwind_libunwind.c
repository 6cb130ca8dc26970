/* Unwinding with libunwind (the default): a remote address space whose accessors read through
 * the unwinder's caches. Unwind tables are found by us (native_symbols: the module's
 * .eh_frame_hdr) and searched by libunwind's DWARF code; with the global caching policy,
 * libunwind remembers the register-save rules of every return address it has seen, so a
 * steady-state sample parses almost no CFI. */
#include "unwinder_impl.h"

#include <libunwind.h>
#include <stdlib.h>
#include <string.h>

/* libunwind's search of a remote .eh_frame_hdr table. Exported by libunwind-generic (it is
 * what libunwind-ptrace and libunwind-coredump call) but not declared in its public headers. */
extern int UNW_OBJ(dwarf_search_unwind_table)(unw_addr_space_t as, unw_word_t ip,
                                              unw_dyn_info_t *di, unw_proc_info_t *pi,
                                              int need_unwind_info, void *arg);

#define RS_CACHE_SIZE 4096

typedef struct lu_impl {
    unw_addr_space_t as;
    uint64_t gen;
} lu_impl;

static int find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
                          int need_unwind_info, void *arg)
{
    unwinder *u = arg;
    native_unwind_table t;
    if (native_symbols_unwind_table(u->ns, ip, &t) != 0)
        return -UNW_ENOINFO;
    unw_dyn_info_t di;
    memset(&di, 0, sizeof(di));
    di.start_ip = t.start_ip;
    di.end_ip = t.end_ip;
    di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
    di.gp = 0;
    di.u.rti.name_ptr = 0;
    di.u.rti.segbase = t.segbase;
    di.u.rti.table_data = t.table_data;
    /* In words: each entry is two 4-byte offsets. */
    di.u.rti.table_len = t.fde_count * 8 / sizeof(unw_word_t);
    return UNW_OBJ(dwarf_search_unwind_table)(as, ip, &di, pi, need_unwind_info, arg);
}

static void put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
    /* Only called for dynamically registered unwind info, which a remote target never has:
     * libunwind frees what its DWARF search allocated itself. */
    (void)as, (void)pi, (void)arg;
}

static int get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *addr, void *arg)
{
    (void)as, (void)addr, (void)arg;
    return -UNW_ENOINFO;
}

static int access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write, void *arg)
{
    (void)as;
    if (write)
        return -UNW_EINVAL;
    return unwinder_read(arg, addr, val, sizeof(*val)) == 0 ? 0 : -UNW_EINVAL;
}

static int access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val, int write, void *arg)
{
    (void)as;
    unwinder *u = arg;
    if (write || reg < 0 || reg >= UNW_DWARF_NREGS)
        return -UNW_EBADREG;
    uint64_t regs[UNW_DWARF_NREGS];
    unwinder_dwarf_regs(&u->regs, regs);
    *val = regs[reg];
    return 0;
}

static int access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write,
                        void *arg)
{
    (void)as, (void)reg, (void)val, (void)write, (void)arg;
    return -UNW_EBADREG;
}

static int resume(unw_addr_space_t as, unw_cursor_t *c, void *arg)
{
    (void)as, (void)c, (void)arg;
    return -UNW_EINVAL;
}

static int get_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf, size_t len,
                         unw_word_t *off, void *arg)
{
    (void)as, (void)addr, (void)buf, (void)len, (void)off, (void)arg;
    return -UNW_ENOINFO;
}

static unw_accessors_t accessors = {
    .find_proc_info = find_proc_info,
    .put_unwind_info = put_unwind_info,
    .get_dyn_info_list_addr = get_dyn_info_list_addr,
    .access_mem = access_mem,
    .access_reg = access_reg,
    .access_fpreg = access_fpreg,
    .resume = resume,
    .get_proc_name = get_proc_name,
};

static void *lu_create(unwinder *u)
{
    lu_impl *im = calloc(1, sizeof(*im));
    if (!im)
        return NULL;
    im->as = unw_create_addr_space(&accessors, 0);
    if (!im->as) {
        free(im);
        return NULL;
    }
    unw_set_caching_policy(im->as, UNW_CACHE_GLOBAL);
    unw_set_cache_size(im->as, RS_CACHE_SIZE, 0);
    im->gen = native_symbols_generation(u->ns);
    return im;
}

static void lu_destroy(void *impl)
{
    lu_impl *im = impl;
    if (!im)
        return;
    unw_destroy_addr_space(im->as);
    free(im);
}

static int lu_unwind(void *impl, unwinder *u, unwind_frame *frames, uint32_t max, bool *complete)
{
    lu_impl *im = impl;
    uint64_t gen = native_symbols_generation(u->ns);
    if (gen != im->gen) {
        /* Code moved or went away: cached register-save rules may describe other code now. */
        unw_flush_cache(im->as, 0, 0);
        im->gen = gen;
    }
    unw_cursor_t c;
    if (unw_init_remote(&c, im->as, u) != 0)
        return -1;
    uint32_t n = 0;
    bool exact = true;
    uint64_t prev_sp = 0;
    *complete = false;
    while (n < max) {
        unw_word_t ip = 0, sp = 0;
        if (unw_get_reg(&c, UNW_REG_IP, &ip) != 0 || ip == 0)
            break;
        unw_get_reg(&c, UNW_REG_SP, &sp);
        if (n > 0 && sp < prev_sp && !exact)
            break; /* stacks grow down: an older frame below a newer one is garbage */
        frames[n++] = (unwind_frame){ip, sp, exact};
        prev_sp = sp;
        exact = unw_is_signal_frame(&c) > 0; /* the frame a signal interrupted is exact */
        int r = unw_step(&c);
        if (r == 0) {
            *complete = true;
            break;
        }
        if (r < 0)
            break;
    }
    return (int)n;
}

const unwinder_ops unwind_libunwind_ops = {"libunwind", lu_create, lu_destroy, lu_unwind};
