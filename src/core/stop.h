/* The process-wide "stop now" request (Ctrl-C, SIGTERM, SIGHUP). The command layer installs
 * the signal handlers that set it; long-running loops of the lower layers (the sampler, a
 * launched command's start-up wait, dump --watch, the TUI) poll it and wind down, keeping what
 * they have. */
#ifndef APROF_STOP_H
#define APROF_STOP_H

#include <signal.h>

extern volatile sig_atomic_t aprof_stop_requested;
extern volatile sig_atomic_t aprof_stop_signal; /* the signal that asked, 0 if none */

#endif
