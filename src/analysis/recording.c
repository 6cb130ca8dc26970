#include "recording.h"

#include <stdlib.h>
#include <string.h>

void recording_free(recording *r)
{
    for (size_t i = 0; i < r->nfunctions; i++) {
        free(r->functions[i].name);
        free(r->functions[i].file);
    }
    for (size_t i = 0; i < r->nculprits; i++) {
        free(r->culprits[i].function);
        free(r->culprits[i].file);
    }
    free(r->functions);
    free(r->culprits);
    free(r->path);
    memset(r, 0, sizeof(*r));
}
