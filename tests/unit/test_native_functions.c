/* native_functions (src/native/native_functions.c) on this test's own executable: every
 * function symbol of its .symtab (the ground truth a stripped file lacks) must be found as one
 * FDE that starts at the symbol and is as long as it, from anywhere inside it; and the split
 * part search finds nothing for an ordinary function. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "native_functions.h"

#include <fcntl.h>
#include <gelf.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct self_elf {
    int fd;
    Elf *elf;
} self_elf;

static void open_self(self_elf *s)
{
    elf_version(EV_CURRENT);
    s->fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    assert_true(s->fd >= 0);
    s->elf = elf_begin(s->fd, ELF_C_READ_MMAP, NULL);
    assert_non_null(s->elf);
}

static void close_self(self_elf *s)
{
    elf_end(s->elf);
    close(s->fd);
}

static void test_symbols_match_fdes(void **state)
{
    (void)state;
    self_elf s;
    open_self(&s);
    native_functions *f = native_functions_load(s.elf);
    assert_non_null(f);
    size_t checked = 0, mismatched = 0;
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(s.elf, scn)) != NULL) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB)
            continue;
        Elf_Data *d = elf_getdata(scn, NULL);
        size_t n = sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
        for (size_t i = 0; d && i < n; i++) {
            GElf_Sym sym;
            if (!gelf_getsym(d, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
                sym.st_size < 16 || sym.st_value == 0)
                continue;
            const char *name = elf_strptr(s.elf, sh.sh_link, sym.st_name);
            /* this file's own code: compiled by the project's compiler with unwind tables */
            if (!name || strncmp(name, "test_", 5) != 0)
                continue;
            fn_range r;
            uint64_t mid = sym.st_value + sym.st_size / 2;
            if (!native_functions_find(f, mid, &r) || r.start != sym.st_value ||
                r.end != sym.st_value + sym.st_size) {
                fprintf(stderr, "%s: symbol %#lx+%lu, FDE %#lx-%#lx\n", name,
                        (unsigned long)sym.st_value, (unsigned long)sym.st_size,
                        (unsigned long)r.start, (unsigned long)r.end);
                mismatched++;
            }
            checked++;
            fn_range parts[4];
            assert_int_equal(native_functions_split_parts(f, sym.st_value, parts, 4), 0);
        }
    }
    assert_true(checked >= 2);
    assert_int_equal(mismatched, 0);
    fn_range r;
    assert_false(native_functions_find(f, 0, &r)); /* before every function */
    native_functions_free(f);
    close_self(&s);
}

static void test_no_table(void **state)
{
    (void)state;
    assert_null(native_functions_load(NULL));
    native_functions_free(NULL);
    fn_range r;
    assert_false(native_functions_find(NULL, 0x1000, &r));
    assert_int_equal(native_functions_split_parts(NULL, 0x1000, &r, 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_symbols_match_fdes),
        cmocka_unit_test(test_no_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
