/* The time-ordered points of one profile, in memory that stays flat however long a recording
 * runs.
 *
 * A store keeps its newest points (at most POINT_STORE_BLOCK) in memory. When that block is
 * full it is appended to a spill file shared by every store of an aggregator: an unlinked
 * temporary file, so nothing is left behind whatever ends aprof. Readers see one array through
 * point_store_get() and the iterator. Should the file fail (no space, no temporary directory),
 * blocks stay in memory and the spill file says so: the recording is kept, only memory grows.
 * A store made with keep_in_memory never spills (profiles whose points are bounded by distinct
 * stacks, see agg_profile_by_stack). */
#ifndef APROF_POINT_STORE_H
#define APROF_POINT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POINT_STORE_BLOCK 2048 /* points per block: 48 KB */

typedef struct agg_point {
    uint32_t node;       /* leaf node of the stack (AGG_ROOT for an empty stack) */
    uint32_t count;      /* samples it stands for: consecutive samples of one stack merge */
    uint64_t t_ns;       /* CLOCK_MONOTONIC time of its newest sample */
    uint64_t weight_ns;  /* the time they stand for together */
} agg_point;

/* The spill file of an aggregator, opened on first use. */
typedef struct point_spill {
    int fd;               /* -1 until opened */
    uint64_t size;        /* bytes written */
    uint64_t blocks_in_memory; /* blocks kept in memory because the file failed */
    bool failed;          /* opening or writing failed once: no further attempts */
} point_spill;

void point_spill_init(point_spill *sp);
void point_spill_close(point_spill *sp);

typedef struct point_block {
    uint64_t off;         /* offset in the spill file */
    agg_point *mem;       /* or the block itself, when it could not be spilled */
} point_block;

typedef struct point_store {
    agg_point *tail;      /* the newest points, in memory */
    size_t ntail, cap_tail;
    point_block *blocks;  /* older points, POINT_STORE_BLOCK each */
    size_t nblocks, cap_blocks;
    bool keep_in_memory;
} point_store;

void point_store_free(point_store *ps);

/* Append a point. 0, or -1 when out of memory (the store is unchanged). */
int point_store_append(point_store *ps, point_spill *sp, const agg_point *pt);

/* The newest point, still in memory (merging adds to it); NULL when the store is empty. */
agg_point *point_store_last(point_store *ps);

/* The point at index i in memory (keep_in_memory stores only), else NULL. */
agg_point *point_store_mem(point_store *ps, size_t i);

size_t point_store_count(const point_store *ps);

/* Copy point i to *out. false when i is out of range or the spill file cannot be read. */
bool point_store_get(const point_store *ps, const point_spill *sp, size_t i, agg_point *out);

/* Points in order from a first index, read from the spill file a chunk at a time. */
typedef struct point_iter {
    const point_store *ps;
    const point_spill *sp;
    size_t next;               /* index of the next point to return */
    size_t buf_first, buf_n;   /* buf holds points [buf_first, buf_first + buf_n) */
    agg_point buf[256];
} point_iter;

void point_iter_init(point_iter *it, const point_store *ps, const point_spill *sp, size_t first);
/* The next point; false at the end, or when the spill file cannot be read. */
bool point_iter_next(point_iter *it, agg_point *out);

#endif
