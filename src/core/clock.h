/* The one clock aprof measures with: CLOCK_MONOTONIC, in nanoseconds (the clock a target's
 * time.monotonic() reads, so figures can be compared with the target's own). */
#ifndef APROF_CLOCK_H
#define APROF_CLOCK_H

#include <stdint.h>

uint64_t aprof_now_ns(void);

#endif
