"""pytest-weightshape: pin how a model's outputs change with its weight shapes and init.

Public API: the ``@pytest.mark.shape_variant(...)`` marker and the ``shape_variant`` fixture
(see README). Importing this package imports no numpy, torch or tensorflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import moved
from .errors import GoldenError, ModelError, SpecError, WeightShapeError

if TYPE_CHECKING:
    from .result import CheckResult

moved.install()  # old module paths (``pytest_weightshape.snapshot`` ...) keep working

__version__ = "0.1.0"
__all__ = ["CheckResult", "GoldenError", "ModelError", "SpecError", "WeightShapeError"]


def __getattr__(name: str) -> Any:
    if name == "CheckResult":
        from .result import CheckResult

        return CheckResult
    raise AttributeError(name)
