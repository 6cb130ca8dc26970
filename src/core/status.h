/* What went wrong, as lower layers report it: a kind and one line of text. Lower layers never
 * print or exit; the command layer turns a status into its message and exit code
 * (cli_report, docs/exit-codes.md). */
#ifndef APROF_STATUS_H
#define APROF_STATUS_H

typedef enum aprof_status {
    APROF_OK = 0,
    APROF_E_USAGE,       /* a bad option value reached a lower layer */
    APROF_E_NO_PROCESS,  /* no such process, or it exited */
    APROF_E_NOT_PYTHON,  /* no CPython interpreter aprof can read */
    APROF_E_NOT_READY,   /* a CPython interpreter, not initialised yet */
    APROF_E_UNSUPPORTED, /* CPython outside the supported versions */
    APROF_E_PERMISSION,  /* ptrace / process_vm_readv refused */
    APROF_E_OUTPUT,      /* output could not be written */
    APROF_E_LAUNCH,      /* a command could not be started */
    APROF_E_INTERNAL,    /* out of memory, or a bug */
    APROF_E_BAD_INPUT,   /* a malformed input file */
    APROF_E_MISSING_FILE,/* a file a core file maps is not here, or is another build */
    APROF_E_INTERRUPTED, /* stopped by a signal before anything was done */
} aprof_status;

typedef struct aprof_error {
    aprof_status status;
    char msg[768]; /* one line, no "aprof: " prefix, no newline; may be empty */
} aprof_error;

/* Record status and message in e (which may be NULL); returns status. */
aprof_status aprof_error_set(aprof_error *e, aprof_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
