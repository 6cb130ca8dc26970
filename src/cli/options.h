/* Command options, declared once per command: one table drives getopt_long, the checks of
 * each value, and the --help text. Options that several commands share (--pid, --rate,
 * --native, --unwinder, --blocking, --stall-threshold) are the CLI_OPT_* entries below, so they
 * read, check and explain themselves the same way everywhere. */
#ifndef APROF_OPTIONS_H
#define APROF_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum cli_opt_kind {
    OPT_FLAG,   /* no argument: *(bool *)dest = true */
    OPT_FALSE,  /* no argument: *(bool *)dest = false (--no-...) */
    OPT_STRING, /* *(const char **)dest = the argument */
    OPT_PID,    /* *(pid_t *)dest: a positive process id */
    OPT_DOUBLE, /* *(double *)dest: a number in [min, max] */
    OPT_CHOICE, /* *(int *)dest = the index of the argument in choices */
    OPT_CUSTOM, /* parse(argument, dest) says whether it is valid */
} cli_opt_kind;

typedef struct cli_option {
    const char *name;   /* long name, without "--" */
    char short_name;    /* 0: long only */
    const char *arg;    /* the argument's name in --help; NULL for flags */
    const char *help;   /* what it does; '\n' starts a continuation line */
    cli_opt_kind kind;
    void *dest;
    double min, max;             /* OPT_DOUBLE */
    const char *const *choices;  /* OPT_CHOICE: NULL-terminated */
    bool (*parse)(const char *arg, void *dest); /* OPT_CUSTOM */
    const char *invalid;         /* the error's end: "'ARG' <invalid>" */
} cli_option;

typedef struct cli_command {
    const char *name;   /* "record" */
    const char *usage;  /* the help text above the options, ending in a blank line */
    const cli_option *opts;
    size_t nopts;
    const char *tail;   /* the help text below the options, or NULL */
    bool positional;    /* arguments after "--" are allowed (record's command) */
    size_t operands;    /* exactly this many arguments, among the options (diff's files) */
} cli_command;

/* Parse argv[1..] against the command's options. Returns -1 when the command should go on
 * (*first_arg: index of the first positional argument or operand, argc if none; operands are
 * moved after the options); otherwise the exit code
 * to return: 0 after printing --help, EXIT_USAGE after one "aprof: " line. */
int cli_options_parse(const cli_command *c, int argc, char **argv, int *first_arg);

/* The --help text of a command. */
void cli_options_help(const cli_command *c, FILE *out);

bool cli_parse_unwinder(const char *arg, void *dest); /* dest: const char * (the name) */

#define CLI_OPT_PID(var, what)                                                                 \
    {.name = "pid", .short_name = 'p', .arg = "PID", .help = what, .kind = OPT_PID,             \
     .dest = var, .invalid = "is not a process id"}
#define CLI_OPT_RATE(var)                                                                      \
    {.name = "rate", .short_name = 'r', .arg = "HZ",                                            \
     .help = "samples per second on average, at random moments (default 1000)",                \
     .kind = OPT_DOUBLE, .dest = var, .min = 0.1, .max = 1e6,                                  \
     .invalid = "is not a rate between 0.1 and 1000000 Hz"}
#define CLI_OPT_NATIVE(var)                                                                    \
    {.name = "native", .short_name = 'n',                                                       \
     .help = "also native (C) frames, merged with the Python frames in call\n"                  \
             "order; stops the target briefly for each sample (ptrace;\n"                       \
             "docs/native.md)",                                                                 \
     .kind = OPT_FLAG, .dest = var}
#define CLI_OPT_UNWINDER(var)                                                                  \
    {.name = "unwinder", .arg = "NAME", .help = "native unwinder: libunwind (default) or dw",    \
     .kind = OPT_CUSTOM, .dest = var, .parse = cli_parse_unwinder,                             \
     .invalid = "is not one of libunwind, dw"}
#define CLI_OPT_BLOCKING(var, what)                                                            \
    {.name = "blocking", .short_name = 'b', .help = what, .kind = OPT_FLAG, .dest = var}
#define CLI_OPT_EXACT_TASK_NAMES(var)                                                          \
    {.name = "exact-task-names", .kind = OPT_FLAG, .dest = var,                                \
     .help = "name every task in task-stitched stacks (by default names that differ\n"        \
             "only in a trailing counter are one: <task Task-*>, <task w-*>)"}

#define CLI_OPT_REDACT(var)                                                                    \
    {.name = "redact", .kind = OPT_FLAG, .dest = var,                                          \
     .help = "for sharing: paths under home directories as ~/..., task names as\n"             \
             "task-XXXXXXXX, the command line as <command line> (docs/record.md)"}

#define CLI_OPT_SUBPROCESSES(var)                                                              \
    {.name = "subprocesses", .kind = OPT_FLAG, .dest = var,                                    \
     .help = "also sample the target's child processes, theirs, and new ones as\n"            \
             "they start (worker processes); non-Python ones are listed and skipped"}

#define CLI_OPT_NONBLOCKING(var)                                                               \
    {.name = "nonblocking", .kind = OPT_FLAG, .dest = var,                                     \
     .help = "never stop a thread: a stack that changes while it is read keeps\n"              \
             "the frames two reads agree on, then <unreadable> (by default such\n"            \
             "a thread is stopped for a few microseconds and read whole)"}
#define CLI_OPT_STALL_THRESHOLD(var)                                                           \
    {.name = "stall-threshold", .arg = "MS",                                                    \
     .help = "a callback that keeps its event loop from polling this long\n"                    \
             "is a stall (default 100, like asyncio's slow_callback_duration)",                 \
     .kind = OPT_DOUBLE, .dest = var, .min = 0.1, .max = 1e7,                                  \
     .invalid = "is not a positive number of milliseconds"}
#define CLI_OPT_NO_ASYNC(var, what)                                                            \
    {.name = "no-async", .short_name = 'A', .help = what, .kind = OPT_FALSE, .dest = var}

#endif
