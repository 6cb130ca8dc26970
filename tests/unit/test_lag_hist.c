/* lag_hist: percentiles within 1% of the exact ones of a sorted copy, exact count, sum, min and
 * max, and the recent window. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "lag_hist.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void test_quantiles_match_exact(void **state)
{
    (void)state;
    enum { N = 200000 };
    static uint64_t v[N];
    lag_hist *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    uint64_t x = 88172645463325252ull, sum = 0;
    for (size_t i = 0; i < N; i++) {
        /* log-uniform from 200 ns to 2 s, like a loop's stretches, plus a few exact repeats */
        double e = (double)(rnd(&x) % 1000000) / 1000000.0;
        v[i] = i % 10 == 0 ? 1000000 : (uint64_t)(200.0 * pow(1e7, e));
        sum += v[i];
        assert_int_equal(lag_hist_add(h, v[i], i * 1000), 0);
    }
    qsort(v, N, sizeof(v[0]), cmp_u64);
    assert_int_equal(h->count, N);
    assert_int_equal(h->sum_ns, sum);
    assert_int_equal(lag_hist_quantile(h, 0), v[0]);
    assert_int_equal(lag_hist_quantile(h, 1), v[N - 1]);
    const double qs[] = {0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999};
    for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
        uint64_t exact = v[(size_t)(qs[k] * (N - 1) + 0.5)];
        double got = (double)lag_hist_quantile(h, qs[k]);
        /* under 1 us everything is one bucket; above, buckets are 1% wide */
        if (exact >= 1000)
            assert_true(fabs(got - (double)exact) <= 0.01 * (double)exact);
        else
            assert_true(got <= 1000);
    }
    lag_hist_free(h);
    free(h);
}

static void test_recent_window(void **state)
{
    (void)state;
    lag_hist *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    bool complete = false;
    assert_int_equal(lag_hist_quantile(h, 0.5), 0);
    assert_int_equal(lag_hist_recent_max(h, 0, &complete), 0);
    assert_true(complete);
    /* stretch i ends at 1000 * i and lasts i ns; one long one at the start */
    assert_int_equal(lag_hist_add(h, 999999, 0), 0);
    for (uint64_t i = 1; i <= 3 * LAG_HIST_RECENT; i++)
        assert_int_equal(lag_hist_add(h, i, 1000 * i), 0);
    uint64_t last = 3 * LAG_HIST_RECENT;
    assert_int_equal(lag_hist_recent_max(h, 1000 * (last - 10), &complete), last);
    assert_true(complete);
    /* a window reaching before the ring: the best it knows, flagged incomplete */
    assert_int_equal(lag_hist_recent_max(h, 0, &complete), last);
    assert_false(complete);
    assert_int_equal(h->max_ns, 999999);
    lag_hist_free(h);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantiles_match_exact),
        cmocka_unit_test(test_recent_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
