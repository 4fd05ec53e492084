"""One check's outcome as plain JSON data: what reports, the summary and ``diff`` read.

A record is built where the check ran (an xdist worker, maybe), travels on the test report,
and is rendered on the controller; so it holds only JSON types.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from typing import Any

from .. import golden, sensitivity
from ..compare import Difference, Verdict
from ..degenerate import findings
from ..document import DEFAULT_CHECK
from ..tolerance import Policy
from . import training
from .text import value_text

#: Re-exported: the number format moved to :mod:`.text` (``value_text``).
text = value_text

#: Record layout version (the JSON report and the cached last run carry it).
RECORD_VERSION = 1
#: Statuses, most alarming first (reports list checks in this order).
STATUSES = ("drifted", "missing", "error", "not written", "updated", "recorded", "passed")
#: Quantile levels of the statistics, as plotted (min and max close the curve).
QUANTILE_LEVELS = {
    "min": 0.0,
    "q01": 0.01,
    "q05": 0.05,
    "q25": 0.25,
    "q50": 0.5,
    "q75": 0.75,
    "q95": 0.95,
    "q99": 0.99,
    "max": 1.0,
}


def plain(value: Any) -> Any:
    """``value`` with non-finite floats as strings ('nan', 'inf'): standard JSON has none."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def number(value: Any) -> float | None:
    """A float from a record's number, also from the strings ``plain`` writes ('inf')."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def row(d: Difference) -> dict[str, Any]:
    """One compared value: golden, current, difference, allowed (None: exact), ratio, ok."""
    excess = d.excess if d.allowed is not None else None
    return {
        "variant": d.variant,
        "where": d.where,
        "stat": d.stat,
        "golden": d.golden,
        "current": d.current,
        "difference": d.difference,
        "allowed": d.allowed,
        "ratio": excess,
        "ok": d.ok,
    }


def document_digest(document: Mapping[str, Any]) -> str:
    """Identifies a golden check's exact content (``diff`` tells a golden changed since)."""
    return hashlib.blake2b(golden.render(document).encode(), digest_size=8).hexdigest()


def distributions(document: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """variant -> output -> quantile level -> value (plus mean and std), for pictures."""
    out: dict[str, dict[str, Any]] = {}
    for variant, data in (document or {}).get("variants", {}).items():
        for output, info in data.get("outputs", {}).items():
            stats = info.get("stats", {})
            points = {
                str(level): stats[key]
                for key, level in QUANTILE_LEVELS.items()
                if isinstance(stats.get(key), (int, float))
            }
            out.setdefault(variant, {})[output] = {
                "shape": info.get("shape"),
                "quantiles": points,
                "mean": stats.get("mean"),
                "std": stats.get("std"),
            }
    return out


def base_name(document: Mapping[str, Any] | None) -> str | None:
    for name, data in (document or {}).get("variants", {}).items():
        if data.get("base"):
            return str(name)
    return None


def build(
    *,
    nodeid: str,
    test: str,
    check: str,
    golden_path: str,
    status: str,
    document: Mapping[str, Any] | None,
    recorded: Mapping[str, Any] | None,
    verdict: Verdict | None,
    message: str | None = None,
    policy: Policy | None = None,
) -> dict[str, Any]:
    """The record of one check: ``document`` is what ran, ``recorded`` the golden's check.

    Only the values compared are kept (and the whole observation of a check without a
    golden), so a suite of thousands of checks makes reports, not copies of its goldens.
    """
    document = document or {}
    # the golden on disk after this check: the one just written, or the one compared with
    kept = document if status in ("recorded", "updated") else recorded
    rows = [row(d) for d in verdict.rows] if verdict is not None else []
    divergence = {
        name: data["divergence"]
        for name, data in document.get("variants", {}).items()
        if data.get("divergence") is not None
    }
    # a training check: its divergence per parameter is summarised in its training part
    trained = training.part(document, recorded, failed=status == "drifted")
    if trained is not None:
        divergence = {name: training.without_training(div) for name, div in divergence.items()}
    record: dict[str, Any] = {
        "nodeid": nodeid,
        "test": test,
        "check": check,
        "golden_path": golden_path,
        "status": status,
        "worst": verdict.worst if verdict is not None else None,
        "compared": verdict.compared if verdict is not None else 0,
        "moved": len(verdict.differences) if verdict is not None else 0,
        "causes": list(verdict.causes) if verdict is not None else [],
        "message": message,
        "environment": {
            "golden": dict(recorded.get("environment", {})) if recorded else None,
            "run": dict(document.get("environment", {})),
            "changes": list(verdict.environment_changes) if verdict is not None else [],
        },
        "base": base_name(document),
        "statistics": rows,
        "divergence": divergence,
        "distributions": {
            "current": distributions(document),
            "golden": distributions(recorded) if recorded else {},
        },
        "golden_digest": document_digest(recorded) if recorded else None,
        # what the golden can detect, under the check's tolerance (None: nothing was compared)
        "sensitivity": _sensitivity(kept, policy),
        "degenerate": [f"{f.variant} / {f.output}: {f.kind}" for f in findings(kept or {})],
        # the whole observation only where a golden would be made of it (``diff`` shows it)
        "document": dict(document) if status == "missing" else None,
    }
    if trained is not None:  # only a training check has one (other records stay as they were)
        record["training"] = plain(trained)
    return record


def _sensitivity(
    document: Mapping[str, Any] | None, policy: Policy | None
) -> dict[str, Any] | None:
    if not document or policy is None:
        return None
    found = sensitivity.under(document, policy)
    if found is None:
        why = sensitivity.not_stated(document)
        return {"stated": False, "text": why, "older": why == sensitivity.NOT_STATED}
    return {
        "stated": True,
        "text": found.text(),
        "floor": found.floor,
        "detects": found.detects,
        "by": found.by,
        "overridden": found.wasted,
    }


def layers_record(localised: Iterable[Any]) -> list[dict[str, Any]]:
    """A failing check's localisation (``layers.Localisation`` per failing variant) as plain
    JSON: the first moved or changed layer, the layers after it, and every layer's drift in
    tolerances, in execution order (the HTML report draws them)."""
    return [plain(each.as_record()) for each in localised]


def counts(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """status -> number of checks, in :data:`STATUSES` order."""
    found: dict[str, int] = {}
    for record in records:
        found[record["status"]] = found.get(record["status"], 0) + 1
    return {s: found[s] for s in STATUSES if s in found} | {
        s: n for s, n in found.items() if s not in STATUSES
    }


def ordered(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Failing checks first, then by largest drift, then by test id (a stable order)."""
    rank = {s: i for i, s in enumerate(STATUSES)}
    return sorted(
        records,
        key=lambda r: (
            rank.get(r["status"], len(STATUSES)),
            -(number(r["worst"]) or 0.0),
            r["nodeid"],
            r["check"],
        ),
    )


def label(record: Mapping[str, Any]) -> str:
    """``tests/test_x.py::test_y`` or ``tests/test_x.py::test_y [name]`` for a named check."""
    check = record["check"]
    return record["nodeid"] if check == DEFAULT_CHECK else f"{record['nodeid']} [{check}]"


#: Compared values a report keeps of a check whose values all held: the largest drifts, for
#: context (every value of a failing check is kept). The rest is summarised per statistic
#: (``drift_by_statistic``), so a passing check costs a few KB whatever the model's size.
KEPT_ROWS = 5


def _ratio_key(row: Mapping[str, Any]) -> float:
    """How much a row says about drift: its ratio to what was allowed; an exact comparison
    that held (a shape, a count) says least."""
    if not row.get("ok", True):
        return number(row.get("ratio")) or math.inf
    if row.get("allowed") is None:
        return -1.0
    return number(row.get("ratio")) or 0.0


def kept_rows(record: Mapping[str, Any], limit: int = KEPT_ROWS) -> tuple[list[Any], int]:
    """The compared values a report shows of ``record``, and how many it leaves out: every
    value when one moved beyond tolerance, else the ``limit`` largest drifts."""
    rows = list(record.get("statistics") or [])
    if any(not r.get("ok", True) for r in rows) or len(rows) <= limit:
        return rows, 0
    ranked = sorted(range(len(rows)), key=lambda i: -_ratio_key(rows[i]))[:limit]
    return [rows[i] for i in sorted(ranked)], len(rows) - limit


def drift_by_statistic(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Per statistic (``div.`` before a divergence measure): how many values were compared
    within a tolerance, the largest relative change |current - golden| / |golden| and the
    largest change as a fraction of what was allowed ('inf' when an exact value moved)."""
    worst: dict[str, list[Any]] = {}
    for row in rows:
        difference = number(row.get("difference"))
        if row.get("allowed") is None or difference is None:
            continue
        golden_value = number(row.get("golden"))
        relative = abs(difference) / abs(golden_value) if golden_value else abs(difference)
        ratio = number(row.get("ratio"))
        ratio = math.inf if ratio is None else ratio
        where = str(row.get("where", ""))
        stat = f"div.{row['stat']}" if where.startswith("divergence") else str(row["stat"])
        n, rel, rat = worst.get(stat, [0, 0.0, 0.0])
        worst[stat] = [n + 1, max(rel, relative), max(rat, ratio)]
    return worst
