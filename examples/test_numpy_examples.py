"""A plain NumPy model: a ReLU dense layer with 10 vs 5 units (the seed's Keras example,
written without a framework). Weights are drawn from ``np.random``, seeded per variant."""

import numpy as np
import pytest


class Dense:
    """``relu(x @ kernel + bias)`` with Glorot-uniform kernel, zero bias."""

    def __init__(self, units: int, in_features: int = 784) -> None:
        limit = np.sqrt(6.0 / (in_features + units))
        self.kernel = np.random.uniform(-limit, limit, (in_features, units)).astype(np.float32)
        self.bias = np.zeros(units, dtype=np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ self.kernel + self.bias, 0.0)


@pytest.mark.shape_variant(units=[10, 5])
def test_dense_units(shape_variant):
    result = shape_variant.check(Dense, inputs=(1, 784))
    assert result.output("units=5")["shape"] == [1, 5]
    assert result.divergence("units=5")["parameters"]["changed_shapes"] == [
        "bias: [10] -> [5]",
        "kernel: [784, 10] -> [784, 5]",
    ]
