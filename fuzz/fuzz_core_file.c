/* libFuzzer: src/target/core_file.c on arbitrary bytes as a core file: open, maps, maps text,
 * reads at every mapping's edges, the mapped-file lookup and the thread registers. */
#include "core_file.h"
#include "fuzz_input.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], msg[512];
    int fd = fuzz_input_file(data, size, path, sizeof path);
    core_file *c = NULL;
    if (core_open(path, &c, msg, sizeof msg) == CORE_OK) {
        proc_maps maps;
        if (core_maps(c, &maps) == 0) {
            for (size_t i = 0; i < maps.n && i < 64; i++) {
                uint8_t buf[64];
                const uint64_t at[] = {maps.maps[i].start, maps.maps[i].end - 8,
                                       maps.maps[i].start + 4090};
                for (size_t k = 0; k < 3; k++) {
                    struct iovec local = {buf, sizeof buf},
                                 remote = {(void *)(uintptr_t)at[k], sizeof buf};
                    core_readv(c, &local, 1, &remote);
                }
                if (maps.maps[i].path) {
                    char out[4096], why[512];
                    core_mapped_file_path(c, maps.maps[i].start, maps.maps[i].path, out,
                                          sizeof out, why, sizeof why);
                }
            }
            proc_maps_free(&maps);
        }
        size_t len;
        free(core_maps_text(c, &len));
        const core_thread *t;
        size_t n = core_threads(c, &t);
        for (size_t i = 0; i < n; i++)
            if (core_thread_of(c, t[i].tid) == NULL)
                abort(); /* every listed thread must be found again */
        (void)core_command(c);
        core_close(c);
    }
    close(fd);
    return 0;
}
