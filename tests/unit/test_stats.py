import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pytest_weightshape.document import QUANTILE_KEYS, QUANTILES
from pytest_weightshape.stats import exact_quantiles, fingerprint, summarize


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 100_001])
def test_quantiles_equal_numpy_linear_method(n):
    # interpolation happens in float64, like np.quantile of the values widened to float64
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    reference = np.quantile(x.astype(np.float64), QUANTILES)
    assert exact_quantiles(x) == pytest.approx(reference, rel=1e-14, abs=1e-15)


def test_statistics_match_numpy_float64_reference():
    x = np.random.default_rng(1).standard_normal((4, 32, 28, 28)).astype(np.float32)
    x[x < -1] = 0.0
    s = summarize(x)
    x64 = x.astype(np.float64)
    assert s["count"] == x.size
    assert s["mean"] == pytest.approx(x64.mean(), rel=1e-12)
    assert s["std"] == pytest.approx(x64.std(), rel=1e-12)
    assert s["min"] == x.min() and s["max"] == x.max()
    assert s["mean_abs"] == pytest.approx(np.abs(x64).mean(), rel=1e-12)
    assert s["zero_fraction"] == pytest.approx((x == 0).mean())
    assert [s[k] for k in QUANTILE_KEYS] == pytest.approx(np.quantile(x64, QUANTILES), rel=1e-14)
    assert s["nan_count"] == s["inf_count"] == 0


def test_nan_and_inf_are_counted_not_mixed_into_statistics():
    x = np.array([1.0, 2.0, np.nan, np.inf, -np.inf, 3.0], dtype=np.float32)
    s = summarize(x)
    assert s["nan_count"] == 1 and s["inf_count"] == 2
    assert s["mean"] == pytest.approx(2.0) and s["min"] == 1.0 and s["max"] == 3.0


def test_all_nonfinite_gives_nulls_not_nan():
    s = summarize(np.array([np.nan, np.inf]))
    assert s["mean"] is None and s["q50"] is None and s["nan_count"] == 1


def test_statistics_are_deterministic_and_independent_of_layout():
    x = np.random.default_rng(2).standard_normal((64, 128)).astype(np.float32)
    assert summarize(x) == summarize(x.copy()) == summarize(np.asfortranarray(x))


def test_integer_bool_and_empty_arrays():
    assert summarize(np.array([True, False, True]))["mean"] == pytest.approx(2 / 3)
    assert summarize(np.arange(5))["q50"] == 2.0
    empty = summarize(np.zeros((0, 3), np.float32))
    assert empty["count"] == 0 and empty["mean"] is None


def test_fingerprint_sees_one_ulp_and_reports_size():
    x = np.random.default_rng(3).standard_normal(100).astype(np.float32)
    y = x.copy()
    y[17] = np.nextafter(y[17], np.float32(np.inf))
    fx, fy = fingerprint(x), fingerprint(y)
    assert fx["digest"] != fy["digest"]
    assert fx["digest"] == fingerprint(x.copy())["digest"]
    assert fx["mean"] == pytest.approx(fy["mean"]) and fx["std"] == pytest.approx(x.std(), rel=1e-6)
    assert fingerprint(x.reshape(10, 10))["digest"] != fx["digest"]  # shape is part of it
    assert fingerprint(x.astype(np.float64))["digest"] != fx["digest"]  # and the dtype
    assert re.fullmatch(r"crc32:[0-9a-f]{8}", fx["digest"])  # the method is named
    assert fingerprint(x[::2])["digest"] == fingerprint(x[::2].copy())["digest"]  # strided


@settings(max_examples=300, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from([np.float16, np.float32, np.float64, np.int32, np.bool_]),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=40),
        elements={"allow_nan": True, "allow_infinity": True},
    )
)
def test_every_statistic_matches_a_float64_reference(x):
    s = summarize(x)
    flat = x.reshape(-1).astype(np.float64)
    finite = flat[np.isfinite(flat)]
    assert s["count"] == x.size and s["nan_count"] == int(np.isnan(flat).sum())
    assert s["inf_count"] == int(np.isinf(flat).sum())
    assert s["zero_fraction"] == pytest.approx((flat == 0).mean() if x.size else 0.0)
    if not finite.size:
        assert s["mean"] is None and s["q50"] is None
        return
    reference = np.quantile(finite, QUANTILES)
    got = [s[k] for k in QUANTILE_KEYS]
    assert got == pytest.approx(reference, rel=1e-12, abs=1e-300)
    assert s["min"] == finite.min() and s["max"] == finite.max()
    scale = np.abs(finite).max() or 1.0  # a reference that does not overflow near 1e308
    assert s["mean"] == pytest.approx((finite / scale).mean() * scale, rel=1e-9, abs=1e-9 * scale)
    assert s["std"] == pytest.approx((finite / scale).std() * scale, rel=1e-6, abs=1e-6 * scale)


def test_quantiles_of_signed_zeros_duplicates_and_one_crowded_bin():
    x = np.array([-0.0, 0.0, -0.0, 1.0, 1.0, 1.0, -2.5, 1.0000001], dtype=np.float32)
    assert [summarize(x)[k] for k in QUANTILE_KEYS] == pytest.approx(
        np.quantile(x.astype(np.float64), QUANTILES), rel=1e-15
    )
    crowded = (1.0 + np.arange(100_000, dtype=np.float32) * np.float32(1e-7)).astype(np.float32)
    assert [summarize(crowded)[k] for k in QUANTILE_KEYS] == pytest.approx(
        np.quantile(crowded.astype(np.float64), QUANTILES), rel=1e-15
    )


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_swapped_byte_order_and_strided_arrays_give_the_native_statistics(dtype):
    # the exact quantiles bin the floats' bit patterns: those must be read in native order
    x = np.random.default_rng(5).standard_normal(200_001).astype(dtype)
    native = summarize(x)
    assert summarize(x.astype(x.dtype.newbyteorder("S"))) == native
    assert summarize(np.repeat(x, 2)[::2]) == native


@pytest.mark.parametrize("n", [10, 100_000])
def test_long_double_outputs_leave_nan_and_inf_out_of_the_statistics(n):
    x = np.random.default_rng(8).standard_normal(n).astype(np.longdouble)
    x[::7] = np.nan
    x[3::11] = np.inf
    s = summarize(x)
    finite = x[np.isfinite(x)].astype(np.float64)
    assert s["nan_count"] == np.isnan(x).sum() and s["inf_count"] == np.isinf(x).sum()
    assert s["mean"] == pytest.approx(finite.mean(), rel=1e-12)
    assert [s[k] for k in QUANTILE_KEYS] == pytest.approx(np.quantile(finite, QUANTILES))


def test_a_mostly_zero_output_is_read_once(monkeypatch):
    # every needed order statistic lies among the zeros: no second pass gathers values
    from pytest_weightshape import stats

    x = np.maximum(np.random.default_rng(6).standard_normal(300_000) - 3, 0).astype(np.float32)

    def second_pass(plan):
        raise AssertionError("the values were read a second time")

    monkeypatch.setattr(stats, "gather_table", second_pass)
    s = summarize(x)
    assert [s[k] for k in QUANTILE_KEYS] == list(np.quantile(x.astype(np.float64), QUANTILES))
    assert s["zero_fraction"] == (x == 0).mean() > 0.99


# -- the torch-native path (used for CUDA outputs; exercised here on CPU tensors) -------------

TORCH_CASES = [
    "float32",
    "relu (zeros never gathered)",
    "nan and inf",
    "float64, offset",
    "float16",
    "bfloat16",
    "non-contiguous",
    "small",
    "int64",
    "all nan",
]
EXACT_KEYS = (*QUANTILE_KEYS, "count", "min", "max", "zero_fraction", "nan_count", "inf_count")


def _torch_cases():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    normal = rng.standard_normal(300_001, dtype=np.float32)
    with_nonfinite = normal.copy()
    with_nonfinite[::997] = np.nan
    with_nonfinite[5::1009] = np.inf
    return {
        "float32": torch.from_numpy(normal),
        "relu (zeros never gathered)": torch.relu(torch.from_numpy(normal.reshape(-1, 1))),
        "nan and inf": torch.from_numpy(with_nonfinite),
        "float64, offset": torch.from_numpy(1e4 + rng.standard_normal(200_000)),
        "float16": torch.from_numpy(rng.standard_normal(100_000).astype(np.float16)),
        "bfloat16": torch.from_numpy(normal[:100_000]).to(torch.bfloat16),
        "non-contiguous": torch.from_numpy(normal[:300_000].reshape(600, 500)).T,
        "small": torch.from_numpy(normal[:100]),
        "int64": torch.from_numpy(rng.integers(-5, 5, 100_000)),
        "all nan": torch.full((70_000,), float("nan")),
    }


@pytest.mark.parametrize("case", TORCH_CASES)
def test_torch_native_statistics_equal_the_numpy_path(case):
    torch = pytest.importorskip("torch")
    from pytest_weightshape.frameworks import torch_stats
    from pytest_weightshape.frameworks.torch_adapter import to_numpy

    tensor = _torch_cases()[case]
    before = tensor.clone()
    host, native = summarize(to_numpy(tensor)[0]), torch_stats.summarize(tensor)
    assert native.keys() == host.keys()
    # order statistics, extremes and counts are exactly the same numbers
    assert {k: native[k] for k in EXACT_KEYS} == {k: host[k] for k in EXACT_KEYS}
    # sums differ by float64 rounding only (another summation order)
    for key in ("mean", "std", "mean_abs"):
        if host[key] is None:  # no finite value
            assert native[key] is None
        else:
            assert native[key] == pytest.approx(host[key], rel=1e-12, abs=1e-300)
    # the model's output is left untouched (a float64 output is not copied before the sums)
    assert torch.equal(before.isnan(), tensor.isnan())
    assert torch.equal(before.nan_to_num(), tensor.nan_to_num())


def test_torch_native_statistics_read_only_the_needed_bins_on_the_host(monkeypatch):
    torch = pytest.importorskip("torch")
    from pytest_weightshape.frameworks import torch_stats

    copied = []
    original = torch_stats.host
    monkeypatch.setattr(torch_stats, "host", lambda t: copied.append(t.numel()) or original(t))
    x = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0))
    torch_stats.summarize(x)
    assert copied and max(copied) < x.numel() // 20  # a few bins' values, not the output


# -- the passes over large arrays run on several threads ----------------------------------


def _large_cases():
    from pytest_weightshape.blocks import BLOCK

    rng = np.random.default_rng(11)
    normal = rng.standard_normal(9 * BLOCK + 1234).astype(np.float32)
    leading_nan = normal.copy()
    leading_nan[: 2 * BLOCK] = np.nan  # the shift comes from the third block
    leading_nan[5::1009] = np.inf
    return {
        "relu": np.maximum(normal, 0),
        "leading non-finite blocks": leading_nan,
        "float64 near the top of the range": rng.standard_normal(5 * BLOCK) * 1e300,
        "int64": rng.integers(-5, 5, 5 * BLOCK),
    }


@pytest.mark.parametrize("threads", [2, 3, 4])
def test_large_array_statistics_are_the_same_bit_for_bit_on_any_number_of_threads(
    monkeypatch, threads
):
    from pytest_weightshape import blocks

    cases = _large_cases()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert blocks.threads() == 1
    serial = {name: (summarize(x), fingerprint(x)) for name, x in cases.items()}
    monkeypatch.setattr(blocks, "threads", lambda: threads)  # also where fewer cores exist
    # under the suite's filterwarnings = error: overflow in a worker thread would raise here
    parallel = {name: (summarize(x), fingerprint(x)) for name, x in cases.items()}
    assert repr(parallel) == repr(serial)
    leading = cases["leading non-finite blocks"]
    assert parallel["leading non-finite blocks"][0]["nan_count"] == np.isnan(leading).sum()


def test_statistics_are_measured_when_no_thread_can_start(monkeypatch):
    import concurrent.futures

    from pytest_weightshape import blocks

    x = _large_cases()["leading non-finite blocks"]
    expected = summarize(x), fingerprint(x)

    def refuse(self, fn, *args):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(concurrent.futures.ThreadPoolExecutor, "submit", refuse)
    monkeypatch.setattr(blocks, "threads", lambda: 4)
    assert (summarize(x), fingerprint(x)) == expected


@pytest.mark.parametrize("threads", [1, 3])
def test_a_callers_numpy_error_settings_do_not_reach_the_statistics(monkeypatch, threads):
    # squares of tiny values underflow (the sums are then rescaled): expected, never an error
    from pytest_weightshape import blocks

    monkeypatch.setattr(blocks, "threads", lambda: threads)
    x = np.random.default_rng(13).standard_normal(5 * blocks.BLOCK) * 1e-200
    x[0] = 1e308
    expected = summarize(x), fingerprint(x)
    with np.errstate(all="raise"):
        assert (summarize(x), fingerprint(x)) == expected


def test_zero_counts_and_fingerprint_zero_fractions_match_a_plain_count():
    from pytest_weightshape.blocks import BLOCK
    from pytest_weightshape.stats import zero_count

    rng = np.random.default_rng(21)
    x = rng.standard_normal(3 * BLOCK + 17).astype(np.float32)
    x[::5] = 0.0
    x[1::7] = -0.0  # a zero too
    x[2::11] = np.nan  # never a zero
    for a in (x, x[:100], x.astype(np.float64), (x > 1).astype(np.int64), np.zeros(0)):
        expected = int(np.sum(a == 0))
        assert zero_count(a) == expected
        fraction = fingerprint(a, zeros=True)["zero_fraction"]
        assert fraction == (1.0 - (a.size - expected) / a.size if a.size else 0.0)


def test_fingerprint_moments_of_a_large_float32_array_size_it_closely():
    # the fingerprint's mean and std only size a change in a message: float32 rows, float64
    # across rows, still within ~1e-6 of the float64 values (and NaN, Inf left out)
    from pytest_weightshape.blocks import BLOCK

    rng = np.random.default_rng(22)
    x = (50.0 + 0.01 * rng.standard_normal(4 * BLOCK + 3)).astype(np.float32)
    x[7] = np.inf
    x[9] = np.nan
    finite = x[np.isfinite(x)].astype(np.float64)
    f = fingerprint(x)
    assert f["mean"] == pytest.approx(finite.mean(), rel=1e-7)
    assert f["std"] == pytest.approx(finite.std(), rel=1e-5)
