#include "target_src.h"

#include "core_file.h"

#include <errno.h>
#include <signal.h>

ssize_t target_src_readv(const target_src *t, const struct iovec *local, size_t n,
                         const struct iovec *remote)
{
    if (t->core)
        return core_readv(t->core, local, n, remote);
    return process_vm_readv(t->pid, local, n, remote, n, 0);
}

int target_src_maps(const target_src *t, proc_maps *out)
{
    return t->core ? core_maps(t->core, out) : proc_maps_read(t->pid, out);
}

bool target_src_file_path(const target_src *t, uint64_t start, uint64_t end, const char *path,
                          char *out, size_t len)
{
    if (!t->core)
        return proc_mapped_file_path(t->pid, start, end, path, out, len);
    char why[8];
    return core_mapped_file_path(t->core, start, path, out, len, why, sizeof why) ==
           CORE_FILE_FOUND;
}

bool target_src_alive(const target_src *t)
{
    return t->core || !(kill(t->pid, 0) != 0 && errno == ESRCH);
}
