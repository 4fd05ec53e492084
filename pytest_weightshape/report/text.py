"""How every report writes a value: one number format, and plain-text tables.

Failure messages, the terminal summary, Markdown, HTML and the ``diff``/``show`` commands all
write values through :func:`value_text`, so a golden's number reads the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def value_text(value: Any, none: str = "", limit: int | None = None) -> str:
    """A value as reports print it: floats to 9 significant digits (enough to tell a golden
    from a current value that differs in the last float32 digit), names' presence in words
    (``present``/``absent``), lists item by item, ``None`` as ``none``; text longer than
    ``limit`` characters is cut with ``...``."""
    if value is None:
        return none
    if isinstance(value, bool):  # only presence differences carry booleans
        return "present" if value else "absent"
    if isinstance(value, float):
        return f"{value:.9g}"
    if isinstance(value, list):
        shown = "[" + ", ".join(value_text(v, none) for v in value) + "]"
    else:
        shown = str(value)
    if limit is not None and len(shown) > limit:
        return shown[: limit - 3] + "..."
    return shown


def allowed_text(allowed: float | None) -> str:
    """What a comparison allowed: ``exact``, or the largest difference to 3 digits."""
    return "exact" if allowed is None else f"{allowed:.3g}"


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns, two spaces apart."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
