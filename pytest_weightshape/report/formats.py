"""Check records -> the terminal summary, JSON, Markdown, the GitHub step summary, and the
report file (the HTML page is drawn by :mod:`.html`).

Every function takes the records of :mod:`.records` (plain data), so reports can be rebuilt
from a saved JSON report or the cached last run without running anything.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import golden
from . import training
from .last_run import CACHE_KEY as CACHE_KEY  # re-exported: moved to last_run
from .last_run import last_run as last_run  # re-exported: moved to last_run
from .records import (
    RECORD_VERSION,
    counts,
    drift_by_statistic,
    kept_rows,
    label,
    number,
    ordered,
    plain,
)
from .text import allowed_text, value_text

#: Differences listed per failing check in the Markdown report.
MD_ROWS = 10
#: Passing checks listed one by one in the GitHub step summary (GitHub caps it at 1 MiB).
STEP_SUMMARY_PASSING = 50
#: Characters of a likely cause shown in a Markdown table cell.
CAUSE_CHARS = 160


def summary_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The terminal summary: checks by status, the largest drift, goldens that hold although
    they were recorded under another environment."""
    if not records:
        return []
    shown = ", ".join(f"{n} {status}" for status, n in counts(records).items())
    total = len(records)
    lines = [f"{total} check{'s' if total != 1 else ''}: {shown}"]
    measured = [r for r in records if number(r["worst"]) is not None]
    if measured:
        top = max(measured, key=lambda r: number(r["worst"]) or 0.0)
        exact = [r for r in records if r["status"] == "drifted" and not number(r["worst"])]
        if number(top["worst"]):
            lines.append(f"largest drift: {top['worst']:.3g} of its tolerance ({label(top)})")
        elif exact:  # moved only where values compare exactly (a setting, NaN, a shape)
            lines.append(
                "largest drift: none within a tolerance; values that compare exactly moved "
                f"({label(exact[0])}{', ...' if len(exact) > 1 else ''})"
            )
        else:
            lines.append("largest drift: none (every value equals its golden's)")
    lines += training.summary_lines(ordered(records), label)
    lines += _sensitivity_lines(records)
    held = [r for r in records if r["status"] == "passed" and r["environment"]["changes"]]
    if held:
        changes = sorted({c for r in held for c in r["environment"]["changes"]})
        more = "; ..." if len(changes) > 6 else ""
        lines.append(
            f"{len(held)} golden{'s' if len(held) != 1 else ''} recorded under another "
            f"environment still hold{'s' if len(held) == 1 else ''} "
            f"({'; '.join(changes[:6])}{more})"
        )
    return lines


def _sensitivity_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the goldens detect: the weakest, overridden tolerances, goldens that do not say."""
    known = [r for r in records if (r.get("sensitivity") or {}).get("stated")]
    lines = []

    def detects(r: Mapping[str, Any]) -> float:  # 0: any change fails (rtol=0), not "none"
        found = number(r["sensitivity"]["detects"])
        return math.inf if found is None else found

    finite = [r for r in known if math.isfinite(detects(r))]
    if finite:
        weakest = max(finite, key=detects)
        lines.append(
            "sensitivity: every golden here fails at a relative change of every weight of "
            f"{number(weakest['sensitivity']['detects']):.2g} or less (weakest: {label(weakest)})"
        )
    wasted = [r for r in known if number(r["sensitivity"].get("overridden")) is not None]
    for r in wasted[:5]:
        lines.append(f"{label(r)}: {r['sensitivity']['text']}")
    blind = [r for r in known if r not in finite]
    if blind:
        lines.append(
            f"{len(blind)} golden{'s detect' if len(blind) != 1 else ' detects'} no weight change "
            f"({', '.join(label(r) for r in blind[:3])}{', ...' if len(blind) > 3 else ''})"
        )
    unstated = [
        r
        for r in records
        if (r.get("sensitivity") or {}).get("stated") is False
        and r["sensitivity"].get("older", True)
    ]
    if unstated:
        lines.append(
            f"{len(unstated)} golden"
            + (
                "s do not state what they detect"
                if len(unstated) != 1
                else " does not state what it detects"
            )
            + " (recorded before sensitivity was measured): pytest --snapshot-update adds it, "
            "keeping the recorded values"
        )
    degenerate = [r for r in records if r.get("degenerate")]
    if degenerate:
        shown = "; ".join(f"{label(r)}: {r['degenerate'][0]}" for r in degenerate[:3])
        lines.append(
            f"{len(degenerate)} golden{'s' if len(degenerate) != 1 else ''} with degenerate "
            f"outputs, which cannot detect some changes ({shown})"
        )
    return lines


# -- JSON -----------------------------------------------------------------------------------


def to_json(records: Sequence[Mapping[str, Any]], extra: Mapping[str, Any] | None = None) -> str:
    """Every check: status, the compared statistics (golden, current, difference, allowed;
    every one of a failing check, the largest drifts of a passing one, see ``kept_rows``),
    the drift per statistic, the divergence, the environment of golden and run. Standard
    JSON ('nan'/'inf' as strings)."""
    data = {
        "weightshape_report": RECORD_VERSION,
        "summary": counts(records),
        **(extra or {}),
        "checks": [_json_check(r) for r in ordered(records)],
    }
    return json.dumps(plain(data), indent=1, sort_keys=False, allow_nan=False) + "\n"


def _json_check(record: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k != "document"}
    rows, omitted = kept_rows(record)
    out["statistics"] = rows
    out["statistics_omitted"] = omitted
    out["drift_by_statistic"] = drift_by_statistic(record.get("statistics") or [])
    return out


# -- Markdown -------------------------------------------------------------------------------

_ICONS = {
    "passed": "✅",
    "recorded": "🆕",
    "updated": "📝",
    "drifted": "❌",
    "missing": "❌",
    "error": "❌",
    "not written": "⚠️",
}


def _cell(value: Any) -> str:
    return value_text(value).replace("|", "\\|").replace("\n", " ")


def _short(text: str, limit: int = CAUSE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cause(record: Mapping[str, Any]) -> str:
    if record["causes"]:
        return _short(str(record["causes"][0]))
    if record["status"] == "missing":
        return "no golden"
    if record["status"] == "error" and record["message"]:
        first = str(record["message"]).splitlines()[0]
        return _short(first.removeprefix(f"{record['nodeid']}: "))
    if record["environment"]["changes"]:
        return _short("holds under: " + "; ".join(record["environment"]["changes"][:3]))
    return ""


def to_markdown(
    records: Sequence[Mapping[str, Any]],
    *,
    title: str = "weightshape",
    passing_rows: int | None = None,
) -> str:
    """A table a reviewer reads in a pull request: one row per check, failing ones first,
    then the statistics that moved in each failing check. ``passing_rows`` caps the rows of
    checks that passed (the rest are counted)."""
    if not records:
        return f"### {title}\n\nNo shape_variant checks ran.\n"
    tally = ", ".join(f"{n} {s}" for s, n in counts(records).items())
    lines = [
        f"### {title}: {len(records)} check{'s' if len(records) != 1 else ''} ({tally})",
        "",
        "| | check | status | largest drift / tolerance | likely cause |",
        "|---|---|---|---|---|",
    ]
    ranked = ordered(records)
    shown_passing = 0
    for r in ranked:
        if r["status"] == "passed":
            shown_passing += 1
            if passing_rows is not None and shown_passing > passing_rows:
                continue
        worst = f"{number(r['worst']):.3g}" if number(r["worst"]) is not None else ""
        trained = f" — {_cell(training.description(r['training']))}" if r.get("training") else ""
        lines.append(
            f"| {_ICONS.get(r['status'], '')} | `{_cell(label(r))}`{trained} | {r['status']} "
            f"| {worst} "
            f"| {_cell(_cause(r))} |"
        )
    if passing_rows is not None and shown_passing > passing_rows:
        lines.append(f"| | ... and {shown_passing - passing_rows} more passed | | | |")
    for r in ranked:
        moved = [s for s in r["statistics"] if not s["ok"]]
        if not moved:
            continue
        moved.sort(key=lambda s: -(number(s["ratio"]) or float("inf")))
        lines += [
            "",
            f"<details><summary><code>{_cell(label(r))}</code>: {len(moved)} of "
            f"{r['compared']} values moved ({r['golden_path']})</summary>",
            "",
            "| variant | where | statistic | golden | current | difference | allowed |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in moved[:MD_ROWS]:
            allowed = allowed_text(number(s["allowed"]))
            lines.append(
                f"| {_cell(s['variant'])} | {_cell(s['where'])} | {_cell(s['stat'])} "
                f"| {_cell(s['golden'])} | {_cell(s['current'])} | {_cell(s['difference'])} "
                f"| {allowed} |"
            )
        if len(moved) > MD_ROWS:
            lines.append(f"| ... {len(moved) - MD_ROWS} more | | | | | | |")
        if r["environment"]["changes"]:
            lines += ["", "Environment (golden → now): " + ", ".join(r["environment"]["changes"])]
        lines += _layer_lines(r)
        moved_training = training.moved_lines(r["training"]) if r.get("training") else []
        if moved_training:
            lines += ["", "What moved in training:", ""]
            lines += [
                f"  - {_cell(line[2:])}" if line.startswith("  ") else f"- {_cell(line)}"
                for line in moved_training
            ]
        lines += ["", "</details>"]
    lines += _markdown_training(ranked)
    lines += _markdown_sensitivity(ranked)
    return "\n".join(lines) + "\n"


def _markdown_training(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Training checks: each variant's final loss, the golden's, its loss over the base's at
    the last step, and the parameters that took no gradient."""
    trained = [r for r in records if r.get("training")]
    if not trained:
        return []
    lines = [
        "",
        "**Training checks**: final loss per variant",
        "",
        "| check | variant | final loss | golden | loss / base (last step) | no gradient |",
        "|---|---|---|---|---|---|",
    ]
    for r in trained:
        for variant, final, golden_final, ratio, frozen in training.markdown_rows(r["training"]):
            lines.append(
                f"| `{_cell(label(r))}` | {_cell(variant)} | {final} | {golden_final} "
                f"| {ratio} | {_cell(frozen)} |"
            )
    return lines


def _markdown_sensitivity(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """What each golden detects (and its degenerate outputs), folded under one summary."""
    rows = [r for r in records if r.get("sensitivity") or r.get("degenerate")]
    if not rows:
        return []
    lines = [
        "",
        "<details><summary>What each golden detects</summary>",
        "",
        "| check | sensitivity | degenerate outputs |",
        "|---|---|---|",
    ]
    for r in rows:
        stated = (r.get("sensitivity") or {}).get("text", "")
        degenerate = "; ".join(r.get("degenerate") or [])
        lines.append(f"| `{_cell(label(r))}` | {_cell(stated)} | {_cell(degenerate)} |")
    return [*lines, "", "</details>"]


def _layer_lines(record: Mapping[str, Any]) -> list[str]:
    """Markdown lines naming each failing variant's first moved (or changed) layer."""
    lines = []
    for located in record.get("layers") or []:
        first = located.get("first")
        if first is not None:
            word = "changed" if located.get("status") == "changed" else "moved"
            lines += [
                "",
                f"First {word} layer: `{_cell(first['name'])}` ({_cell(first['type'])}), "
                f"variant {_cell(located['variant'])}: {_cell(first['detail'])}",
            ]
        elif located.get("note"):
            lines += ["", f"Layers (variant {_cell(located['variant'])}): {_cell(located['note'])}"]
    return lines


def append_step_summary(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """Append the Markdown table to GitHub Actions' job summary (``$GITHUB_STEP_SUMMARY``)."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(to_markdown(records, passing_rows=STEP_SUMMARY_PASSING) + "\n")


# -- files ----------------------------------------------------------------------


def render(
    path: Path, records: Sequence[Mapping[str, Any]], extra: Mapping[str, Any] | None = None
) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return to_json(records, extra)
    if suffix == ".md":
        return to_markdown(records)
    if suffix == ".html":
        from .html import to_html

        return to_html(records, extra)
    raise ValueError(f"unknown report format {path.suffix!r}: use .json, .md or .html")


def write(
    path: Path, records: Sequence[Mapping[str, Any]], extra: Mapping[str, Any] | None = None
) -> None:
    """Write a report; the format follows the file's extension. Written atomically."""
    golden.write_atomic(path, render(path, records, extra))


def publish(
    records: Sequence[Mapping[str, Any]],
    *,
    orphans: Sequence[str],
    report: Path | None,
    step_summary: Path | None,
) -> list[str]:
    """Write the report file and append the step summary; what failed, as messages (a report
    that cannot be written must not hide the run's own results behind a traceback)."""
    problems = []
    if report is not None:
        try:
            write(report, records, extra={"orphans": list(orphans)})
        except OSError as exc:
            problems.append(f"weightshape: report not written: {exc}")
    if step_summary is not None and (records or orphans):
        try:
            append_step_summary(step_summary, records)
        except OSError as exc:
            problems.append(f"weightshape: GITHUB_STEP_SUMMARY not written: {exc}")
    return problems
