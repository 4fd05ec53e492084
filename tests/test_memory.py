"""Large outputs are measured without holding more than a small multiple of them in memory.

Peak memory is counted by tracemalloc (NumPy reports its buffers to it): deterministic, unlike
timings, which belong in benchmarks/.
"""

import tracemalloc

import numpy as np

from pytest_weightshape.divergence import output_divergence
from pytest_weightshape.stats import BLOCK, summarize, threads


def peak_of(fn, *args):
    tracemalloc.start()
    try:
        result = fn(*args)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_statistics_and_divergence_of_a_large_output_need_about_one_copy():
    n = 20_000_000  # 80 MB of float32
    a = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    a[::1000] = np.nan  # the non-finite path filters too
    stats, peak = peak_of(summarize, a)
    assert stats["nan_count"] == n // 1000
    assert peak <= 1.25 * a.nbytes  # one copy of the finite values, for exact quantiles
    b = a * np.float32(1.5)
    a[::1000] = 0.0
    b[::1000] = 0.0
    stats, b_stats = summarize(a), summarize(b)
    divergence, peak = peak_of(
        output_divergence, a.reshape(-1, 100), b.reshape(-1, 100), stats, b_stats
    )
    assert divergence["cosine"] > 0.999 and divergence["cka"] > 0.999
    # streamed: a fixed number of float64 blocks per thread (three), whatever the size, and
    # CKA's sampled rows; no copy of the outputs
    assert peak <= (3 * threads() + 3) * BLOCK * 8 < a.nbytes
