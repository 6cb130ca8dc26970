#include "launch.h"

#include "clock.h"
#include "stop.h"
#include "pyruntime.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

pid_t launch_spawn(char *const argv[])
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(pipefd[0]);
        close(pipefd[1]);
        errno = e;
        return -1;
    }
    if (pid == 0) {
        close(pipefd[0]);
        /* The child must not inherit aprof's handlers (exec resets them) nor ignored SIGPIPE. */
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        int e = errno;
        ssize_t w = write(pipefd[1], &e, sizeof(e));
        (void)w;
        _exit(127); /* layer-ok: the forked child, not aprof */
    }
    close(pipefd[1]);
    int child_errno = 0;
    ssize_t n;
    do {
        n = read(pipefd[0], &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    if (n == (ssize_t)sizeof(child_errno)) {
        waitpid(pid, NULL, 0);
        errno = child_errno;
        return -1;
    }
    return pid;
}

aprof_status launch_wait_ready(pid_t child, session *s, double timeout_s, int *exited, int *status,
                               aprof_error *err)
{
    *exited = 0;
    uint64_t deadline = aprof_now_ns() + (uint64_t)(timeout_s * 1e9);
    char msg[512];
    pyrt_status last = PYRT_NOT_READY;
    while (!aprof_stop_requested) {
        if (waitpid(child, status, WNOHANG) == child) {
            *exited = 1;
            return aprof_error_set(err, APROF_E_NO_PROCESS, "%s", "");
        }
        pyruntime probe;
        last = pyruntime_locate(child, &probe, msg, sizeof(msg));
        if (last == PYRT_OK)
            return session_open(s, child, err);
        if (last == PYRT_UNSUPPORTED || last == PYRT_PERMISSION)
            break; /* will not change */
        if (aprof_now_ns() >= deadline)
            break;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (aprof_stop_requested)
        return aprof_error_set(err, APROF_E_INTERRUPTED, "%s", "");
    if (last == PYRT_NOT_READY || last == PYRT_NOT_PYTHON)
        return aprof_error_set(err, APROF_E_NOT_PYTHON,
                               "the launched command (pid %d) did not start a CPython interpreter "
                               "aprof can read within %.0f s: %s", (int)child, timeout_s, msg);
    return aprof_error_set(err, session_status_of(last), "%s", msg);
}

void launch_terminate(pid_t child, double grace_s)
{
    if (kill(child, SIGTERM) != 0)
        return;
    uint64_t deadline = aprof_now_ns() + (uint64_t)(grace_s * 1e9);
    while (aprof_now_ns() < deadline) {
        if (waitpid(child, NULL, WNOHANG) == child)
            return;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
}
