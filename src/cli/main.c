/* aprof: an out-of-process sampling profiler for CPython and asyncio. One file per subcommand
 * (cmd_*.c); this file only dispatches. */
#include "cli.h"
#include "crash_report.h"
#include "exitcodes.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: aprof <command> [options]\n"
    "\n"
    "Sample a running CPython 3.10-3.15 process from outside, asyncio-aware.\n"
    "\n"
    "commands:\n"
    "  dump     print every thread's Python stack (and asyncio tasks) once\n"
    "  record   sample a process (--pid PID, or -- CMD ARGS) into speedscope, folded, pprof,\n"
    "           a Chrome trace or an HTML report\n"
    "  attach   live full-screen view of a running process: top, tasks, stalls, call tree\n"
    "  diff     compare two recordings; --fail-on conditions for CI\n"
    "  help     show help for a command: aprof help record\n"
    "\n"
    "aprof --version prints the version. Documentation: man aprof, and docs/ in the source tree.\n";

int main(int argc, char **argv)
{
    /* First thing: a SIGINT/SIGTERM from now on stops sampling cleanly instead of killing aprof
     * between attaching and writing what it has. */
    cli_install_stop_signals();
    crash_report_install();
    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    static char help_flag[] = "--help";
    char *help_argv[] = {argv[0], NULL, help_flag, NULL};
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("aprof %s\n", APROF_VERSION);
        return EXIT_OK;
    }
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "help") == 0) {
        if (argc < 3) {
            fputs(usage, stdout);
            return EXIT_OK;
        }
        help_argv[1] = argv[2];
        cmd = argv[2];
        argv = help_argv;
        argc = 3;
    }
    if (strcmp(cmd, "dump") == 0)
        return cmd_dump(argc - 1, argv + 1);
    if (strcmp(cmd, "record") == 0)
        return cmd_record(argc - 1, argv + 1);
    if (strcmp(cmd, "attach") == 0)
        return cmd_attach(argc - 1, argv + 1);
    if (strcmp(cmd, "diff") == 0)
        return cmd_diff(argc - 1, argv + 1);
    return cli_fail(EXIT_USAGE, "unknown command '%s' (try: aprof --help)", cmd);
}
