/* libFuzzer: `aprof dump --core` on arbitrary bytes as a core file, so every reader of the
 * target's memory (thread and interpreter lists, frame chains, code objects and line tables,
 * strings, ints, tuples, dicts, sets, the asyncio task graph, debug offsets) meets hostile
 * memory through the core backend. Seeds (fuzz/corpus/fuzz_core_dump) are cores of the fixtures
 * shrunk to the bytes a dump reads (tools/core_shrink.c): the files they map (the interpreter,
 * libpython, _asyncio) are read from this machine, by path and build id, as a dump does; a seed
 * whose files are not here still fuzzes the core parser and the interpreter discovery. */
#include "cli.h"
#include "fuzz_input.h"

#include <elf.h>
#include <fcntl.h>
#include <string.h>

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

/* Where the memory bytes start: after the ELF header, program headers and notes. 0 when the
 * input is not a core this harness recognises. */
static size_t memory_start(const uint8_t *d, size_t size)
{
    Elf64_Ehdr eh;
    if (size < sizeof eh)
        return 0;
    memcpy(&eh, d, sizeof eh);
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_phentsize != sizeof(Elf64_Phdr) ||
        eh.e_phoff > size || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > size - eh.e_phoff)
        return 0;
    uint64_t start = size;
    for (size_t i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, d + eh.e_phoff + i * sizeof ph, sizeof ph);
        if (ph.p_type == PT_LOAD && ph.p_filesz && ph.p_offset < start)
            start = ph.p_offset;
    }
    return start < size ? (size_t)start : 0;
}

/* Most mutations go to the memory the readers read (a window of it, the size kept), so that
 * inputs get past the core's headers: 1 in 8 mutates the whole input as libFuzzer would. */
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
    size_t mem = memory_start(data, size);
    if (!mem || seed % 8 == 0)
        return LLVMFuzzerMutate(data, size, max_size);
    size_t span = size - mem;
    size_t at = mem + (size_t)((seed / 8) % span);
    size_t w = size - at < 256 ? size - at : 256;
    uint8_t win[256];
    memcpy(win, data + at, w);
    size_t got = LLVMFuzzerMutate(win, w, w);
    memcpy(data + at, win, got < w ? got : w);
    return size;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* the dump's output (JSON on stdout) is not wanted */
    int null = open("/dev/null", O_WRONLY);
    if (null < 0 || dup2(null, STDOUT_FILENO) < 0)
        abort();
    close(null);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_input_file(data, size, path, sizeof path);
    char *argv[] = {"dump", "--core", path, "--json", NULL};
    (void)cmd_dump(4, argv);
    fflush(stdout);
    close(fd);
    return 0;
}
