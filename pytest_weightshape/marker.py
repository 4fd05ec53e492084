"""The ``shape_variant`` marker's documented signature (registered by the plugin at load, shown
in errors by :mod:`.spec`); a module of its own so that loading the plugin imports no more."""

from __future__ import annotations

MARKER_SIGNATURE = (
    "shape_variant(**axes, variants=None, grid=False, seed=0, rtol=None, atol=None, "
    "tolerance=None, weights='framework', device=None)"
)
