"""Verdicts -> the text a person reads in a failing test (and a missing golden's)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..compare import Difference, Verdict
from .text import allowed_text, text_table, value_text

#: Rows shown per (variant, output) table before the rest is summarised.
MAX_ROWS = 12
#: Characters of a value shown in a failure's table.
LIMIT = 40


def _signed(d: Difference) -> str:
    if d.difference is None:
        return ""
    if isinstance(d.golden, int) and isinstance(d.current, int):
        return f"{d.current - d.golden:+d}"
    return f"{d.difference:+.3g}"


def _table(rows: list[Difference]) -> list[str]:
    header = ("statistic", "golden", "current", "difference", "allowed")
    body = [
        (
            d.stat,
            value_text(d.golden, "null", LIMIT),
            value_text(d.current, "null", LIMIT),
            _signed(d),
            allowed_text(d.allowed),
        )
        for d in rows
    ]
    return text_table(header, body)


def failure(
    verdict: Verdict,
    *,
    test: str,
    check: str,
    path: str,
    nodeid: str,
    verbose: bool = False,
    localised: list[Any] | None = None,
) -> str:
    """The message of a check whose values moved beyond tolerance.

    ``localised`` (``layers.Localisation`` per failing variant) adds where it started: the
    ``first moved layer: NAME (TYPE)`` line and the layers after it.

    When a value compared exactly changed (a shape, a name, a training setting), the value
    tables that follow from it are summarised in one line unless ``verbose``; each table shows
    its largest drifts first.
    """
    what = "check" if check == "default" else f"check {check!r}"
    lines = [
        f"weightshape: {what} of {test} moved beyond tolerance "
        f"({len(verdict.differences)} of {verdict.compared} values)",
        f"golden: {path}",
    ]
    for cause in verdict.causes:
        lines.append(f"likely cause: {cause}")
    if verdict.environment_changes:
        lines.append("environment (golden -> now): " + ", ".join(verdict.environment_changes))
    lines.extend(_layer_lines(localised))
    structural = any(d.allowed is None for d in verdict.differences)
    grouped: dict[tuple[str, str], list[Difference]] = defaultdict(list)
    hidden = 0
    for diff in verdict.differences:
        if structural and diff.allowed is not None and not verbose:
            hidden += 1
            continue
        grouped[(diff.variant, diff.where)].append(diff)
    for (variant, where), rows in grouped.items():
        rows.sort(key=lambda d: -d.excess)
        shown = rows if verbose else rows[:MAX_ROWS]
        lines.append("")
        lines.append(f"variant {variant} / {where}")
        lines.extend("  " + line for line in _table(shown))
        if len(rows) > len(shown):
            lines.append(f"  ... and {len(rows) - len(shown)} more (-vv shows all)")
    if hidden:
        lines.append("")
        lines.append(
            f"{hidden} statistics also moved beyond tolerance, following the exact change above "
            "(a shape, name or setting; -vv shows them)"
        )
    lines.append("")
    lines.append(f"If the change is intended, accept it: pytest --snapshot-update {nodeid}")
    return "\n".join(lines)


def _layer_lines(localised: list[Any] | None) -> list[str]:
    if not localised:
        return []
    from ..layers import message_lines

    return message_lines(localised)


def missing(*, test: str, check: str, path: str, nodeid: str, refused: str | None = None) -> str:
    """The message of a check without a golden; ``refused`` says why an update flag did not
    record it (``strict``: CI mode; ``update_failing``: only failing goldens are rewritten)."""
    what = "check" if check == "default" else f"check {check!r}"
    lines = [f"weightshape: no golden for the {what} of {test}", f"expected at: {path}"]
    if refused == "strict":
        lines.append(
            "Strict mode (the CI environment variable or --weightshape-strict) never records "
            "goldens: a golden is reviewed before it gates a build."
        )
        lines.append(
            f"Record it where you develop: pytest --snapshot-update {nodeid}, review and commit "
            "the file (or, in a job meant to record, pass -o weightshape_strict=false)"
        )
    elif refused == "update_failing":
        lines.append(
            "Not recorded: --weightshape-update-failing rewrites only the goldens of failing "
            f"checks. Record it with: pytest --snapshot-update {nodeid}"
        )
    else:
        lines.append(
            f"Record it with: pytest --snapshot-update {nodeid} (then review and commit the file)"
        )
    return "\n".join(lines)
