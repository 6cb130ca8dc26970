/* `aprof record -- CMD ARGS`: start the target ourselves and wait until its interpreter can be
 * read. */
#ifndef APROF_LAUNCH_H
#define APROF_LAUNCH_H

#include "session.h"

#include <sys/types.h>

/* fork + exec argv. Returns the child's pid, or -1 with errno when it could not be executed
 * (the exec error of the child is reported back through a close-on-exec pipe). */
pid_t launch_spawn(char *const argv[]);

/* Poll until the child's interpreter is readable, the child exits, a stop is requested, or
 * timeout_s passes. APROF_OK with `s` open; otherwise a status with its message in err, except
 * when the child exited first: then *exited is set and its wait status stored. */
aprof_status launch_wait_ready(pid_t child, session *s, double timeout_s, int *exited, int *status,
                               aprof_error *err);

/* Ask a child we started to stop (SIGTERM, then SIGKILL after grace_s) and reap it. */
void launch_terminate(pid_t child, double grace_s);

#endif
