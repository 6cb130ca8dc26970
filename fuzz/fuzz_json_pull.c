/* libFuzzer: src/core/json_pull.c on arbitrary bytes: every token to the end or the error,
 * and json_skip from each container start. */
#include "json_pull.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* exactly size bytes, no terminating NUL: a read past the end is caught by ASan */
    char *text = malloc(size ? size : 1);
    memcpy(text, data, size);
    json_pull j;
    json_pull_init(&j, text, size);
    for (size_t i = 0; i < 1000000; i++) {
        jtok t = json_next(&j);
        if (t == JT_ERROR || t == JT_EOF)
            break;
        if ((t == JT_BEGIN_ARRAY || t == JT_BEGIN_OBJECT) && (i & 1) && !json_skip(&j, t))
            break;
    }
    json_pull_free(&j);
    free(text);
    return 0;
}
