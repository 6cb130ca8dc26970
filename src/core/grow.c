#include "grow.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bool grow_array(void **arr, size_t *cap, size_t need, size_t elem, size_t first, size_t limit)
{
    if (need == 0)
        need = 1; /* an empty array still gets its first slots */
    if (need <= *cap)
        return true;
    if (elem == 0 || need > limit || need > SIZE_MAX / elem)
        return false;
    size_t ncap = *cap ? *cap : (first ? first : 1);
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    if (ncap > limit)
        ncap = limit;
    if (ncap > SIZE_MAX / elem)
        ncap = need;
    void *n = realloc(*arr, ncap * elem);
    if (!n)
        return false;
    memset((char *)n + *cap * elem, 0, (ncap - *cap) * elem);
    *arr = n;
    *cap = ncap;
    return true;
}
