#include "crash_report.h"

#include <execinfo.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define APROF_UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define APROF_UNDER_ASAN 1
#endif

#ifndef APROF_UNDER_ASAN
#define CRASH_FRAMES 64

static void put(const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* Only async-signal-safe calls here, and backtrace(), warmed up at install time (its first call
 * loads libgcc's unwinder, which allocates). */
static void on_fatal(int sig)
{
    char num[12];
    int i = (int)sizeof(num) - 1;
    num[i] = 0;
    int v = sig;
    do {
        num[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    put("\naprof: internal error: fatal signal ");
    put(num + i);
    put(" (please report it, with the lines below)\naprof: backtrace:\n");
    void *pcs[CRASH_FRAMES];
    int n = backtrace(pcs, CRASH_FRAMES);
    backtrace_symbols_fd(pcs, n, STDERR_FILENO);
    signal(sig, SIG_DFL);
    raise(sig);
}
#endif

void crash_report_install(void)
{
#ifndef APROF_UNDER_ASAN
    void *warm[2];
    backtrace(warm, 2);
    /* its own stack, so that a stack overflow is reported too */
    static char alt[64 * 1024];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof(alt), .ss_flags = 0};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fatal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
    const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++)
        sigaction(sigs[k], &sa, NULL);
#endif
}
