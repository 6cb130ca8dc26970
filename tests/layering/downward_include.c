/* The control of layering.upward_include_fails: the same build set-up with a header of the
 * cpython layer itself and one of a layer below it must build. */
#include "memory.h"
#include "pystack.h"

int layering_probe_downward(void);
int layering_probe_downward(void)
{
    return (int)sizeof(pystack) + (int)sizeof(mem);
}
