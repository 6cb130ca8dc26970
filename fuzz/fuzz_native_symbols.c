/* libFuzzer: the native symbol cache (src/native/native_symbols.c, native_inline.c and, through
 * them, native_functions.c) on a mutated ELF file mapped into a process: module reporting from
 * maps text, symbol and line lookup (libdw's symbol tables and DWARF line tables, aprof's index
 * of inlined calls), names of unsymbolized code from the unwind tables, the evaluation loop's
 * split parts, and the .eh_frame_hdr search table handed to libunwind.
 *
 * The process is a small core file, written once, whose NT_FILE note maps the input file at
 * BASE; each input is written to that file and a fresh native_symbols is opened on the core
 * (the path `aprof dump --core --native` takes; a live target's maps come from the kernel,
 * which is not the hostile part: the files it names are). Then every lookup the native
 * unwinders make is tried at addresses spread over the mapping. Seeds: small ELF files of this
 * machine and a shared library with DWARF built from fuzz/native_seed.c (scripts/fuzz.sh). */
#include "core_file.h"
#include "native_symbols.h"
#include "strtab.h"

#include <elf.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef NT_FILE
#define NT_FILE 0x46494c45
#endif

#define BASE 0x10000000ull
#define SPAN (16ull << 20)
#define FAKE_PID 4242

static char elf_path[64], core_name[64];

/* libFuzzer ends a run with exit(): the scratch files go with it (a crash keeps them) */
static void remove_scratch(void)
{
    unlink(elf_path);
    unlink(core_name);
}

static size_t put_note(uint8_t *at, uint32_t type, const void *desc, uint32_t len)
{
    uint32_t hdr[3] = {5, len, type};
    memcpy(at, hdr, 12);
    memcpy(at + 12, "CORE\0\0\0", 8); /* "CORE" and its NUL, padded to 4 */
    memcpy(at + 20, desc, len);
    return 20 + ((len + 3u) & ~3u);
}

/* ELF header, one PT_NOTE: a thread (NT_PRSTATUS, only its pid set) and NT_FILE mapping
 * elf_path at BASE from file offset 0. No memory segments: nothing but the file is read. */
static void write_core(void)
{
    uint8_t notes[1024] = {0}, prstatus[336] = {0}, file[256] = {0};
    int32_t pid = FAKE_PID;
    memcpy(prstatus + 32, &pid, 4);
    uint64_t nt_file[5] = {1, 4096, BASE, BASE + SPAN, 0};
    memcpy(file, nt_file, sizeof nt_file);
    size_t name_len = strlen(elf_path) + 1;
    memcpy(file + sizeof nt_file, elf_path, name_len);
    size_t n = put_note(notes, NT_PRSTATUS, prstatus, sizeof prstatus);
    n += put_note(notes + n, NT_FILE, file, (uint32_t)(sizeof nt_file + name_len));

    Elf64_Ehdr eh = {0};
    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_CORE;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_phoff = sizeof eh;
    eh.e_ehsize = sizeof eh;
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = 1;
    Elf64_Phdr ph = {0};
    ph.p_type = PT_NOTE;
    ph.p_offset = sizeof eh + sizeof ph;
    ph.p_filesz = n;
    ph.p_align = 4;
    FILE *f = fopen(core_name, "wb");
    if (!f || fwrite(&eh, sizeof eh, 1, f) != 1 || fwrite(&ph, sizeof ph, 1, f) != 1 ||
        fwrite(notes, n, 1, f) != 1 || fclose(f) != 0)
        abort();
}

static void lookups(native_symbols *ns, bool verbose)
{
    native_unwind_table t;
    size_t known = 0, lines = 0, tables = 0;
    /* every 97 bytes over the first 48 KiB (small seeds keep their code there), then pages */
    for (uint64_t off = 0; off < 0xc000; off += 97) {
        const native_sym *s = native_symbols_lookup(ns, BASE + off, off & 1);
        if (!s || !s->name || !s->file)
            abort(); /* the contract: always a name and a file */
        known += s->known;
        lines += s->line > 0;
        if (off % (97 * 16) == 0)
            tables += native_symbols_unwind_table(ns, BASE + off, &t) == 0;
    }
    if (verbose) /* APROF_FUZZ_VERBOSE=1: how deep a seed gets (fuzz/README in docs/fuzzing.md) */
        fprintf(stderr, "fuzz_native_symbols: %zu of 507 addresses named by a symbol, %zu with a "
                "line, unwind table found %zu of 32 times\n", known, lines, tables);
    for (uint64_t off = 0xc000; off < SPAN; off += 0x1000 * 61)
        native_symbols_lookup(ns, BASE + off, false);
    /* outside the mapping: a miss rereads the maps (rate limited) and finds nothing */
    if (native_symbols_lookup(ns, BASE + SPAN + 0x1000, true) == NULL ||
        native_symbols_map_at(ns, BASE) == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!elf_path[0]) {
        snprintf(elf_path, sizeof elf_path, "/tmp/aprof-fuzz-nsym-%d.so", (int)getpid());
        snprintf(core_name, sizeof core_name, "/tmp/aprof-fuzz-nsym-%d.core", (int)getpid());
        atexit(remove_scratch);
        write_core();
    }
    int fd = open(elf_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        abort();
    if (size && write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
    char msg[512];
    core_file *core = NULL;
    if (core_open(core_name, &core, msg, sizeof msg) != CORE_OK)
        abort(); /* the core is ours: it always opens */
    strtab *st = strtab_new();
    native_symbols *ns = st ? native_symbols_new((target_src){FAKE_PID, core}, st) : NULL;
    if (ns) {
        if (size && (data[size - 1] & 1))
            native_symbols_redact_paths(ns);
        lookups(ns, getenv("APROF_FUZZ_VERBOSE") != NULL);
        native_symbols_refresh(ns); /* unchanged maps: everything cached stays */
        lookups(ns, false);
        native_symbols_free(ns);
    }
    strtab_free(st);
    core_close(core);
    return 0;
}
