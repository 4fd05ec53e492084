"""Plain callables on NumPy arrays: ``model(*inputs) -> array | tuple | dict``.

Parameters are the object's public ndarray attributes (``self.weight``...), in name order;
a plain function has none. Builders draw weights from ``np.random`` (seeded per variant).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from . import Array, flatten, to_numpy


def _leaf(value: Any) -> tuple[np.ndarray, str] | None:
    return to_numpy(value)


class NumpyAdapter:
    name = "numpy"
    convention = "keras"  # weights laid out (in, out), as in the examples

    def prepare(self, model: Any, device: str | None) -> Any:
        return model

    def convert_input(self, value: Any, model: Any, shared: bool = False) -> Any:
        converted = to_numpy(value)
        if converted is None:
            return value
        dtypes = {a.value.dtype for a in self.parameters(model)}
        if converted[0].dtype == np.float32 and np.dtype(np.float64) in dtypes:
            return converted[0].astype(np.float64)  # a float64 model gets float64 inputs
        if shared:
            return converted[0]
        return converted[0].copy()  # the forward's own: the callable may work in place

    def forward(
        self, model: Any, inputs: tuple[Any, ...], keywords: Mapping[str, Any] | None = None
    ) -> Any:
        return model(*inputs, **(keywords or {}))

    def parameters(self, model: Any) -> list[Array]:
        attrs = getattr(model, "__dict__", {})
        return [
            Array(name, value, value.dtype.name)
            for name, value in sorted(attrs.items())
            if isinstance(value, np.ndarray) and not name.startswith("_")
        ]

    def set_parameters(self, model: Any, values: Mapping[str, np.ndarray]) -> None:
        for name, value in values.items():
            setattr(model, name, value)

    def float64_copy(self, model: Any) -> Any | None:
        wide = copy.copy(model)
        for array in self.parameters(model):
            if np.issubdtype(array.value.dtype, np.floating):
                setattr(wide, array.name, array.value.astype(np.float64))
        return wide

    def outputs(self, raw: Any, model: Any) -> list[Array]:
        return flatten(raw, _leaf)

    def device(self, model: Any) -> str:
        return "cpu"

    def feature_axis(self, ndim: int) -> int:
        return -1

    def observe_layers(self, model: Any, forward: Callable[[], Any]) -> tuple[Any, Any]:
        """A NumPy callable has no layers to observe: ``forward()`` and a record saying so."""
        from ..layers import unrecorded

        return forward(), unrecorded("a NumPy callable has no layers to observe")


ADAPTER = NumpyAdapter()
