/* Shared pieces of the command-line front end: error lines, option value parsing, signals. */
#ifndef APROF_CLI_H
#define APROF_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "clock.h"
#include "status.h"
#include "stop.h"

/* Print "aprof: <message>" as one line on stderr and return code. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "aprof: <message>" (a warning or a note) on stderr. */
void cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Strict parsers: the whole string must be a number in range. */
bool cli_parse_pid(const char *s, pid_t *out);
bool cli_parse_double(const char *s, double min, double max, double *out);

/* Handlers for SIGINT / SIGTERM / SIGHUP that set aprof_stop_requested (core/stop.h). */
void cli_install_stop_signals(void);

/* The exit code of a status (docs/exit-codes.md). */
int cli_exit_code(aprof_status st);
/* Print a lower layer's error as one "aprof: " line (nothing if its message is empty) and
 * return its exit code. */
int cli_report(const aprof_error *e);

/* Subcommands (one file each). */
int cmd_dump(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_attach(int argc, char **argv);

#endif
