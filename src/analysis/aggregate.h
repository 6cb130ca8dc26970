/* Aggregation of samples into profiles.
 *
 * A profile is one timeline of stacks: one per sampled thread ("Thread 1234 \"MainThread\""),
 * plus named synthetic ones ("asyncio: awaiting", "event loop stalls"). Stacks are interned in a
 * prefix tree shared by all profiles (node = parent + frame), frames in one frame table, so a
 * sample costs one node id, a time and a weight. Writers (speedscope, collapsed) and the TUI read
 * profiles, frames and the tree from here.
 */
#ifndef APROF_AGGREGATE_H
#define APROF_AGGREGATE_H

#include "point_store.h"
#include "sample.h"
#include "strtab.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct agg agg;

/* Node statistics are maintained by agg_profile_add for thread profiles (tid != 0) only:
 * synthetic profiles re-present time already sampled from threads. Parents always have smaller
 * indices than their children. */
typedef struct agg_node {
    uint32_t parent;     /* AGG_ROOT for a stack's outermost frame */
    uint32_t frame;      /* index into the frame table */
    uint64_t self_ns;    /* weight of samples whose leaf is this node */
    uint64_t total_ns;   /* weight of samples passing through this node */
    uint32_t self_count, total_count;
} agg_node;

#define AGG_ROOT UINT32_MAX

/* A profile's points (point_store.h): a thread profile merges consecutive samples of one stack
 * into one point, a by-stack profile keeps one point per distinct stack. */
typedef struct agg_profile {
    const char *name;    /* interned display name */
    pid_t tid;           /* thread id, or 0 for synthetic profiles */
    pid_t pid;           /* a thread profile's process (0 when not known) */
    size_t npoints;      /* points (read them with agg_point_iter or agg_point_get) */
    uint64_t nsamples;   /* samples added (the sum of the points' counts) */
    uint64_t total_ns;
} agg_profile;

agg *agg_new(strtab *strings);
void agg_free(agg *a);

/* The profile with this name (and tid), created on first use. NULL on allocation failure. */
agg_profile *agg_profile_get(agg *a, const char *name, pid_t tid);

/* Make an empty synthetic profile keep one point per distinct stack (weights and counts add,
 * t_ns is the newest sample's): for views with no time order, such as many tasks observed at
 * one instant. Its memory then grows with distinct stacks only. -1 (EINVAL) if not empty. */
int agg_profile_by_stack(agg *a, agg_profile *p);

/* Add one stack (outermost first) observed at t_ns standing for weight_ns. 0 or -1 (ENOMEM).
 * In a thread profile a sample with the same stack as the previous one adds to its point. */
int agg_profile_add(agg *a, agg_profile *p, const aprof_frame *frames, uint32_t n,
                    uint64_t t_ns, uint64_t weight_ns);

/* The profile of thread tid of process pid, created on first use and named `Thread TID "NAME"`,
 * or `Process PID "LABEL": Thread TID "NAME"` once the process has a label. A thread keeps one
 * profile for its whole life: when its name changes (Python names a thread only once
 * `threading` has registered it), the profile takes the newest name. Thread profiles are reached
 * through this function, not agg_profile_get(). NULL on allocation failure. */
agg_profile *agg_thread_profile(agg *a, pid_t pid, pid_t tid, const char *thread_name);

/* Name the thread profiles of process pid after it from now on (recordings of several
 * processes): label is what the process is, e.g. its command line. 0, or -1 (ENOMEM). */
int agg_process_label(agg *a, pid_t pid, const char *label);
/* The label of process pid, NULL when it has none. */
const char *agg_process_label_of(const agg *a, pid_t pid);

/* Route every thread of a sample to its thread profile (agg_thread_profile). Threads with
 * TSF_TORN are not added (the caller counts them). */
int agg_add_sample(agg *a, const aprof_sample *s);

/* The thread name of a thread profile (the newest one), NULL for a synthetic profile. */
const char *agg_profile_thread_name(const agg_profile *p);

/* Points of a profile in time order (by-stack profiles: in order of first sight). */
typedef struct agg_point_iter {
    point_iter it;
} agg_point_iter;
void agg_point_iter_init(agg_point_iter *it, const agg *a, const agg_profile *p, size_t first);
/* false at the end (or if the spill file cannot be read: agg_spill_failed says so). */
bool agg_point_iter_next(agg_point_iter *it, agg_point *out);
bool agg_point_get(const agg *a, const agg_profile *p, size_t i, agg_point *out);

/* A profile's samples summed per leaf: count[k] and weight[k] for node k, and at index
 * agg_node_count(a) for the empty stack. Both arrays have agg_node_count(a) + 1 entries and are
 * zeroed here. 0, or -1 if the spill file could not be read (EIO). */
int agg_profile_leaf_totals(const agg *a, const agg_profile *p, uint64_t *count, uint64_t *weight);

/* Did keeping old points in the temporary file fail (they stay in memory then)? */
bool agg_spill_failed(const agg *a);

size_t agg_profile_count(const agg *a);
agg_profile *agg_profile_at(const agg *a, size_t i);

size_t agg_frame_count(const agg *a);
const aprof_frame *agg_frame_at(const agg *a, uint32_t i);

size_t agg_node_count(const agg *a);
const agg_node *agg_node_at(const agg *a, uint32_t i);

/* Deepest stack added so far (a buffer of this many entries holds any stack). */
uint32_t agg_max_depth(const agg *a);

/* Walk from a leaf to the root: fills frame indices outermost first, returns the depth
 * (at most max; deeper stacks keep their outermost max frames). */
uint32_t agg_stack_frames(const agg *a, uint32_t leaf, uint32_t *out, uint32_t max);

/* Functions ranked by self time over all thread profiles. Fills up to max entries
 * (frame index and self time), merges identical (name, file) at different lines; returns count. */
typedef struct agg_top_entry {
    const char *name, *file;
    uint64_t self_ns, total_ns;
    uint32_t self_count, total_count;
} agg_top_entry;
size_t agg_top_functions(const agg *a, agg_top_entry *out, size_t max);

#endif
