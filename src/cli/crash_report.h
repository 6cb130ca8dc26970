#ifndef APROF_CRASH_REPORT_H
#define APROF_CRASH_REPORT_H

/* On a fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT: glibc's heap checks abort), print
 * one line saying aprof failed and the program counters of the failing thread's stack as
 * "aprof(+0xOFFSET)", which `addr2line -f -i -e aprof OFFSET...` turns into functions and lines
 * (the integration tests do so), then die of the same signal. Threads aprof held stopped are let
 * go by the kernel when it exits. Not installed under AddressSanitizer, which reports better. */
void crash_report_install(void);

#endif
