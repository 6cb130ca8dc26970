#include "options.h"

#include "cli.h"
#include "exitcodes.h"
#include "unwinder.h"

#include <getopt.h>
#include <string.h>

#define MAX_OPTS 32
#define HELP_COLUMN 25 /* where the explanations start in --help */
#define LONG_ONLY 256  /* getopt_long value of option i without a short name: LONG_ONLY + i */

bool cli_parse_unwinder(const char *arg, void *dest)
{
    unwinder_kind kind;
    if (!unwinder_parse_kind(arg, &kind))
        return false;
    *(const char **)dest = arg;
    return true;
}

/* Store one option's value; false when the argument is not valid for it. */
static bool apply(const cli_option *o, const char *arg)
{
    switch (o->kind) {
    case OPT_FLAG: *(bool *)o->dest = true; return true;
    case OPT_FALSE: *(bool *)o->dest = false; return true;
    case OPT_STRING: *(const char **)o->dest = arg; return true;
    case OPT_PID: return cli_parse_pid(arg, (pid_t *)o->dest);
    case OPT_DOUBLE: return cli_parse_double(arg, o->min, o->max, (double *)o->dest);
    case OPT_CHOICE:
        for (int i = 0; o->choices[i]; i++) {
            if (strcmp(arg, o->choices[i]) == 0) {
                *(int *)o->dest = i;
                return true;
            }
        }
        return false;
    case OPT_CUSTOM: return o->parse(arg, o->dest);
    }
    return false;
}

static bool takes_arg(const cli_option *o)
{
    return o->kind != OPT_FLAG && o->kind != OPT_FALSE;
}

int cli_options_parse(const cli_command *c, int argc, char **argv, int *first_arg)
{
    struct option lo[MAX_OPTS + 2];
    char shorts[3 * MAX_OPTS + 4];
    size_t ns = 0, n = c->nopts < MAX_OPTS ? c->nopts : MAX_OPTS;
    if (!c->operands)
        shorts[ns++] = '+'; /* stop at the first non-option: a launched command's own options */
    for (size_t i = 0; i < n; i++) {
        const cli_option *o = &c->opts[i];
        lo[i] = (struct option){o->name, takes_arg(o) ? required_argument : no_argument, NULL,
                                o->short_name ? o->short_name : LONG_ONLY + (int)i};
        if (o->short_name) {
            shorts[ns++] = o->short_name;
            if (takes_arg(o))
                shorts[ns++] = ':';
        }
    }
    lo[n] = (struct option){"help", no_argument, NULL, 'h'};
    lo[n + 1] = (struct option){NULL, 0, NULL, 0};
    shorts[ns++] = 'h';
    shorts[ns] = '\0';
    optind = 1;
    opterr = 0;
    int v;
    while ((v = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
        if (v == 'h') {
            cli_options_help(c, stdout);
            return EXIT_OK;
        }
        const cli_option *o = NULL;
        if (v >= LONG_ONLY && (size_t)(v - LONG_ONLY) < n)
            o = &c->opts[v - LONG_ONLY];
        for (size_t i = 0; !o && v != '?' && v != ':' && i < n; i++)
            if (c->opts[i].short_name == v)
                o = &c->opts[i];
        if (!o)
            return cli_fail(EXIT_USAGE, "%s: unknown or incomplete option '%s' (see aprof %s --help)",
                            c->name, argv[optind - 1], c->name);
        if (!apply(o, optarg))
            return cli_fail(EXIT_USAGE, "--%s: '%s' %s", o->name, optarg, o->invalid);
    }
    if (c->operands) {
        /* getopt moved the operands after the options */
        if ((size_t)(argc - optind) != c->operands)
            return cli_fail(EXIT_USAGE, "%s: expected %zu file arguments, got %d (see aprof %s "
                            "--help)", c->name, c->operands, argc - optind, c->name);
    } else if (optind < argc) {
        if (!c->positional)
            return cli_fail(EXIT_USAGE, "%s: unexpected argument '%s'", c->name, argv[optind]);
        if (strcmp(argv[optind - 1], "--") != 0)
            return cli_fail(EXIT_USAGE, "%s: unexpected argument '%s' (put the command after --)",
                            c->name, argv[optind]);
    }
    *first_arg = optind;
    return -1;
}

/* One option's lines: the names, then the explanation from HELP_COLUMN (on the next line when
 * the names reach it), its continuation lines indented as far. */
static void help_entry(FILE *out, char short_name, const char *name, const char *arg,
                       const char *help)
{
    char left[96];
    int w = short_name ? snprintf(left, sizeof(left), "  -%c, --%s", short_name, name)
                       : snprintf(left, sizeof(left), "      --%s", name);
    if (arg && w > 0 && (size_t)w < sizeof(left))
        w += snprintf(left + w, sizeof(left) - (size_t)w, " %s", arg);
    fputs(left, out);
    if (w >= HELP_COLUMN - 1)
        fputs("  ", out);
    else
        fprintf(out, "%*s", HELP_COLUMN - w, "");
    for (const char *p = help; *p; p++) {
        fputc(*p, out);
        if (*p == '\n')
            fprintf(out, "%*s", HELP_COLUMN, "");
    }
    fputc('\n', out);
}

void cli_options_help(const cli_command *c, FILE *out)
{
    fputs(c->usage, out);
    for (size_t i = 0; i < c->nopts; i++) {
        const cli_option *o = &c->opts[i];
        help_entry(out, o->short_name, o->name, takes_arg(o) ? o->arg : NULL, o->help);
    }
    help_entry(out, 'h', "help", NULL, "this help");
    if (c->tail)
        fputs(c->tail, out);
}
