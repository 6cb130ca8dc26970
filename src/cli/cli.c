#include "cli.h"

#include "exitcodes.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cli_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("aprof: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

void cli_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("aprof: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

bool cli_parse_pid(const char *s, pid_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v <= 0 || v > 0x3fffffff)
        return false;
    *out = (pid_t)v;
    return true;
}

bool cli_parse_double(const char *s, double min, double max, double *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static void on_stop(int sig)
{
    aprof_stop_requested = 1;
    aprof_stop_signal = sig;
}

void cli_install_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a sleep in the sampling loop must wake up at once. */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int cli_exit_code(aprof_status st)
{
    switch (st) {
    case APROF_OK: return EXIT_OK;
    case APROF_E_USAGE: return EXIT_USAGE;
    case APROF_E_NO_PROCESS: return EXIT_NO_PROCESS;
    case APROF_E_NOT_PYTHON:
    case APROF_E_NOT_READY: return EXIT_NOT_PYTHON;
    case APROF_E_UNSUPPORTED: return EXIT_UNSUPPORTED;
    case APROF_E_PERMISSION: return EXIT_PERMISSION;
    case APROF_E_OUTPUT: return EXIT_OUTPUT;
    case APROF_E_LAUNCH: return EXIT_LAUNCH;
    case APROF_E_INTERNAL: break;
    case APROF_E_BAD_INPUT: return EXIT_BAD_INPUT;
    case APROF_E_MISSING_FILE: return EXIT_MISSING_FILE;
    case APROF_E_INTERRUPTED: return EXIT_INTERRUPTED;
    }
    return EXIT_INTERNAL;
}

int cli_report(const aprof_error *e)
{
    if (e->msg[0])
        cli_note("%s", e->msg);
    return cli_exit_code(e->status);
}
