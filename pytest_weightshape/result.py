"""What ``shape_variant.check`` returns: the observation, its golden status and verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .compare import Verdict


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check; ``document`` has the same layout as the golden's check.

    ``status`` is ``passed`` (matched the golden within tolerance), ``recorded`` (no golden
    existed and ``--snapshot-update`` wrote one) or ``updated`` (the golden was rewritten).
    """

    name: str
    status: str
    golden_path: str
    document: dict[str, Any]
    verdict: Verdict | None

    @property
    def variants(self) -> dict[str, Any]:
        """Variant name -> its measurements (kwargs, parameters, outputs, divergence)."""
        return self.document["variants"]  # type: ignore[no-any-return]

    @property
    def base(self) -> str:
        return next(name for name, v in self.variants.items() if v["base"])

    def output(self, variant: str, output: str = "output") -> dict[str, Any]:
        """``{"shape": [...], "dtype": ..., "stats": {...}}`` of one output of one variant."""
        return self.variants[variant]["outputs"][output]  # type: ignore[no-any-return]

    def divergence(self, variant: str) -> dict[str, Any]:
        """How ``variant`` differs from the base (parameters and each output)."""
        return self.variants[variant]["divergence"]  # type: ignore[no-any-return]
