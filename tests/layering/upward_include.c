/* Built by the test layering.upward_include_fails against the cpython layer only: the sampling
 * layer's header must not be found from here (the build must fail on this include). */
#include "session.h"

int layering_probe_upward(void);
int layering_probe_upward(void)
{
    return (int)sizeof(session);
}
