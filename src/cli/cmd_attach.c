/* aprof attach: the live full-screen view of a running process (tui/, docs/tui.md). */
#include "cli.h"
#include "exitcodes.h"
#include "session.h"
#include "tui.h"
#include "unwinder.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char attach_usage[] =
    "usage: aprof attach --pid PID [--rate HZ] [--native]\n"
    "\n"
    "Attach to a running CPython process and show, live and full-screen, where its time goes\n"
    "(Top, Tree), its asyncio tasks (Tasks) and what blocks its event loop (Stalls). Sampling\n"
    "goes on in the background at the full rate; the view refreshes a few times a second.\n"
    "Press ? for the keys, q to quit (the target keeps running). docs/tui.md\n"
    "\n"
    "  -p, --pid PID          process to attach to\n"
    "  -r, --rate HZ          samples per second on average, at random moments (default 1000)\n"
    "  -n, --native           also native (C) frames, merged with the Python frames (stops the\n"
    "                         target briefly for each sample; docs/native.md)\n"
    "      --unwinder NAME    native unwinder: libunwind (default) or dw\n"
    "  -b, --blocking         suspend running threads for each sample (exact stacks)\n"
    "      --stall-threshold MS  a callback that keeps its event loop from polling this long\n"
    "                         is a stall (default 100)\n"
    "  -h, --help             this help\n";

int cmd_attach(int argc, char **argv)
{
    static const struct option opts[] = {
        {"pid", required_argument, NULL, 'p'},      {"rate", required_argument, NULL, 'r'},
        {"native", no_argument, NULL, 'n'},         {"unwinder", required_argument, NULL, 'U'},
        {"blocking", no_argument, NULL, 'b'},       {"stall-threshold", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    pid_t pid = 0;
    double rate = 1000, stall_ms = 100;
    bool native = false, blocking = false;
    const char *unwinder_name = "libunwind";
    unwinder_kind unwinder_checked;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+p:r:nbh", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (!cli_parse_pid(optarg, &pid))
                return cli_fail(EXIT_USAGE, "--pid: '%s' is not a process id", optarg);
            break;
        case 'r':
            if (!cli_parse_double(optarg, 0.1, 1e6, &rate))
                return cli_fail(EXIT_USAGE, "--rate: '%s' is not a rate between 0.1 and 1000000 Hz", optarg);
            break;
        case 'n': native = true; break;
        case 'b': blocking = true; break;
        case 'U':
            if (!unwinder_parse_kind(optarg, &unwinder_checked))
                return cli_fail(EXIT_USAGE, "--unwinder: '%s' is not one of libunwind, dw", optarg);
            unwinder_name = optarg;
            break;
        case 'T':
            if (!cli_parse_double(optarg, 0.1, 1e7, &stall_ms))
                return cli_fail(EXIT_USAGE, "--stall-threshold: '%s' is not a positive number of milliseconds", optarg);
            break;
        case 'h': fputs(attach_usage, stdout); return EXIT_OK;
        default:
            return cli_fail(EXIT_USAGE, "attach: unknown or incomplete option '%s' (see aprof attach --help)",
                            argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_fail(EXIT_USAGE, "attach: unexpected argument '%s'", argv[optind]);
    if (!pid)
        return cli_fail(EXIT_USAGE, "attach: --pid is required (see aprof attach --help)");

    session s;
    aprof_error err = {0};
    if (session_open(&s, pid, &err) != APROF_OK)
        return cli_report(&err);
    if (native && (session_enable_native(&s, unwinder_name, &err) != APROF_OK ||
                   session_enable_marks(&s, &err) != APROF_OK)) {
        session_close(&s);
        return cli_report(&err);
    }
    tui_options o = {.rate_hz = rate, .stall_threshold_ns = (uint64_t)(stall_ms * 1e6),
                     .native = native, .blocking = blocking && !native};
    cli_install_stop_signals();
    tui_run(&s, &o, &err);
    session_close(&s);
    return cli_report(&err);
}
