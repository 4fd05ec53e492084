import numpy as np
import pytest

from pytest_weightshape.stats import summarize
from pytest_weightshape.tolerance import Override, Policy, dtype_rtol, resolve, rms


def test_value_stats_scale_atol_with_the_output():
    policy = Policy()
    # float32: rtol 1e-5, atol = rtol * rms
    assert policy.allowed("q50", 0.0, dtype="float32", scale=2.0, count=10) == pytest.approx(2e-5)
    assert policy.allowed("max", 3.0, dtype="float32", scale=2.0, count=10) == pytest.approx(5e-5)
    # the quiet moments get max(0.1, 1/sqrt(n)) of it: 1/sqrt(100) = 0.1
    assert policy.allowed("std", 3.0, dtype="float32", scale=2.0, count=100) == pytest.approx(5e-6)


@pytest.mark.parametrize(
    ("count", "factor"), [(1, 1.0), (4, 0.5), (25, 0.2), (100, 0.1), (10**6, 0.1), (0, 1.0)]
)
def test_quiet_moments_get_a_fraction_of_the_rtol_that_shrinks_with_the_count(count, factor):
    policy = Policy()
    for stat in ("mean", "std", "mean_abs"):
        allowed = policy.allowed(stat, 0.0, dtype="float32", scale=1.0, count=count)
        assert allowed == pytest.approx(1e-5 * factor)
    # order statistics follow single elements: the dtype's whole rtol
    for stat in ("min", "max", "q01", "q50", "q99"):
        assert policy.allowed(stat, 0.0, dtype="float32", scale=1.0, count=count) == 1e-5


def test_a_set_rtol_replaces_the_per_statistic_default():
    for layers in ((Override(rtol=1e-5), {}), (Override(), {"mean": Override(rtol=1e-5)})):
        policy = resolve(layers)
        allowed = policy.allowed("mean", 0.0, dtype="float32", scale=1.0, count=10**6)
        assert allowed == pytest.approx(1e-5)
    # the device floor still applies to the quiet moments
    cuda = Policy().for_devices("cuda", "cuda")
    assert cuda.allowed("mean", 0.0, dtype="float32", scale=1.0, count=10**6) == 1e-3


def test_dtype_defaults():
    assert dtype_rtol("float32") == 1e-5
    assert dtype_rtol("float64") == 1e-7
    assert dtype_rtol("float16") == 1e-3
    assert dtype_rtol("bfloat16") == 1.6e-2


def test_ratios_fractions_and_similarities():
    policy = Policy()
    assert policy.allowed("std_ratio", 1.0, dtype="float32", scale=9, count=1) == pytest.approx(
        4e-5
    )
    assert policy.allowed(
        "zero_fraction", 0.5, dtype="float32", scale=9, count=100
    ) == pytest.approx(0.01 + 0.5e-5)
    assert policy.allowed("cosine", 1.0, dtype="float32", scale=9, count=1) == pytest.approx(2e-5)


def test_precedence_stat_over_check_over_marker_over_cli_over_ini():
    ini = (Override(rtol=1e-1, atol=1.0), {})
    cli = (Override(rtol=1e-2), {})
    marker = (Override(rtol=1e-3), {"max": Override(atol=0.5)})
    check = (Override(rtol=1e-4), {"std": Override(rtol=0.25)})
    policy = resolve(check, marker, cli, ini)
    assert policy.default == Override(rtol=1e-4, atol=1.0)
    assert policy.allowed("std", 0.0, dtype="float32", scale=0, count=1) == pytest.approx(1.0)
    assert policy.allowed("max", 2.0, dtype="float32", scale=0, count=1) == pytest.approx(
        0.5 + 2e-4
    )
    assert resolve(marker, cli).default.rtol == 1e-3
    assert resolve(cli, ini).default.rtol == 1e-2


def test_rms_of_statistics_near_the_top_of_the_float_range_does_not_overflow():
    # a hand-edited golden can hold any float: squaring 1.3e154 overflowed before
    assert rms({"mean": 1.3407807929942597e154, "std": 0.62}) == pytest.approx(
        1.3407807929942597e154
    )
    assert rms({"mean": 1e308, "std": 1e308}) == pytest.approx(2**0.5 * 1e308)


def test_rms_is_the_scale_of_an_output():
    s = summarize(np.array([3.0, -3.0, 3.0, -3.0]))
    assert rms(s) == pytest.approx(3.0)
    assert rms({"mean": None, "std": None}) == 0.0
