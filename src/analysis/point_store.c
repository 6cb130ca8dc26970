#include "point_store.h"

#include "grow.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void point_spill_init(point_spill *sp)
{
    *sp = (point_spill){.fd = -1};
}

void point_spill_close(point_spill *sp)
{
    if (sp->fd >= 0)
        close(sp->fd);
    sp->fd = -1;
}

/* An unlinked file in $TMPDIR (else /tmp): it disappears with its descriptor. */
static bool spill_open(point_spill *sp)
{
    if (sp->fd >= 0)
        return true;
    if (sp->failed)
        return false;
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/aprof-points-XXXXXX", dir) >= (int)sizeof(path)) {
        sp->failed = true;
        return false;
    }
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        sp->failed = true;
        return false;
    }
    unlink(path);
    sp->fd = fd;
    return true;
}

static bool spill_write(point_spill *sp, const agg_point *pts, size_t n, uint64_t *off)
{
    if (!spill_open(sp))
        return false;
    size_t len = n * sizeof(*pts), done = 0;
    while (done < len) {
        ssize_t w = pwrite(sp->fd, (const char *)pts + done, len - done,
                           (off_t)(sp->size + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            sp->failed = true; /* a partly written block is never referenced */
            return false;
        }
        done += (size_t)w;
    }
    *off = sp->size;
    sp->size += len;
    return true;
}

static bool spill_read(const point_spill *sp, uint64_t off, agg_point *out, size_t n)
{
    size_t len = n * sizeof(*out), done = 0;
    while (done < len) {
        ssize_t r = pread(sp->fd, (char *)out + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        done += (size_t)r;
    }
    return true;
}

void point_store_free(point_store *ps)
{
    for (size_t i = 0; i < ps->nblocks; i++)
        free(ps->blocks[i].mem);
    free(ps->blocks);
    free(ps->tail);
    *ps = (point_store){0};
}

/* Move the full tail into a block: the spill file, else memory. */
static int retire_tail(point_store *ps, point_spill *sp)
{
    if (!grow_array((void **)&ps->blocks, &ps->cap_blocks, ps->nblocks + 1, sizeof(*ps->blocks),
                    16, SIZE_MAX))
        return -1;
    point_block b = {0};
    if (!spill_write(sp, ps->tail, ps->ntail, &b.off)) {
        b.mem = ps->tail; /* the tail array becomes the block; a new tail is allocated */
        ps->tail = NULL;
        ps->cap_tail = 0;
        sp->blocks_in_memory++;
    }
    ps->blocks[ps->nblocks++] = b;
    ps->ntail = 0;
    return 0;
}

int point_store_append(point_store *ps, point_spill *sp, const agg_point *pt)
{
    if (!ps->keep_in_memory && ps->ntail == POINT_STORE_BLOCK && retire_tail(ps, sp) < 0)
        return -1;
    if (!grow_array((void **)&ps->tail, &ps->cap_tail, ps->ntail + 1, sizeof(*ps->tail), 64,
                    ps->keep_in_memory ? SIZE_MAX : POINT_STORE_BLOCK))
        return -1;
    ps->tail[ps->ntail++] = *pt;
    return 0;
}

agg_point *point_store_last(point_store *ps)
{
    return ps->ntail ? &ps->tail[ps->ntail - 1] : NULL;
}

agg_point *point_store_mem(point_store *ps, size_t i)
{
    return ps->keep_in_memory && i < ps->ntail ? &ps->tail[i] : NULL;
}

size_t point_store_count(const point_store *ps)
{
    return ps->nblocks * POINT_STORE_BLOCK + ps->ntail;
}

/* Copy up to max points starting at index i; how many, 0 at the end or on a read error. */
static size_t read_run(const point_store *ps, const point_spill *sp, size_t i, agg_point *out,
                       size_t max)
{
    size_t spilled = ps->nblocks * POINT_STORE_BLOCK;
    if (i >= spilled) {
        size_t k = i - spilled;
        if (k >= ps->ntail)
            return 0;
        size_t n = ps->ntail - k < max ? ps->ntail - k : max;
        memcpy(out, &ps->tail[k], n * sizeof(*out));
        return n;
    }
    const point_block *b = &ps->blocks[i / POINT_STORE_BLOCK];
    size_t k = i % POINT_STORE_BLOCK;
    size_t n = POINT_STORE_BLOCK - k < max ? POINT_STORE_BLOCK - k : max;
    if (b->mem) {
        memcpy(out, &b->mem[k], n * sizeof(*out));
        return n;
    }
    if (sp->fd < 0 || !spill_read(sp, b->off + k * sizeof(agg_point), out, n))
        return 0;
    return n;
}

bool point_store_get(const point_store *ps, const point_spill *sp, size_t i, agg_point *out)
{
    return read_run(ps, sp, i, out, 1) == 1;
}

void point_iter_init(point_iter *it, const point_store *ps, const point_spill *sp, size_t first)
{
    it->ps = ps;
    it->sp = sp;
    it->next = first;
    it->buf_first = first;
    it->buf_n = 0;
}

bool point_iter_next(point_iter *it, agg_point *out)
{
    if (it->next < it->buf_first || it->next >= it->buf_first + it->buf_n) {
        it->buf_first = it->next;
        it->buf_n = read_run(it->ps, it->sp, it->next, it->buf, sizeof(it->buf) / sizeof(it->buf[0]));
        if (it->buf_n == 0)
            return false;
    }
    *out = it->buf[it->next - it->buf_first];
    it->next++;
    return true;
}
