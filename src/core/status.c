#include "status.h"

#include <stdarg.h>
#include <stdio.h>

aprof_status aprof_error_set(aprof_error *e, aprof_status status, const char *fmt, ...)
{
    if (!e)
        return status;
    e->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return status;
}
