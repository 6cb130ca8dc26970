/* Growing a heap array, the one way every module does it: the capacity doubles (from `first`
 * when the array is empty) until it holds what is needed, never passes a limit, and the byte
 * count is checked for overflow (counts can come from a hostile target's memory). */
#ifndef APROF_GROW_H
#define APROF_GROW_H

#include <stdbool.h>
#include <stddef.h>

/* The array at *arr (capacity *cap elements of elem bytes) made to hold at least need elements:
 * true with *arr (moved or not) and *cap updated and the new slots zeroed; false, with both
 * unchanged (the array still the caller's to free), when need is over limit, the size overflows
 * or memory runs out. An empty array gets at least `first` slots even for need 0.
 * Use: if (!grow_array((void **)&t->items, &t->cap, t->n + 1, sizeof *t->items, 64, LIMIT)) */
bool grow_array(void **arr, size_t *cap, size_t need, size_t elem, size_t first, size_t limit);

#endif
