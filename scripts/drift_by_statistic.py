"""Per-statistic drift of a run against its goldens, from a JSON report.

    pytest examples --weightshape-device=cuda --weightshape-report=cuda.json
    python scripts/drift_by_statistic.py cuda.json

For each statistic (mean, std, q50, cka, ...): over every check, variant and output, the
largest relative change |current - golden| / |golden| and the largest change as a fraction of
what was allowed. This is how the README's cross-device and upgrade drift tables are made.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def table(report: dict) -> list[tuple[str, int, float, float]]:
    worst: dict[str, tuple[int, float, float]] = {}
    for check in report["checks"]:
        summary = check.get("drift_by_statistic")
        if summary is not None:  # a passing check keeps only its largest drifts as rows
            for stat, (count, relative, ratio) in summary.items():
                ratio = float(ratio) if isinstance(ratio, str) else ratio  # 'inf'
                n, rel, rat = worst.get(stat, (0, 0.0, 0.0))
                worst[stat] = (n + count, max(rel, relative), max(rat, ratio))
            continue
        for row in check["statistics"]:
            if row["allowed"] is None or not isinstance(row["difference"], (int, float)):
                continue
            golden = row["golden"]
            relative = abs(row["difference"]) / abs(golden) if golden else abs(row["difference"])
            ratio = row["ratio"] if isinstance(row["ratio"], (int, float)) else float("inf")
            divergence = row["where"].startswith("divergence")
            stat = f"div.{row['stat']}" if divergence else row["stat"]
            n, rel, rat = worst.get(stat, (0, 0.0, 0.0))
            worst[stat] = (n + 1, max(rel, relative), max(rat, ratio))
    return sorted(((s, *v) for s, v in worst.items()), key=lambda r: -r[3])


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    report = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    print(f"{report['summary']}  ({len(report['checks'])} checks)")
    print("| statistic | values | largest relative change | largest change / allowed |")
    print("|---|---|---|---|")
    for stat, n, rel, ratio in table(report):
        print(f"| {stat} | {n} | {rel:.3g} | {ratio:.3g} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
