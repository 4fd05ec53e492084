"""What pruning and buffers leave in a variant's document (issue 14): each tensor's zero
fraction, the variant's realised sparsity and nonzero parameter count, its buffers, its FLOPs,
and the divergence's changes in these.

Pruning that keeps its masks (``torch.nn.utils.prune`` without ``prune.remove``) is recorded
by the torch adapter as the effective tensor under the module's own name (``conv1.weight``)
and the mask as a buffer (``conv1.weight_mask``); this module only reads arrays. Every field
is optional in a golden: one recorded before these fields existed is compared on what it holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .frameworks import Array
from .stats import fingerprint, zero_count

#: Variant fields these measures add (a golden without them is compared without them).
VARIANT_FIELDS = ("buffers", "sparsity", "nonzero_parameter_count", "flops")


def zero_fraction(array: np.ndarray) -> float:
    """The fraction of exact zeros (NaN is not zero); 0.0 for an empty array."""
    if not array.size:
        return 0.0
    return 1.0 - (array.size - zero_count(array)) / array.size  # as ever: goldens hold it


def tensors(
    arrays: Sequence[Array], known: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Named tensors (parameters, buffers): shape, dtype, and a fingerprint with the zero
    fraction beside digest, mean and std. ``known``: the golden's fingerprints of these
    tensors, by name, which lend their mean and std to the same bytes (see ``fingerprint``)."""
    out = {}
    for a in arrays:
        print_ = fingerprint(a.value, zeros=True, known=(known or {}).get(a.name))
        out[a.name] = {"shape": list(a.value.shape), "dtype": a.dtype, "fingerprint": print_}
    return out


def variant_fields(
    params: Sequence[Array], recorded: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The variant's realised sparsity (zero parameters / parameters; ``None`` without
    parameters) and its nonzero parameter count. ``recorded`` (``tensors(params)``) gives each
    tensor's zero fraction, so the parameters are not read again."""
    total = sum(p.value.size for p in params)
    nonzero = 0
    for p in params:
        fraction = (recorded or {}).get(p.name, {}).get("fingerprint", {}).get("zero_fraction")
        if isinstance(fraction, float):  # 1 - nonzero / size, exact to far below one count
            nonzero += round((1.0 - fraction) * p.value.size)
        else:
            nonzero += p.value.size - zero_count(p.value)
    return {
        "sparsity": (1.0 - nonzero / total) if total else None,
        "nonzero_parameter_count": nonzero,
    }


def divergence_fields(base: Mapping[str, Any], variant: Mapping[str, Any]) -> dict[str, Any]:
    """Base -> variant: the change in sparsity, the ratio of nonzero parameters, and the FLOPs
    ratio where both were counted."""
    out: dict[str, Any] = {}
    bs, vs = base.get("sparsity"), variant.get("sparsity")
    out["sparsity_change"] = (vs - bs) if bs is not None and vs is not None else None
    bn, vn = base.get("nonzero_parameter_count"), variant.get("nonzero_parameter_count")
    out["nonzero_parameter_count_ratio"] = (vn / bn) if bn and vn is not None else None
    bf, vf = base.get("flops"), variant.get("flops")
    if bf is not None or vf is not None:
        out["flops_ratio"] = (vf / bf) if bf and vf is not None else None
    return out


def same_weights(base: Mapping[str, Any], variant: Mapping[str, Any]) -> bool:
    """Whether a variant's parameters and buffers are the base's, name for name and byte for
    byte (digests), and it has some."""
    for key in ("parameters", "buffers"):
        b, v = base.get(key, {}), variant.get(key, {})
        if list(b) != list(v):
            return False
        for name in b:
            if b[name]["shape"] != v[name]["shape"] or b[name]["dtype"] != v[name]["dtype"]:
                return False
            if b[name]["fingerprint"].get("digest") != v[name]["fingerprint"].get("digest"):
                return False
    return bool(base.get("parameters"))


def same_outputs(base: Mapping[str, Any], variant: Mapping[str, Any]) -> bool:
    """Whether a variant's outputs have the base's names, shapes and statistics exactly."""
    b, v = base.get("outputs", {}), variant.get("outputs", {})
    return list(b) == list(v) and all(
        b[n]["shape"] == v[n]["shape"] and b[n]["stats"] == v[n]["stats"] for n in b
    )
