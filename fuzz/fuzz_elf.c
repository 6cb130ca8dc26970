/* libFuzzer: the readers of ELF files on disk, on mutated ELF files: interpreter discovery's
 * src/target/elfimage.c (program headers, symbols from .dynsym and .symtab, sections, debug
 * info) and the native unwinder's src/native/native_functions.c (the .eh_frame_hdr search
 * table, FDE lengths, split-off parts found by decoding jumps). The input is written to a file
 * (the readers open a path or a descriptor, as they do a target's python or libpython) and
 * every lookup aprof makes is tried on it. Seeds: small ELF files of this machine, copied by
 * scripts/fuzz.sh into the work directory (not committed: they are the system's). */
#include "elfimage.h"
#include "native_functions.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

/* libFuzzer ends a run with exit(): the scratch file goes with it (a crash keeps it) */
static void remove_scratch(void)
{
    unlink(path);
}

static void probe_functions(int fd)
{
    Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (!e)
        return;
    native_functions *f = native_functions_load(e);
    if (f) {
        /* every FDE start found by walking from 0 in the table's own steps, and its parts */
        uint64_t at = 0;
        fn_range r, parts[8];
        for (int i = 0; i < 4096; i++) {
            if (!native_functions_find(f, at, &r) || r.end <= at) {
                at += 4096;
                if (at > (1ull << 32))
                    break;
                continue;
            }
            native_functions_split_parts(f, r.start, parts, 8);
            at = r.end;
        }
        native_functions_free(f);
    }
    elf_end(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        snprintf(path, sizeof(path), "/tmp/aprof-fuzz-elf-%d", (int)getpid());
        atexit(remove_scratch);
        elf_version(EV_CURRENT);
    }
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    elf_image img;
    if (elf_image_open(path, &img) == 0) {
        const char *names[] = {"_PyRuntime", "Py_Version", "_PyEval_EvalFrameDefault",
                               "_Py_AsyncioDebug", "main"};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            uint64_t v, sz;
            elf_image_symbol(&img, names[i], &v, &sz);
        }
        const char *sections[] = {".PyRuntime", ".AsyncioDebug", ".eh_frame_hdr", ".text"};
        for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
            uint64_t addr, sz;
            const uint8_t *bytes = NULL;
            if (elf_image_section(&img, sections[i], &addr, &sz, &bytes) == 0 && bytes && sz) {
                volatile uint8_t sink = bytes[0] ^ bytes[sz - 1]; /* the data is really there */
                (void)sink;
            }
        }
        elf_image_has_debug_info(&img);
        elf_image_close(&img);
    }
    probe_functions(fd);
    close(fd);
    return 0;
}
