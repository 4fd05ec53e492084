"""Inputs drawn for the checks: shapes, several inputs, arrays and callables, bad inputs."""

import numpy as np
import pytest

from pytest_weightshape.errors import SpecError
from pytest_weightshape.inputs import make_inputs

torch = pytest.importorskip("torch")


def test_shape_inputs_are_float32_normal_from_a_fixed_stream():
    (x,) = make_inputs((2, 3), seed=0)
    assert x.dtype == np.float32 and x.shape == (2, 3)
    expected = np.random.Generator(np.random.PCG64(0)).standard_normal((2, 3), dtype=np.float32)
    assert np.array_equal(x, expected)
    np.random.seed(123)  # the global RNG does not influence inputs
    assert np.array_equal(make_inputs((2, 3), seed=0)[0], x)


def test_multi_and_callable_inputs():
    a, b = make_inputs(((2, 3), (4,)), seed=0)
    assert a.shape == (2, 3) and b.shape == (4,)
    arr = np.arange(6, dtype=np.float32)
    assert make_inputs(arr, seed=0)[0] is arr
    (drawn,) = make_inputs(lambda rng: rng.integers(0, 10, (3,)), seed=5)
    assert np.array_equal(drawn, np.random.Generator(np.random.PCG64(5)).integers(0, 10, (3,)))
    t = torch.ones(2)
    x, y = make_inputs((t, (1, 2)), seed=0)
    assert x is t and y.shape == (1, 2)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ("abc", "inputs= got str"),
        ((), "inputs= is empty"),
        (lambda: 1 / 0, "callable raised"),
        ((2, -1), "negative dimension"),
    ],
)
def test_bad_inputs_explain(inputs, message):
    with pytest.raises(SpecError, match=message):
        make_inputs(inputs, seed=0)
