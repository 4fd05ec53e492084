"""pytest-weightshape: pin how a model's outputs change with its weight shapes and init.

Public API: the ``@pytest.mark.shape_variant(...)`` marker and the ``shape_variant`` fixture
(see README). Importing this package imports no numpy, torch or tensorflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import moved
from .errors import GoldenError, ModelError, SpecError, WeightShapeError

if TYPE_CHECKING:
    from .draws import Draw, booleans, integers
    from .result import CheckResult

moved.install()  # old module paths (``pytest_weightshape.snapshot`` ...) keep working

__version__ = "0.1.0"
__all__ = [
    "CheckResult",
    "Draw",
    "GoldenError",
    "ModelError",
    "SpecError",
    "WeightShapeError",
    "booleans",
    "integers",
]

#: Names loaded when first used (loading the plugin stays free of numpy and frameworks).
_LAZY = {"CheckResult": "result", "Draw": "draws", "booleans": "draws", "integers": "draws"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    raise AttributeError(name)
