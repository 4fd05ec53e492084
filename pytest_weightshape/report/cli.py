"""``python -m pytest_weightshape``: review goldens before accepting an update.

    python -m pytest_weightshape diff            # what --snapshot-update would change
    python -m pytest_weightshape show golden/tests/test_x/test_y.json

``diff`` reads the last pytest run's observations from pytest's cache (kept by the plugin at
session end), so it runs no model and imports no framework.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import golden, sensitivity
from ..degenerate import findings
from ..errors import GoldenError
from ..tolerance import Policy
from . import training
from .last_run import CACHE_KEY as CACHE_KEY  # re-exported: moved to last_run
from .last_run import configured_cache_dir as configured_cache_dir  # re-exported: moved to last_run
from .last_run import find_last_run
from .records import document_digest, label, number, ordered
from .text import allowed_text, text_table, value_text

_null_text = functools.partial(value_text, none="null")
#: Moved values listed per golden by ``diff`` (``--verbose``: all), largest drifts first.
DIFF_ROWS = 12


# -- show -----------------------------------------------------------------------------------


def show_check(name: str, check: Mapping[str, Any], layers: bool = False) -> list[str]:
    """One golden check as tables: parameters, output statistics, divergence from the base
    (and, with ``layers``, each variant's recorded layers; else how many were recorded)."""
    env = check.get("environment", {})
    versions = ", ".join(
        f"{k} {env[k]}" for k in ("torch", "tensorflow", "keras", "numpy") if env.get(k)
    )
    lines = [
        f"check {name!r}: seed {check.get('seed')}, weights {check.get('weights')}, "
        f"device {env.get('device', '?')}; recorded with {versions or 'unknown versions'}"
    ]
    stated = sensitivity.under(check, Policy())
    if stated is None:
        lines.append(sensitivity.not_stated(check))
    else:  # a golden does not know its test's tolerance overrides; reports use them
        lines.append(f"{stated.text()} (under the default tolerance)")
    degenerate: dict[str, list[str]] = {}
    for found in findings(check):
        degenerate.setdefault(found.output, []).append(
            f"  ! degenerate ({found.variant}): {found.kind}: {found.text}"
        )
    variants: Mapping[str, Any] = check.get("variants", {})
    names = list(variants)
    trained = training.is_training(check)
    lines.append("")
    lines.append("parameters (initial weights)" if trained else "parameters")
    rows = [
        (variant, param, _null_text(info["shape"]), str(info["dtype"]))
        for variant, data in variants.items()
        for param, info in data.get("parameters", {}).items()
    ]
    lines += ["  " + line for line in text_table(("variant", "name", "shape", "dtype"), rows)]
    lines.append(
        "  parameter count: "
        + ", ".join(f"{v} {variants[v].get('parameter_count')}" for v in names)
    )
    lines += pruning_lines(variants)
    outputs = list(dict.fromkeys(o for v in variants.values() for o in v.get("outputs", {})))
    for output in outputs:
        lines.append("")
        shapes = ", ".join(
            f"{v}: {_null_text(variants[v]['outputs'][output]['shape'])}"
            for v in names
            if output in variants[v].get("outputs", {})
        )
        marked = "  [DEGENERATE]" if output in degenerate else ""
        after = " after training" if trained else ""
        lines.append(f"output {output}{after} ({shapes}){marked}")
        lines += degenerate.get(output, [])
        stats = [variants[v].get("outputs", {}).get(output, {}).get("stats", {}) for v in names]
        keys = list(dict.fromkeys(k for s in stats for k in s))
        table = [(k, *(_null_text(s.get(k)) if k in s else "" for s in stats)) for k in keys]
        lines += ["  " + line for line in text_table(("statistic", *names), table)]
    others = [v for v in names if variants[v].get("divergence")]
    for output in outputs:
        divs = [variants[v]["divergence"].get("outputs", {}).get(output) for v in others]
        if not any(divs):
            continue
        lines.append("")
        base = next((v for v in names if variants[v].get("base")), "base")
        lines.append(f"divergence of {output} from the base ({base})")
        keys = list(dict.fromkeys(k for d in divs if d for k in d))
        table = [(k, *(_null_text((d or {}).get(k)) for d in divs)) for k in keys]
        lines += ["  " + line for line in text_table(("measure", *others), table)]
    if trained:
        lines += training.show_lines(check)
        for key, marks in degenerate.items():  # a diverged loss, a noise gradient
            if key not in outputs:
                lines += [f"  ! {key}: {mark.strip()[2:]}" for mark in marks]
        if all(data.get("layers") is None for data in variants.values()):
            return lines  # a training check records no layers: nothing to add them with
    return lines + (layer_tables(variants) if layers else [_layer_count(variants)])


def _layer_count(variants: Mapping[str, Any]) -> str:
    if all(data.get("layers") is None for data in variants.values()):
        return (
            "\nlayers: not recorded (an older golden: recording it again with "
            "pytest --snapshot-update adds them)"
        )
    counts = []
    for variant, data in variants.items():
        recorded = data.get("layers")
        if recorded is None:
            counts.append(f"{variant} not recorded")
        elif "unrecorded" in recorded:
            counts.append(f"{variant} not recorded ({recorded['unrecorded']})")
        else:
            counts.append(f"{variant} {recorded.get('total') or len(recorded['entries'])}")
    return "\nlayers: " + "; ".join(counts) + " (--layers lists them)"


def layer_tables(variants: Mapping[str, Any]) -> list[str]:
    """Each variant's recorded layers, in execution order (or why there are none)."""
    from ..layers import entries

    lines: list[str] = []
    for variant, data in variants.items():
        recorded = data.get("layers")
        lines.append("")
        if recorded is None:
            lines.append(
                f"layers of {variant}: not recorded (a golden recorded before layers were; "
                "recording it again with pytest --snapshot-update adds them)"
            )
            continue
        if "unrecorded" in recorded:
            lines.append(f"layers of {variant}: not recorded: {recorded['unrecorded']}")
            continue
        found = entries(recorded)
        total = recorded.get("total") or len(found)
        more = f", the first {len(found)} of {total} kept" if total > len(found) else ""
        lines.append(f"layers of {variant} ({len(found)} outputs in execution order{more})")
        header = ("layer", "type", "shape", "dtype", "mean", "std", "min", "max")
        rows = [
            (
                e.name,
                e.type,
                e.shape,
                e.dtype,
                *(_null_text(e.stats.get(k)) for k in ("mean", "std", "min", "max")),
            )
            for e in found
        ]
        lines += ["  " + line for line in text_table(header, rows)]
    return lines


#: What ``pruning_lines`` shows: (variant field, label).
_PRUNING_FIELDS = (
    ("sparsity", "sparsity"),
    ("nonzero_parameter_count", "nonzero parameters"),
    ("flops", "FLOPs"),
)


def pruning_lines(variants: Mapping[str, Any]) -> list[str]:
    """Sparsity, nonzero parameters, FLOPs and buffers per variant (issue 14); a field the
    golden does not hold is said to be not recorded, and how to add it (``--snapshot-update``
    adds what an older golden lacks, keeping its values)."""
    names = list(variants)
    again = "pytest --snapshot-update adds"
    lines = []
    for key, title in _PRUNING_FIELDS:
        if all(key in variants[v] for v in names):
            lines.append(
                f"  {title}: " + ", ".join(f"{v} {_null_text(variants[v][key])}" for v in names)
            )
        elif key == "flops":
            lines.append(
                f"  FLOPs: not recorded (torch models, with --weightshape-flops; {again} them, "
                "keeping the recorded values)"
            )
        else:
            lines.append(f"  {title}: not recorded ({again} it, keeping the recorded values)")
    buffers = [
        (variant, name, _null_text(info["shape"]), str(info["dtype"]))
        for variant, data in variants.items()
        for name, info in data.get("buffers", {}).items()
    ]
    if buffers:
        lines += ["", "buffers"]
        lines += [
            "  " + line for line in text_table(("variant", "name", "shape", "dtype"), buffers)
        ]
    elif not any("buffers" in variants[v] for v in names):
        lines.append(f"  buffers: not recorded (torch models; {again} them)")
    return lines


def _golden_files(raw: str) -> list[Path]:
    path = Path(raw)
    if path.is_dir():
        return sorted(
            p for p in path.rglob(f"*.{golden.FILE_EXTENSION}") if not p.name.startswith(".")
        )
    return [path]


def cmd_show(paths: Sequence[str], check: str | None, layers: bool = False) -> int:
    status = 0
    for path in (p for raw in paths for p in _golden_files(raw)):
        try:
            test, checks = golden.read_checks(path)
        except GoldenError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
            continue
        if not checks:
            print(f"error: {path} does not exist", file=sys.stderr)
            status = 2
            continue
        if check is not None and check not in checks:
            print(
                f"error: {path} has no check {check!r} (it has: {', '.join(checks)})",
                file=sys.stderr,
            )
            status = 2
            continue
        print(f"{path}: golden of {test} ({len(checks)} check{'s' if len(checks) != 1 else ''})")
        for name, document in checks.items():
            if check is not None and name != check:
                continue
            print()
            print("\n".join(show_check(name, document, layers)))
        print()
    return status


# -- diff -----------------------------------------------------------------------------------


def _excess(row: Mapping[str, Any]) -> float:
    ratio = number(row["ratio"])
    return float("inf") if ratio is None else ratio


def _moved_table(record: Mapping[str, Any], verbose: bool) -> list[str]:
    moved = sorted((s for s in record["statistics"] if not s["ok"]), key=lambda s: -_excess(s))
    hidden = 0 if verbose else max(0, len(moved) - DIFF_ROWS)
    moved = moved if verbose else moved[:DIFF_ROWS]
    rows = [
        (
            s["variant"],
            s["where"],
            s["stat"],
            _null_text(s["golden"]),
            _null_text(s["current"]),
            _null_text(s["difference"]) if s["difference"] is not None else "",
            allowed_text(number(s["allowed"])),
        )
        for s in moved
    ]
    header = ("variant", "where", "statistic", "golden", "current", "difference", "allowed")
    lines = ["    " + line for line in text_table(header, rows)]
    if hidden:
        lines.append(f"    ... and {hidden} more (--verbose lists all)")
    return lines


def _new_table(record: Mapping[str, Any]) -> list[str]:
    document = record.get("document") or {}
    rows = []
    for variant, data in document.get("variants", {}).items():
        for output, info in data.get("outputs", {}).items():
            stats = info.get("stats", {})
            rows.append(
                (
                    variant,
                    output,
                    _null_text(info.get("shape")),
                    _null_text(stats.get("mean")),
                    _null_text(stats.get("std")),
                    _null_text(stats.get("min")),
                    _null_text(stats.get("max")),
                )
            )
    header = ("variant", "output", "shape", "mean", "std", "min", "max")
    lines = ["    " + line for line in text_table(header, rows)]
    part = training.part(document, None)
    if part is not None:  # a training check: what it trained, and its final losses
        lines.append(f"    {training.description(part)}; {training.final_losses(part)}")
    return lines


def _stale(record: Mapping[str, Any], rootdir: Path) -> str | None:
    """Why the golden on disk is no longer the one the last run compared with, if it is not."""
    path = rootdir / record["golden_path"]
    try:
        _, checks = golden.read_checks(path)
    except GoldenError as exc:
        return f"the golden cannot be read now ({exc})"
    now = checks.get(record["check"])
    if record["golden_digest"] is None:
        return None if now is None else "a golden was recorded since the last run"
    if now is None:
        return "the golden was removed since the last run"
    if document_digest(now) != record["golden_digest"]:
        return "the golden changed since the last run"
    return None


def _here(rootdir: Path, path: str) -> str:
    """A golden's path as typed from the current directory (``show`` takes it as is)."""
    return os.path.relpath(rootdir / path) if path else "(no golden path)"


def cmd_diff(cache_dir: Path | None, show_all: bool, exit_code: bool, verbose: bool) -> int:
    source = find_last_run(cache_dir)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(
            f"error: no last run found ({source}); run pytest first (with the cache "
            "provider enabled), then this command; if pytest's cache_dir is set on the "
            "command line, pass it with --cache-dir",
            file=sys.stderr,
        )
        return 2
    rootdir = Path(data["rootdir"])
    pending = unknown = 0
    quiet: dict[str, int] = {}
    times = sorted({r["ran_at"] for r in data["checks"] if r.get("ran_at")})
    if times:
        span = times[0] if len(times) == 1 else f"{times[0]} to {times[-1]}"
        print(f"observations of {len(data['checks'])} checks, from runs at {span}\n")
    for record in ordered(data["checks"]):
        status = record["status"]
        where = f"{_here(rootdir, record['golden_path'])} [{record['check']}]"
        stale = _stale(record, rootdir) if status in ("drifted", "missing", "passed") else None
        if stale is not None:
            unknown += 1
            print(f"? {label(record)}: {stale}; rerun pytest to see what an update would do")
            continue
        if status == "drifted":
            pending += 1
            print(f"~ {label(record)}: would rewrite {where}")
            print(f"  {record['moved']} of {record['compared']} values moved beyond tolerance:")
            print("\n".join(_moved_table(record, verbose)))
            for cause in record["causes"]:
                print(f"  likely cause: {cause}")
            trained = record.get("training")
            if trained:  # a training check: what it trained, its losses, what moved
                print(f"  {training.description(trained)}; {training.final_losses(trained)}")
                for line in training.moved_lines(trained):
                    print(f"    {line}")
            if record["environment"]["changes"]:
                print(
                    "  environment (golden -> last run): "
                    + ", ".join(record["environment"]["changes"])
                )
        elif status == "missing":
            pending += 1
            print(f"+ {label(record)}: would record {where}")
            print("\n".join(_new_table(record)))
        elif status == "not written":  # the golden on disk is not what the check saw
            unknown += 1
            first = (record.get("message") or "the test failed after the check").splitlines()[0]
            print(f"! {label(record)}: not written, rerun pytest --snapshot-update: {first}")
        elif status == "error":
            first = (record.get("message") or "").splitlines()[0]
            print(f"! {label(record)}: error, nothing to update: {first}")
        elif show_all:
            what = "holds (not rewritten)" if status == "passed" else f"{status} in the last run"
            print(f"= {label(record)}: {what}")
        else:
            quiet[status] = quiet.get(status, 0) + 1
    for orphan in data.get("orphans", []):
        if (rootdir / orphan).exists():
            pending += 1
            print(
                f"- {_here(rootdir, orphan)}: would delete (its test file or test no longer exists)"
            )
    tail = ", ".join(f"{n} {s}" for s, n in quiet.items())
    print(
        f"\n{pending} golden{'s' if pending != 1 else ''} would change with --snapshot-update"
        + (f"; {unknown} unknown (rerun pytest)" if unknown else "")
        + (f"; unchanged: {tail} (--all lists them)" if tail else "")
    )
    return 1 if exit_code and (pending or unknown) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_weightshape",
        description="Review pytest-weightshape goldens before accepting an update.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    diff = sub.add_parser(
        "diff", help="show what `pytest --snapshot-update` would change, from the last run"
    )
    diff.add_argument("--cache-dir", type=Path, help="pytest's cache folder (.pytest_cache)")
    diff.add_argument("--all", action="store_true", help="also list checks that hold")
    diff.add_argument("-v", "--verbose", action="store_true", help="list every moved value")
    diff.add_argument(
        "--exit-code",
        action="store_true",
        help="exit with 1 when some golden would change (or is unknown: changed since the run)",
    )
    show = sub.add_parser("show", help="print golden files as tables")
    show.add_argument(
        "paths", nargs="+", help="golden files or folders (golden/.../test_x.json, golden/)"
    )
    show.add_argument("--check", help="only this check (name=...) of each file")
    show.add_argument(
        "--layers",
        action="store_true",
        help="also list each variant's recorded layers (output shape and statistics per layer)",
    )
    args = parser.parse_args(argv)
    if args.command == "diff":
        return cmd_diff(args.cache_dir, args.all, args.exit_code, args.verbose)
    return cmd_show(args.paths, args.check, args.layers)
