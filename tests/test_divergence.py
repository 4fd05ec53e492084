import numpy as np
import pytest

from pytest_weightshape.divergence import (
    _centered_matrix,
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
    xc, yc = x - x.mean(0), y - y.mean(0)
    feature = linear_cka(xc, yc)  # p + q = 60 <= n = 300
    gram = linear_cka(xc[:50], yc[:50])  # p + q = 60 > n = 50
    k, ell = xc[:50] @ xc[:50].T, yc[:50] @ yc[:50].T
    assert gram == pytest.approx(np.sum(k * ell) / np.linalg.norm(k) / np.linalg.norm(ell))
    kf, lf = xc @ xc.T, yc @ yc.T
    assert feature == pytest.approx(np.sum(kf * lf) / np.linalg.norm(kf) / np.linalg.norm(lf))


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
    x = np.random.default_rng(3).standard_normal((2, 8, 5, 5))
    assert _centered_matrix(x, 1).shape == (50, 8)
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


def test_parameter_divergence_names_shape_changes():
    base = {"weight": {"shape": [10, 784]}, "bias": {"shape": [10]}}
    variant = {"weight": {"shape": [5, 784]}, "extra": {"shape": [2]}}
    d = parameter_divergence(base, variant, 7850, 3922)
    assert d["changed_shapes"] == ["weight: [10, 784] -> [5, 784]"]
    assert d["added"] == ["extra"] and d["removed"] == ["bias"]
    assert d["parameter_count_ratio"] == pytest.approx(3922 / 7850)
    assert parameter_divergence({}, {}, 0, 0)["parameter_count_ratio"] is None
