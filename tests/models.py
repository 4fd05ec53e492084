"""Small models shared by the tests (NumPy only: importing this never imports torch)."""

import numpy as np


class Dense:
    """``relu(x @ kernel + bias)``; weights from ``np.random`` (seeded by the harness)."""

    def __init__(self, units: int = 10, in_features: int = 16, scale: float = 1.0) -> None:
        limit = np.sqrt(6.0 / (in_features + units))
        self.kernel = (np.random.uniform(-limit, limit, (in_features, units)) * scale).astype(
            np.float32
        )
        self.bias = np.random.uniform(-0.1, 0.1, units).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ self.kernel + self.bias, 0.0)
