import math

import numpy as np
import pytest

from pytest_weightshape.frameworks import Array
from pytest_weightshape.portable import redraw


def params(seed, names_shapes, constant=()):
    rng = np.random.default_rng(seed)
    out = []
    for name, shape in names_shapes:
        value = np.zeros(shape, np.float32) if name in constant else rng.standard_normal(shape)
        out.append(Array(name, value.astype(np.float32), "float32"))
    return out


KERAS = [("dense/kernel", (784, 10)), ("dense/bias", (10,))]
TORCH = [("fc.weight", (10, 784)), ("fc.bias", (10,))]


def test_values_depend_only_on_seed_name_and_shape():
    a = redraw(params(1, KERAS), seed=0, convention="keras")
    b = redraw(params(2, KERAS), seed=0, convention="keras")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = redraw(params(1, KERAS), seed=1, convention="keras")
    assert not np.array_equal(a["dense/kernel"], c["dense/kernel"])
    assert a["dense/kernel"].dtype == np.float32 and a["dense/kernel"].shape == (784, 10)


def test_keras_scale_is_glorot_uniform_and_constants_are_kept():
    out = redraw(params(1, KERAS, constant={"dense/bias"}), seed=0, convention="keras")
    limit = math.sqrt(6 / (784 + 10))
    kernel = out["dense/kernel"]
    assert np.abs(kernel).max() <= limit
    assert kernel.std() == pytest.approx(limit / math.sqrt(3), rel=0.02)
    assert not out["dense/bias"].any()


def test_torch_scale_is_kaiming_uniform_and_biases_follow_their_weight():
    out = redraw(params(1, TORCH), seed=0, convention="torch")
    limit = 1 / math.sqrt(784)
    assert np.abs(out["fc.weight"]).max() <= limit
    assert out["fc.weight"].std() == pytest.approx(limit / math.sqrt(3), rel=0.02)
    assert np.abs(out["fc.bias"]).max() <= limit and out["fc.bias"].std() > 0


def test_convolution_fans():
    conv = [Array("c/kernel", np.ones((5, 5, 1, 32), np.float32) * np.arange(32), "float32")]
    out = redraw(conv, seed=0, convention="keras")
    assert np.abs(out["c/kernel"]).max() <= math.sqrt(6 / (25 * 1 + 25 * 32))
