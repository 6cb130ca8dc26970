/* The one hash function of aprof: a 64-bit finalizer (the murmur3 fmix64 constants) that
 * spreads every input bit over the result, and a combiner for keys of several words. Inline:
 * it runs for every frame of every sample. */
#ifndef APROF_HASH_H
#define APROF_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t hash64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Fold one more word into a running hash (order matters). */
static inline uint64_t hash_combine(uint64_t h, uint64_t word)
{
    return hash64(h ^ (word + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2)));
}

/* A byte string's hash (FNV-1a, then the finalizer so the low bits mix too). */
static inline uint64_t hash_bytes(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return hash64(h);
}

/* 32 bits of a hash, for hmap (hmap.h). */
static inline uint32_t hash32(uint64_t x)
{
    return (uint32_t)hash64(x);
}

#endif
