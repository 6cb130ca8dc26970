#include "interpreters.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void pyenv_root(char *out, size_t len)
{
    const char *env = getenv("PYENV_ROOT");
    if (env && *env) {
        snprintf(out, len, "%s", env);
        return;
    }
    out[0] = '\0';
    FILE *p = popen("pyenv root 2>/dev/null", "r");
    if (p) {
        if (fgets(out, (int)len, p))
            out[strcspn(out, "\n")] = '\0';
        pclose(p);
    }
    if (!out[0]) {
        const char *home = getenv("HOME");
        snprintf(out, len, "%s/.pyenv", home ? home : "/root");
    }
}

static int by_version(const void *a, const void *b)
{
    const test_interp *x = a, *y = b;
    int xa = 0, xb = 0, xc = 0, ya = 0, yb = 0, yc = 0;
    sscanf(x->label, "%d.%d.%d", &xa, &xb, &xc);
    sscanf(y->label, "%d.%d.%d", &ya, &yb, &yc);
    return xa != ya ? xa - ya : xb != yb ? xb - yb : xc - yc;
}

size_t test_find_interpreters(test_interp *out, size_t cap)
{
    char root[256], dir[300];
    pyenv_root(root, sizeof root);
    snprintf(dir, sizeof dir, "%s/versions", root);
    size_t n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL && n < cap;) {
        int major, minor, micro;
        char extra;
        if (sscanf(e->d_name, "%d.%d.%d%c", &major, &minor, &micro, &extra) != 3 || major != 3 ||
            minor < TEST_PY_MIN_MINOR || minor > TEST_PY_MAX_MINOR)
            continue;
        test_interp *t = &out[n];
        memset(t, 0, sizeof *t);
        snprintf(t->label, sizeof t->label, "%d.%d.%d", major, minor, micro);
        snprintf(t->prefix, sizeof t->prefix, "%s/%s", dir, e->d_name);
        snprintf(t->python, sizeof t->python, "%s/%s/bin/python3.%d", dir, e->d_name, minor);
        snprintf(t->libpython, sizeof t->libpython, "%s/%s/lib/libpython3.%d.so.1.0", dir,
                 e->d_name, minor);
        if (access(t->python, X_OK) != 0)
            continue;
        if (access(t->libpython, R_OK) != 0)
            t->libpython[0] = '\0';
        t->minor = minor;
        t->pyenv = true;
        n++;
    }
    if (d)
        closedir(d);
    qsort(out, n, sizeof *out, by_version);
    if (n < cap && access("/usr/bin/python3.11", X_OK) == 0) {
        test_interp *t = &out[n++];
        memset(t, 0, sizeof *t);
        snprintf(t->label, sizeof t->label, "debian-3.11");
        snprintf(t->python, sizeof t->python, "/usr/bin/python3.11");
        snprintf(t->prefix, sizeof t->prefix, "/usr");
        t->minor = 11;
    }
    return n;
}

const test_interp *test_interp_pyenv_minor(const test_interp *all, size_t n, int minor)
{
    const test_interp *newest = NULL; /* all is sorted by version */
    for (size_t i = 0; i < n; i++)
        if (all[i].pyenv && all[i].minor == minor)
            newest = &all[i];
    return newest;
}
