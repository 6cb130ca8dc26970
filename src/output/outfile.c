#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TMP_ATTEMPTS 100

static void clear(outfile *o)
{
    free(o->path);
    free(o->tmp_path);
    memset(o, 0, sizeof(*o));
}

/* Directory part of path ("." when it has none). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* Creates "DIR/.BASE.XXXXXXXX.tmp" with O_EXCL. Created with mode 0666 so the umask applies as
 * for any new file (mkstemp would force 0600). */
static int create_temp(outfile *o, const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
    size_t size = dirlen + strlen(base) + 32;
    char *tmp = malloc(size);
    if (!tmp)
        return -1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    for (int attempt = 0; attempt < TMP_ATTEMPTS; attempt++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        snprintf(tmp, size, "%.*s.%s.%08x.tmp", (int)dirlen, path, base, (unsigned)(seed >> 32));
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            o->tmp_path = tmp;
            return fd;
        }
        if (errno != EEXIST)
            break;
    }
    int saved = errno;
    free(tmp);
    errno = saved;
    return -1;
}

int outfile_open(outfile *o, const char *path)
{
    memset(o, 0, sizeof(*o));
    if (!path || !*path) {
        errno = ENOENT;
        return -1;
    }
    if (strcmp(path, "-") == 0) {
        o->fp = stdout;
        o->is_stdout = true;
        return 0;
    }
    size_t len = strlen(path);
    if (path[len - 1] == '/') {
        errno = EISDIR;
        return -1;
    }
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        return -1;
    }
    if (exists && !S_ISREG(st.st_mode)) {
        int dfd = open(path, O_WRONLY | O_CLOEXEC);
        if (dfd < 0)
            return -1;
        o->fp = fdopen(dfd, "w");
        if (!o->fp) {
            int saved = errno;
            close(dfd);
            errno = saved;
            return -1;
        }
        o->direct = true;
        return 0;
    }
    o->path = strdup(path);
    if (!o->path)
        return -1;
    int fd = create_temp(o, path);
    if (fd < 0) {
        int saved = errno;
        clear(o);
        errno = saved;
        return -1;
    }
    /* Replacing an existing file keeps its permissions, as writing into it would. */
    if (exists && S_ISREG(st.st_mode))
        (void)fchmod(fd, st.st_mode & 07777);
    o->fp = fdopen(fd, "w");
    if (!o->fp) {
        int saved = errno;
        close(fd);
        unlink(o->tmp_path);
        clear(o);
        errno = saved;
        return -1;
    }
    return 0;
}

FILE *outfile_stream(outfile *o)
{
    return o ? o->fp : NULL;
}

/* Makes the rename itself durable; failures here do not undo a completed rename. */
static void sync_dir(const char *path)
{
    char *dir = dir_of(path);
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int outfile_commit(outfile *o)
{
    if (!o || !o->fp) {
        errno = EBADF;
        return -1;
    }
    if (o->is_stdout || o->direct) {
        errno = 0;
        int rc = fflush(o->fp) == 0 && !ferror(o->fp) ? 0 : -1;
        int saved = errno ? errno : EIO;
        if (o->direct && fclose(o->fp) != 0 && rc == 0) {
            rc = -1;
            saved = errno ? errno : EIO;
        }
        clear(o);
        if (rc < 0)
            errno = saved;
        return rc;
    }
    int err = 0;
    errno = 0;
    if (fflush(o->fp) != 0 || ferror(o->fp))
        err = errno ? errno : EIO;
    if (!err && fsync(fileno(o->fp)) != 0 && errno != EINVAL) /* EINVAL: not syncable (a pipe) */
        err = errno;
    errno = 0;
    if (fclose(o->fp) != 0 && !err)
        err = errno ? errno : EIO;
    o->fp = NULL;
    if (!err && rename(o->tmp_path, o->path) != 0)
        err = errno;
    if (err) {
        unlink(o->tmp_path);
        clear(o);
        errno = err;
        return -1;
    }
    sync_dir(o->path);
    clear(o);
    return 0;
}

void outfile_abort(outfile *o)
{
    if (!o)
        return;
    if (o->fp && !o->is_stdout)
        fclose(o->fp); /* a direct (device, FIFO) destination keeps what was written */
    else if (o->fp)
        fflush(o->fp);
    if (o->tmp_path)
        unlink(o->tmp_path);
    clear(o);
}
