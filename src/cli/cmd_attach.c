/* aprof attach: the live full-screen view of a running process (tui/, docs/tui.md). */
#include "cli.h"
#include "exitcodes.h"
#include "options.h"
#include "proc.h"
#include "session.h"
#include "tui.h"

#include <stdio.h>
#include <string.h>

static const char attach_usage[] =
    "usage: aprof attach --pid PID [--rate HZ] [--native] [--subprocesses]\n"
    "\n"
    "Attach to a running CPython process and show, live and full-screen, where its time goes\n"
    "(Top, Tree), its asyncio tasks (Tasks) and what blocks its event loop (Stalls). Sampling\n"
    "goes on in the background at the full rate; the view refreshes a few times a second.\n"
    "With --subprocesses, also its descendants and the processes they start (worker\n"
    "processes). Press ? for the keys, q to quit (the target keeps running). docs/tui.md\n"
    "\n";

int cmd_attach(int argc, char **argv)
{
    pid_t pid = 0;
    double rate = 1000, stall_ms = 100;
    bool native = false, blocking = false, nonblocking = false, exact_names = false, redact = false;
    bool subprocesses = false;
    const char *unwinder_name = "libunwind";
    const cli_option opts[] = {
        CLI_OPT_PID(&pid, "process to attach to"),
        CLI_OPT_RATE(&rate),
        CLI_OPT_NATIVE(&native),
        CLI_OPT_UNWINDER(&unwinder_name),
        CLI_OPT_BLOCKING(&blocking, "suspend running threads for each sample (exact stacks)"),
        CLI_OPT_NONBLOCKING(&nonblocking),
        CLI_OPT_EXACT_TASK_NAMES(&exact_names),
        CLI_OPT_REDACT(&redact),
        CLI_OPT_SUBPROCESSES(&subprocesses),
        CLI_OPT_STALL_THRESHOLD(&stall_ms),
    };
    const cli_command c = {"attach", attach_usage, opts, sizeof(opts) / sizeof(opts[0]), NULL,
                           false};
    int first;
    int rc = cli_options_parse(&c, argc, argv, &first);
    if (rc >= 0)
        return rc;
    if (!pid)
        return cli_fail(EXIT_USAGE, "attach: --pid is required (see aprof attach --help)");

    tui_options o = {.rate_hz = rate, .stall_threshold_ns = (uint64_t)(stall_ms * 1e6),
                     .native = native, .blocking = blocking && !native,
                     .nonblocking = nonblocking, .exact_task_names = exact_names};
    aprof_error err = {0};
    if (subprocesses) {
        /* every process of the tree is opened as it is found (procset.h) */
        if (native)
            return cli_fail(EXIT_USAGE, "attach: --native cannot be combined with --subprocesses yet (docs/limits.md)");
        if (!proc_alive(pid))
            return cli_fail(EXIT_NO_PROCESS, "no process %d", (int)pid);
        o.follow_root = pid;
        o.redact = redact;
        cli_install_stop_signals();
        tui_run(NULL, &o, &err);
        return cli_report(&err);
    }
    session s;
    if (session_open(&s, pid, &err) != APROF_OK)
        return cli_report(&err);
    if (redact)
        session_enable_redaction(&s);
    if (native && (session_enable_native(&s, unwinder_name, &err) != APROF_OK ||
                   session_enable_marks(&s, &err) != APROF_OK)) {
        session_close(&s);
        return cli_report(&err);
    }
    cli_install_stop_signals();
    tui_run(&s, &o, &err);
    session_close(&s);
    return cli_report(&err);
}
