"""What a passing run takes from its golden instead of measuring it again.

An output's statistics are a function of its bytes, and its divergence from the base's output
a function of both outputs' bytes. So each recorded output carries a seal (``digest``, beside
its ``stats``): the CRC-32 of the output's bytes (for a variant's output that the base also
has: of the base output's bytes, then its own), continued over the statistics and the
divergence as recorded (``checksum.seal``). A later run reads its outputs' bytes once for their
CRC; where the golden's seal verifies against that CRC and the golden's own values, those
values are what measuring would give, to the bit, and are taken from the golden: no exact
quantiles, no CKA. Where it does not verify (a byte moved, however little; a value edited by
hand; a golden whose values were kept from an older recording) everything is measured.
Only a run that will not write the golden reuses (a recording measures).
"""

from __future__ import annotations

import copy
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from .checksum import seal


def chained(base_crc: int | None, crc: int, axis: int | None = None) -> int:
    """The CRC an output is sealed from: its own bytes', after the base output's when the
    output has a divergence from it, and the feature axis that divergence read when it is not
    the last (``hinted``): the same bytes diverge otherwise along another framework's axis."""
    if base_crc is None:
        return crc
    if axis is None:
        return zlib.crc32(struct.pack("<II", base_crc, crc))
    return zlib.crc32(struct.pack("<III", base_crc, crc, axis))


def hinted(base_shape: Sequence[int], shape: Sequence[int], hint: int) -> int | None:
    """The feature axis an output's divergence reads from its framework (``hint``, the
    adapter's ``feature_axis``) when that is not its last: only outputs of the base's shape
    read it (a differing axis names itself), and only torch's channels-first outputs of 4 or
    more dimensions have another (so seals of every other output are as they were)."""
    if list(base_shape) != list(shape) or not shape:
        return None
    axis = hint % len(shape)
    return None if axis == len(shape) - 1 else axis


#: How statistics and divergence are measured from an output's bytes, sealed with them. Bump it
#: with any change that moves a measured value of the same bytes (a statistic, a quantile
#: method, CKA's sampling or arithmetic): seals made before then no longer verify, so their
#: outputs are measured by the new method (and compared with the golden's values) instead of
#: lending values the old one measured.
MEASURES = 1


def sealed(crc: int, stats: Mapping[str, Any], divergence: Mapping[str, Any] | None) -> str:
    """The seal of an output's statistics (and divergence from the base's, if it has one)."""
    body: dict[str, Any] = {"measures": MEASURES, "stats": stats}
    if divergence is not None:
        body["divergence"] = divergence
    return seal(crc, body)


def _at(document: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(document, Mapping):
            return None
        document = document.get(key)
    return document


class Recorded:
    """A golden check document read before the run, as far as the run may take from it."""

    def __init__(self, document: Any) -> None:
        self._document = document
        #: Outputs taken from the golden: (variant, output) -> their divergence entry (or None).
        self.reused: dict[tuple[str, str], dict[str, Any] | None] = {}

    def stats(
        self, variant: str, name: str, crc: int, base_crc: int | None, axis: int | None = None
    ) -> Any:
        """The golden's statistics of output ``name`` of ``variant`` (a copy) when its seal
        verifies against ``crc`` (and the base output's ``base_crc``, and the feature ``axis``
        its divergence reads, see ``chained``), else ``None``. The divergence entry sealed with
        them is kept for ``divergence``."""
        record = _at(self._document, "variants", variant, "outputs", name)
        digest, stats = _at(record, "digest"), _at(record, "stats")
        if not isinstance(digest, str) or not isinstance(stats, Mapping):
            return None
        entry = None
        if base_crc is not None:
            entry = _at(self._document, "variants", variant, "divergence", "outputs", name)
            if not isinstance(entry, Mapping):
                return None
        try:
            if sealed(chained(base_crc, crc, axis), stats, entry) != digest:
                return None
        except (TypeError, ValueError):  # a hand-edited golden holding what JSON cannot
            return None
        self.reused[(variant, name)] = copy.deepcopy(dict(entry)) if entry is not None else None
        return copy.deepcopy(dict(stats))

    def fingerprints(self, variant: str, kind: str) -> dict[str, Mapping[str, Any]]:
        """The golden's fingerprints of ``variant``'s ``kind`` (``parameters``, ``buffers``),
        by tensor name: they lend mean and std to tensors whose digest is theirs
        (``stats.fingerprint``); a tensor whose entry is not a mapping has none."""
        tensors = _at(self._document, "variants", variant, kind)
        if not isinstance(tensors, Mapping):
            return {}
        found = {name: _at(tensor, "fingerprint") for name, tensor in tensors.items()}
        return {name: f for name, f in found.items() if isinstance(f, Mapping)}

    def divergence(self, variant: str, name: str) -> dict[str, Any] | None:
        """The divergence entry sealed with output ``name``'s reused statistics, if any."""
        return self.reused.get((variant, name))


def unverified_dropped(
    golden: Mapping[str, Any], merged: dict[str, Any], current: Mapping[str, Any]
) -> dict[str, Any]:
    """``merged`` (``document.with_missing(golden, current)``) with each output's seal as it
    verifies: the seal this run made where the values ``merged`` kept are this run's (also in
    place of a golden's seal that no longer verifies: damaged by a merge or an edit, it would
    never be taken again), none where they differ and the golden had none (this run's seal
    seals what it measured, not what the golden holds); a golden's seal beside values that
    differ stays as it was (the update changes nothing it need not)."""
    variants = _at(merged, "variants")
    if not isinstance(variants, Mapping):
        return merged
    for variant, data in variants.items():
        outputs = _at(data, "outputs")
        if not isinstance(outputs, dict):
            continue
        now = _at(current, "variants", variant)
        for name, record in outputs.items():
            if not isinstance(record, dict) or "digest" not in record:
                continue
            same = record.get("stats") == _at(now, "outputs", name, "stats") and _at(
                data, "divergence", "outputs", name
            ) == _at(now, "divergence", "outputs", name)
            kept = _at(golden, "variants", variant, "outputs", name, "digest") is not None
            sealed_now = _at(now, "outputs", name, "digest")
            if same and isinstance(sealed_now, str):
                record["digest"] = sealed_now
            elif not kept:
                del record["digest"]
    return merged
