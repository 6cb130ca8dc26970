/* Process exit codes of aprof. Documented in docs/exit-codes.md; keep both in sync. */
#ifndef APROF_EXITCODES_H
#define APROF_EXITCODES_H

enum aprof_exit {
    EXIT_OK = 0,
    EXIT_DIFF_FAILED = 1,    /* diff: a --fail-on condition holds */
    EXIT_USAGE = 2,          /* bad command line or option value */
    EXIT_NO_PROCESS = 3,     /* no such process, or it exited before aprof could read it */
    EXIT_NOT_PYTHON = 4,     /* the process has no CPython interpreter aprof can find */
    EXIT_UNSUPPORTED = 5,    /* CPython found, but its version is outside the supported range */
    EXIT_PERMISSION = 6,     /* ptrace / process_vm_readv refused by the kernel */
    EXIT_OUTPUT = 7,         /* output file could not be written */
    EXIT_LAUNCH = 8,         /* `record -- cmd`: the command could not be started */
    EXIT_INTERNAL = 9,       /* a bug or resource failure inside aprof */
    EXIT_BAD_INPUT = 10,     /* a malformed input file (a corrupt or truncated core too) */
    EXIT_MISSING_FILE = 11,  /* dump --core: a file the core maps is missing or another build */
    EXIT_INTERRUPTED = 130,  /* stopped by Ctrl-C before anything could be sampled */
};

#endif
