import tracemalloc

import numpy as np
import pytest

from pytest_weightshape.divergence import (
    _as_matrix,
    linear_cka,
    output_divergence,
    parameter_divergence,
)
from pytest_weightshape.stats import summarize


def div(a, b, axis=-1):
    return output_divergence(a, b, summarize(a), summarize(b), axis)


def test_feature_and_gram_forms_agree():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 20))
    y = np.tanh(x @ rng.standard_normal((20, 40)))

    def reference(a, b):  # the textbook Gram form on centred matrices
        a, b = a - a.mean(0), b - b.mean(0)
        k, ell = a @ a.T, b @ b.T
        return np.sum(k * ell) / np.linalg.norm(k) / np.linalg.norm(ell)

    assert linear_cka(x, y) == pytest.approx(reference(x, y))  # feature form: 60 <= n = 300
    assert linear_cka(x[:50], y[:50]) == pytest.approx(reference(x[:50], y[:50]))  # Gram form


def test_cka_is_blind_to_scale_the_ratios_are_not():
    x = np.random.default_rng(1).standard_normal((32, 16)).astype(np.float32)
    d = div(x, 2 * x)
    assert d["cka"] == pytest.approx(1.0) and d["cosine"] == pytest.approx(1.0)
    assert d["std_ratio"] == pytest.approx(2.0) and d["mean_abs_ratio"] == pytest.approx(2.0)
    assert d["max_abs_difference"] == pytest.approx(np.abs(x).max())
    assert d["cka_n"] == 32 and d["shape_change"] is None


def test_width_change_uses_the_differing_axis_as_features():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((1, 10, 10)).astype(np.float32)
    b = rng.standard_normal((1, 10, 20)).astype(np.float32)
    d = div(a, b)
    assert d["shape_change"] == "[1, 10, 10] -> [1, 10, 20]"
    assert d["cosine"] is None and d["max_abs_difference"] is None
    assert d["cka_n"] == 10 and 0 <= d["cka"] <= 1


def test_channels_first_hint_for_equal_shapes():
    x = np.random.default_rng(3).standard_normal((2, 8, 5, 5)).astype(np.float32)
    assert _as_matrix(x, 1).shape == (50, 8)
    assert div(x, x, axis=1)["cka_n"] == 50


def test_undefined_measures_are_null():
    one = np.ones((1, 4), np.float32)
    d = div(one, one)
    assert d["cka"] is None and d["cka_n"] is None  # n = 1 sample
    zero = np.zeros((3, 3), np.float32)
    d = div(zero, zero)
    assert d["cosine"] is None and d["std_ratio"] is None
    nan = np.array([[np.nan, 1.0]], np.float32)
    assert div(nan, nan)["cosine"] is None


def test_streaming_blocks_give_the_same_answer(monkeypatch):
    import pytest_weightshape.blocks as blocks
    import pytest_weightshape.divergence as divergence
    import pytest_weightshape.stats as stats

    rng = np.random.default_rng(5)
    a = rng.standard_normal((600, 12)).astype(np.float32)
    b = np.tanh(a @ rng.standard_normal((12, 7))).astype(np.float32)
    whole = div(a, a * 1.5 + 0.1), div(a, b), stats.summarize(a)
    monkeypatch.setattr(blocks, "BLOCK", 64)
    monkeypatch.setattr(stats, "BLOCK", 64)
    monkeypatch.setattr(divergence, "BLOCK", 64)
    chunked = div(a, a * 1.5 + 0.1), div(a, b), stats.summarize(a)
    for w, c in zip(whole, chunked, strict=True):
        numbers = {k for k, v in w.items() if isinstance(v, float)}
        assert {k: c[k] for k in numbers} == pytest.approx({k: w[k] for k in numbers}, rel=1e-12)
        assert {k: c[k] for k in w if k not in numbers} == {k: w[k] for k in w if k not in numbers}


def test_parameter_divergence_names_shape_changes():
    base = {"weight": {"shape": [10, 784]}, "bias": {"shape": [10]}}
    variant = {"weight": {"shape": [5, 784]}, "extra": {"shape": [2]}}
    d = parameter_divergence(base, variant, 7850, 3922)
    assert d["changed_shapes"] == ["weight: [10, 784] -> [5, 784]"]
    assert d["added"] == ["extra"] and d["removed"] == ["bias"]
    assert d["parameter_count_ratio"] == pytest.approx(3922 / 7850)
    assert parameter_divergence({}, {}, 0, 0)["parameter_count_ratio"] is None


@pytest.mark.filterwarnings("error")
def test_outputs_near_the_float64_range_give_nulls_not_warnings():
    big = np.array([[1e300, -1e300, 3e300], [2e300, 1e300, -3e300]])
    d = div(big, big * 1.5)
    assert d["cosine"] is None or np.isfinite(d["cosine"])
    assert d["std_ratio"] == pytest.approx(1.5)
    tiny = np.array([[1e-300, 2e-300], [3e-300, 5e-300], [1e-300, 0.0]])
    assert div(tiny, tiny)["cka"] in (None, pytest.approx(1.0))


def test_cka_of_large_outputs_uses_an_even_deterministic_subsample():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((6000, 3000)).astype(np.float32)
    b = (a[:, :1500] * 2 + 0.1).astype(np.float32)
    d = div(a, b)
    assert d["cka_n"] == 2048  # bounded cost: at most 2048 samples x 1024 features per side
    assert d == div(a, b)  # deterministic
    assert 0 < d["cka"] <= 1


@pytest.mark.parametrize("threads", [2, 3])
def test_divergence_of_large_outputs_is_the_same_bit_for_bit_on_any_number_of_threads(
    monkeypatch, threads
):
    from pytest_weightshape import blocks

    rng = np.random.default_rng(12)
    a = rng.standard_normal((1100, 2000)).astype(np.float32)  # 8.4 blocks
    b = a + np.float32(0.1) * rng.standard_normal(a.shape).astype(np.float32)
    monkeypatch.setattr(blocks, "threads", lambda: 1)
    serial = div(a, b)
    monkeypatch.setattr(blocks, "threads", lambda: threads)
    assert repr(div(a, b)) == repr(serial)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    reference = np.vdot(a64, b64) / np.linalg.norm(a64) / np.linalg.norm(b64)
    assert serial["cosine"] == pytest.approx(reference, rel=1e-6)
    assert serial["max_abs_difference"] == np.abs(a - b).max()


# -- large outputs are measured without holding more than a small multiple of them in memory --
# Peak memory is counted by tracemalloc (NumPy reports its buffers to it): deterministic, unlike
# timings, which belong in benchmarks/.


def peak_of(fn, *args):
    tracemalloc.start()
    try:
        result = fn(*args)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_statistics_and_divergence_of_a_large_output_need_about_one_copy():
    from pytest_weightshape.blocks import BLOCK, threads

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


def test_cka_of_float32_outputs_uses_float32_products_and_keeps_float64_accuracy():
    # float32 outputs: float32 products (twice as fast) centred and summed in float64; the
    # result stays within ~1e-9 of the float64 computation, far inside CKA's 1e-5 tolerance
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1000, 1024)).astype(np.float32) + 3.0  # far from zero
    y = (x[:, :512] @ rng.standard_normal((512, 300)).astype(np.float32)) * 0.1
    y += rng.standard_normal(y.shape).astype(np.float32)
    exact = linear_cka(x.astype(np.float64), y.astype(np.float64))  # float64 throughout
    for a, b in ((x, y), (x[:400, :100], y[:400, :100])):  # Gram form, feature form
        fast, slow = linear_cka(a, b), linear_cka(a.astype(np.float64), b.astype(np.float64))
        assert fast == pytest.approx(slow, rel=1e-8) and 0 < fast < 1
    assert linear_cka(x, y) == linear_cka(x.copy(), y.copy())  # deterministic
    assert linear_cka(x, y) == pytest.approx(exact, rel=1e-8)
