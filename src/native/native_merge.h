/* Merging a thread's native stack and its Python stack into one stack in true call order.
 *
 * Each call of CPython's evaluation loop (a native frame with is_eval) is replaced by the Python
 * frames it was running; every other native frame stays where it is. Which Python frames belong
 * to which evaluation call is known from FRAMEF_ENTRY: an evaluation call starts with an entry
 * frame and runs every frame up to the next entry frame (3.10: one frame per call; 3.11+:
 * Python-to-Python calls stay inside one evaluation call).
 *
 * Alignment: the outermost Python group goes to the outermost evaluation call, and so on
 * inwards. There may be more evaluation calls than groups, but only innermost ones: a call that
 * has just started (or is about to return) and has no visible frame yet (3.12+: only its
 * C-stack shim frame; earlier versions: its frame is not linked yet, or not yet at its first
 * instruction). Those calls are simply dropped. Anything else - more groups than evaluation
 * calls, a first Python frame that is not an entry frame, a native stack that was cut short
 * and does not match exactly, a torn or truncated Python stack - is a disagreement: the merge
 * does not invent an order and returns MERGE_UNMERGED with the Python frames, then the
 * `unmerged` mark frame, then the native frames the innermost evaluation call was running (all
 * native frames when no evaluation call was recognised).
 */
#ifndef APROF_NATIVE_MERGE_H
#define APROF_NATIVE_MERGE_H

#include "sample.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct merge_native {
    aprof_frame f;   /* kind FRAME_NATIVE */
    bool is_eval;    /* a call of the evaluation loop */
} merge_native;

typedef struct merge_input {
    const merge_native *native;  /* innermost first, as unwound */
    uint32_t nnative;
    bool native_complete;        /* the unwinder reached the outermost frame */
    const aprof_frame *py;       /* outermost first, FRAMEF_ENTRY set on entry frames */
    const uint64_t *py_owners;   /* parallel to py, may be NULL */
    uint32_t npy;
    bool py_broken;              /* the Python stack is torn or truncated */
    aprof_frame unmerged_mark;   /* FRAME_MARK frame put between the two stacks when unmerged */
} merge_input;

typedef struct merge_output {
    aprof_frame *frames;         /* outermost first, room for cap */
    uint64_t *owners;            /* parallel to frames (0 for native and mark frames) */
    uint32_t cap;
    uint32_t n;
    int32_t *py_index;           /* optional (npy entries): where each Python frame went, -1 if
                                  * it did not fit */
    bool truncated;              /* more than cap frames: the outermost cap were kept */
} merge_output;

typedef enum merge_result {
    MERGE_OK = 0,
    MERGE_UNMERGED = 1,
} merge_result;

merge_result native_merge(const merge_input *in, merge_output *out);

/* Counts used by native_merge, exposed for tests and diagnostics. */
uint32_t native_merge_groups(const aprof_frame *py, uint32_t npy);
uint32_t native_merge_evals(const merge_native *native, uint32_t nnative);

#endif
