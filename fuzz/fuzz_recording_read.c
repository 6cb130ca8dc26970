/* libFuzzer: src/output/recording_read.c (and through it src/core/json_pull.c and the pprof and
 * gzip readers) on arbitrary bytes as a recording, then the comparison of what was read. */
#include "fuzz_input.h"
#include "recording_diff.h"
#include "recording_read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_input_file(data, size, path, sizeof path);
    recording r = {0}, empty = {0};
    aprof_error err = {0};
    if (recording_add_file(&r, path, &err) == APROF_OK) {
        rec_diff d;
        if (recording_diff(&empty, &r, &d) == 0)
            rec_diff_free(&d);
    } else if (!err.msg[0]) {
        abort(); /* a refusal always says why */
    }
    recording_free(&r);
    close(fd);
    return 0;
}
