"""Reports stay small: a passing check keeps its largest drifts and a per-statistic summary,
a failing check every compared value (issue 18, small reports)."""

import json

from pytest_weightshape.report.formats import to_json
from pytest_weightshape.report.html import TABLE_ROWS, to_html
from pytest_weightshape.report.records import KEPT_ROWS, drift_by_statistic, kept_rows

ENV = {"python": "3.11.7", "numpy": "2.4.6", "torch": "2.13.0", "device": "cpu", "threads": 2}


def _rows(count, moved=()):
    """``count`` compared values, as a model with many parameters gives: parameter means and
    stds, output statistics and divergence measures; ``moved`` indexes go beyond tolerance."""
    rows = []
    for i in range(count):
        where = "divergence/output" if i % 10 == 9 else f"parameters/layer{i // 3}.weight"
        stat = ("mean", "std", "cka")[i % 3]
        golden = 1.0 + i / 1000
        allowed = 1e-5
        difference = 3e-5 if i in moved else (i % 7) * 1e-7
        rows.append(
            {
                "variant": "width=5",
                "where": where,
                "stat": stat,
                "golden": golden,
                "current": golden + difference,
                "difference": difference,
                "allowed": allowed,
                "ratio": difference / allowed,
                "ok": i not in moved,
            }
        )
    rows.append(  # an exact comparison (a shape): never a drift
        {
            "variant": "width=5",
            "where": "output",
            "stat": "shape",
            "golden": [3, 5],
            "current": [3, 5],
            "difference": None,
            "allowed": None,
            "ratio": None,
            "ok": True,
        }
    )
    return rows


def _record(name, rows):
    moved = sum(not r["ok"] for r in rows)
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    dist = {"quantiles": {"0.0": -1.0, "0.5": 0.0, "1.0": 1.0}, "mean": 0.0, "std": 1.0}
    return {
        "nodeid": f"tests/test_wide.py::{name}",
        "test": name,
        "check": "default",
        "golden_path": f"golden/test_wide/{name}.json",
        "status": "drifted" if moved else "passed",
        "worst": max(ratios),
        "compared": len(rows),
        "moved": moved,
        "causes": ["forward numerics changed"] if moved else [],
        "message": "moved beyond tolerance" if moved else None,
        "environment": {"golden": ENV, "run": ENV, "changes": []},
        "base": "width=10",
        "statistics": rows,
        "divergence": {"width=5": {"outputs": {"output": {"cka": 0.9, "cka_n": 3}}}},
        "distributions": {
            "current": {"width=10": {"output": dist}, "width=5": {"output": dist}},
            "golden": {"width=10": {"output": dist}, "width=5": {"output": dist}},
        },
        "golden_digest": "0123456789abcdef",
        "document": None,
    }


def test_a_passing_check_keeps_its_largest_drifts_and_every_statistics_worst():
    rows = _rows(600)
    kept, omitted = kept_rows(_record("test_big", rows))
    assert len(kept) == KEPT_ROWS and omitted == len(rows) - KEPT_ROWS
    largest = sorted((r["ratio"] or 0.0 for r in rows), reverse=True)[:KEPT_ROWS]
    assert sorted((r["ratio"] for r in kept), reverse=True) == largest
    assert [rows.index(r) for r in kept] == sorted(rows.index(r) for r in kept)  # in order
    assert all(r["allowed"] is not None for r in kept)  # an exact value that held says least
    summary = drift_by_statistic(rows)
    assert set(summary) == {"mean", "std", "cka", "div.mean", "div.std", "div.cka"}
    for stat, (count, relative, ratio) in summary.items():
        mine = [
            r
            for r in rows
            if r["allowed"] is not None
            and (f"div.{r['stat']}" if r["where"].startswith("div") else r["stat"]) == stat
        ]
        assert count == len(mine)
        assert ratio == max(r["ratio"] for r in mine)
        assert relative == max(abs(r["difference"]) / r["golden"] for r in mine)


def test_a_failing_check_keeps_every_compared_value():
    rows = _rows(600, moved={17, 401})
    kept, omitted = kept_rows(_record("test_moved", rows))
    assert kept == rows and omitted == 0


def test_json_report_is_small_per_passing_check_and_whole_for_a_failing_one():
    passing = [_record(f"test_{i}", _rows(600)) for i in range(9)]
    failing = _record("test_moved", _rows(600, moved={17, 401}))
    report = json.loads(to_json([*passing, failing]))
    checks = {c["test"]: c for c in report["checks"]}
    assert len(checks["test_moved"]["statistics"]) == 601
    assert checks["test_moved"]["statistics_omitted"] == 0
    for i in range(9):
        check = checks[f"test_{i}"]
        assert len(check["statistics"]) == KEPT_ROWS
        assert check["statistics_omitted"] == 601 - KEPT_ROWS
        stds = sum(i % 3 == 1 and i % 10 != 9 for i in range(600))
        assert check["drift_by_statistic"]["std"][0] == stds
        assert len(json.dumps(check, indent=1)) < 20_000
    moved = checks["test_moved"]["drift_by_statistic"]["cka"]  # rows 17 and 401
    assert abs(moved[2] - 3.0) < 1e-9  # 3x what was allowed


def test_html_report_of_ten_checks_lists_the_failing_values_and_stays_small():
    passing = [_record(f"test_{i}", _rows(600)) for i in range(9)]
    failing = _record("test_moved", _rows(600, moved={17, 401}))
    page = to_html([*passing, failing])
    assert len(page.encode()) < 300_000
    assert page.count(f"{601 - TABLE_ROWS} more values held within tolerance") == 9
    assert "layer5.weight" in page and "layer133.weight" in page  # the moved rows (17, 401)
    assert page.count('<tr class="bad">') == 2
