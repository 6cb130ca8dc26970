/* Built by scripts/fuzz.sh into a small shared library with DWARF (-g -O2), a seed of
 * fuzz_native_symbols: symbols, line tables, inlined calls (mix into both callers) and a
 * function GCC may split into a hot and a cold part. Never linked into aprof. */
#include <stdlib.h>

static inline unsigned mix(unsigned x)
{
    x ^= x >> 13;
    x *= 0x5bd1e995u;
    return x ^ (x >> 15);
}

__attribute__((noinline)) unsigned seed_hash(const unsigned char *p, unsigned long n)
{
    unsigned h = 2166136261u;
    for (unsigned long i = 0; i < n; i++)
        h = mix(h ^ p[i]);
    return h;
}

__attribute__((noinline)) unsigned seed_sum(const unsigned *v, unsigned long n)
{
    unsigned s = 0;
    for (unsigned long i = 0; i < n; i++) {
        if (__builtin_expect(v[i] == 0xdeadbeefu, 0))
            abort(); /* a cold block */
        s += mix(v[i]);
    }
    return s;
}
