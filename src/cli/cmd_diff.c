/* aprof diff: two recordings compared, with conditions a CI job can fail on. */
#include "cli.h"
#include "diff_report.h"
#include "exitcodes.h"
#include "html_report.h"
#include "json.h"
#include "outfile.h"
#include "options.h"
#include "recording_diff.h"
#include "recording_read.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char diff_usage[] =
    "usage: aprof diff BEFORE AFTER [--before-summary FILE] [--after-summary FILE]\n"
    "                  [--fail-on COND]... [--top N] [--json] [--html FILE]\n"
    "\n"
    "Compare two recordings of aprof record: BEFORE and AFTER are speedscope or pprof files\n"
    "(-o) or --summary files; a summary can be added to a profile with --before-summary and\n"
    "--after-summary. Prints the functions whose share of sampled time changed most, and from\n"
    "the summaries the stalls, loop lag and stall culprit lines that appeared or vanished.\n"
    "Exit status 1 when a --fail-on condition holds (docs/diff.md).\n"
    "\n";

static const char diff_tail[] =
    "\nconditions (--fail-on, repeatable):\n"
    "  function-share:POINTS  some function's share of samples (on the stack) grew by more\n"
    "                         than POINTS percentage points\n"
    "  stall-total:PERCENT    the total stalled time grew by more than PERCENT percent\n"
    "  new-culprit            a stall culprit line that was not there before\n";

#define MAX_CONDS 16

typedef struct cond_list {
    diff_cond conds[MAX_CONDS];
    size_t n;
} cond_list;

static bool parse_cond(const char *arg, void *dest)
{
    cond_list *l = dest;
    return l->n < MAX_CONDS && diff_cond_parse(arg, &l->conds[l->n++]);
}

static int load(recording *r, const char *path, const char *summary)
{
    aprof_error err = {0};
    if (recording_add_file(r, path, &err) != APROF_OK ||
        (summary && recording_add_file(r, summary, &err) != APROF_OK))
        return cli_report(&err);
    return EXIT_OK;
}

int cmd_diff(int argc, char **argv)
{
    bool json = false;
    double top = 15;
    const char *before_summary = NULL, *after_summary = NULL, *html_path = NULL;
    cond_list conds = {0};
    const cli_option opts[] = {
        {.name = "before-summary", .arg = "FILE", .kind = OPT_STRING, .dest = &before_summary,
         .help = "the --summary file of BEFORE's recording"},
        {.name = "after-summary", .arg = "FILE", .kind = OPT_STRING, .dest = &after_summary,
         .help = "the --summary file of AFTER's recording"},
        {.name = "fail-on", .arg = "COND", .kind = OPT_CUSTOM, .dest = &conds,
         .parse = parse_cond, .help = "exit 1 when COND holds (below; repeatable, at most 16)",
         .invalid = "is not a condition (function-share:POINTS, stall-total:PERCENT, "
                    "new-culprit)"},
        {.name = "top", .arg = "N", .kind = OPT_DOUBLE, .dest = &top, .min = 1, .max = 100000,
         .help = "functions listed (default 15)", .invalid = "is not a count (1-100000)"},
        {.name = "json", .short_name = 'j', .kind = OPT_FLAG, .dest = &json,
         .help = "machine-readable output (docs/diff.md)"},
        {.name = "html", .arg = "FILE", .kind = OPT_STRING, .dest = &html_path,
         .help = "also write a differential flame graph page (self-contained HTML)"},
    };
    const cli_command c = {"diff", diff_usage, opts, sizeof(opts) / sizeof(opts[0]), diff_tail,
                           false, 2};
    int first;
    int rc = cli_options_parse(&c, argc, argv, &first);
    if (rc >= 0)
        return rc;
    recording before = {0}, after = {0};
    rc = load(&before, argv[first], before_summary);
    if (rc == EXIT_OK)
        rc = load(&after, argv[first + 1], after_summary);
    for (size_t i = 0; rc == EXIT_OK && i < conds.n; i++)
        if (!diff_cond_answerable(&conds.conds[i], &before, &after))
            rc = cli_fail(EXIT_USAGE, "diff: --fail-on %s needs %s on both sides", conds.conds[i].text,
                          conds.conds[i].kind == COND_FUNCTION_SHARE
                              ? "a profile (a speedscope or pprof file)"
                              : "a summary (a --summary file, or --before-summary and "
                                "--after-summary)");
    if (rc == EXIT_OK && html_path && !(before.has_profile && after.has_profile))
        rc = cli_fail(EXIT_USAGE, "diff: --html needs a profile on both sides (a speedscope or pprof file)");
    rec_diff d = {0};
    if (rc == EXIT_OK && recording_diff(&before, &after, &d) != 0)
        rc = cli_fail(EXIT_INTERNAL, "out of memory");
    if (rc != EXIT_OK) {
        recording_free(&before);
        recording_free(&after);
        return rc;
    }
    diff_verdict v[MAX_CONDS];
    size_t holding = 0;
    for (size_t i = 0; i < conds.n; i++) {
        v[i].cond = &conds.conds[i];
        v[i].holds = diff_cond_holds(v[i].cond, &before, &after, &d, v[i].why, sizeof v[i].why);
        holding += v[i].holds;
    }
    if (json) {
        json_writer w;
        json_init(&w, stdout);
        diff_report_json(&w, &before, &after, &d, (size_t)top, v, conds.n);
        if (json_finish(&w) != 0 || fputc('\n', stdout) == EOF)
            rc = EXIT_OUTPUT;
    } else {
        diff_report_text(stdout, &before, &after, &d, (size_t)top, v, conds.n);
    }
    if (fflush(stdout) != 0 || ferror(stdout))
        rc = EXIT_OUTPUT;
    if (html_path && rc == EXIT_OK) {
        outfile of;
        if (outfile_open(&of, html_path) != 0) {
            rc = cli_fail(EXIT_OUTPUT, "cannot write %s: %s", html_path, strerror(errno));
        } else if (write_diff_html(&before, &after, &d, v, conds.n, outfile_stream(&of)) != 0) {
            int e = errno;
            outfile_abort(&of);
            rc = cli_fail(EXIT_OUTPUT, "cannot write %s: %s", html_path, strerror(e));
        } else if (outfile_commit(&of) != 0) {
            rc = cli_fail(EXIT_OUTPUT, "cannot write %s: %s", html_path, strerror(errno));
        }
        if (rc != EXIT_OK) {
            rec_diff_free(&d);
            recording_free(&before);
            recording_free(&after);
            return rc;
        }
    }
    rec_diff_free(&d);
    recording_free(&before);
    recording_free(&after);
    if (rc == EXIT_OUTPUT)
        return cli_fail(EXIT_OUTPUT, "cannot write the output: %s", strerror(errno));
    if (holding) {
        fprintf(stderr, "aprof: diff: %zu of %zu --fail-on conditions hold\n", holding, conds.n);
        return EXIT_DIFF_FAILED;
    }
    return EXIT_OK;
}
