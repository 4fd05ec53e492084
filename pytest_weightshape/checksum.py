"""CRC-32 of large arrays on several threads, and seals: a record's CRC chained to the bytes it
was measured from.

zlib's CRC-32 cannot be split as it runs, but two CRCs combine: the CRC of ``A + B`` follows
from the CRCs of ``A`` and of ``B`` and the length of ``B`` (a product of polynomials modulo
the CRC's, see ``combine``). So spans of an array are checksummed side by side and combined in
order: the result is the CRC of the whole, bit for bit, whatever the number of threads.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from .blocks import in_parallel
from .document import DIGEST_PREFIX

#: zlib's CRC-32 polynomial, bit-reflected (bit 31 is the coefficient of x**0).
_POLY = 0xEDB88320
_ONE = 1 << 31  # the polynomial 1 (x**0)


def _times(a: int, b: int) -> int:
    """``a * b`` modulo the CRC polynomial, both in the reflected representation."""
    product = 0
    bit = _ONE
    while bit:
        if a & bit:
            product ^= b
        bit >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return product


def _squares() -> list[int]:
    """``x ** (2 ** k)`` modulo the polynomial for k = 0..31 (powers repeat beyond)."""
    out = [_ONE >> 1]  # x**1
    for _ in range(31):
        out.append(_times(out[-1], out[-1]))
    return out


_X_TO_2_TO = _squares()


def _x_to_bits(bits: int) -> int:
    """``x ** bits`` modulo the polynomial, by squaring."""
    power, k = _ONE, 0
    while bits:
        if bits & 1:
            power = _times(_X_TO_2_TO[k % 32], power)
        bits >>= 1
        k += 1
    return power


def combine(first: int, second: int, second_length: int) -> int:
    """The CRC-32 of ``A + B`` from ``crc32(A)``, ``crc32(B)`` and ``len(B)`` in bytes."""
    return _times(_x_to_bits(8 * second_length), first) ^ second


def array_crc(array: np.ndarray, start: int = 0, most: int = 0) -> int:
    """``zlib.crc32`` of ``array``'s bytes in C order (continuing from ``start``), its spans
    checksummed side by side (``blocks.in_parallel``; zlib releases the GIL) and combined."""
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    if data.size < (1 << 22):  # ~1 ms on one thread: not worth a thread
        return zlib.crc32(data.data, start)

    def span_crc(span: slice) -> tuple[int, int]:
        return zlib.crc32(data[span].data), span.stop - span.start

    spans = in_parallel(span_crc, data.size, most)
    crc = start
    for part, length in spans:
        crc = combine(crc, part, length)
    return crc


def seal(crc: int, record: Mapping[str, Any]) -> str:
    """``crc32:`` and the CRC of ``record`` (as canonical JSON: sorted keys, floats as ``repr``,
    as a golden writes them) continued from ``crc``, the CRC of the bytes it was measured from.
    Equal seals: the same bytes, and the record as it was measured from them (not edited, not
    carried over from other bytes)."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return f"{DIGEST_PREFIX}{zlib.crc32(text.encode(), crc):08x}"
