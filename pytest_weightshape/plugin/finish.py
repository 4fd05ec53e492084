"""Session end, when the session has something to tell: unused goldens of deleted test files,
the report file, the GitHub step summary, the run kept for ``python -m pytest_weightshape``, and
the ``weightshape`` section of the terminal summary.

Imported by the plugin only then, so a session that checks nothing does not load it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from . import syrupy_bridge
from .session import WRITTEN, Session, record_path, settings_of


def publish(session: pytest.Session, state: Session) -> None:
    """The plugin's ``pytest_sessionfinish`` on the controller (or a plain run)."""
    config = session.config
    settings = settings_of(config)
    _not_written(session, state)
    _orphans(session, state)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not (state.records or state.orphans or state.unused_tests or settings.report):
        return
    from ..report import formats, last_run

    orphans = [str(p.relative_to(config.rootpath)) for p in state.orphans + state.unused_tests]
    for index, report in enumerate(settings.reports or (None,)):
        published = formats.publish(
            state.records,
            orphans=orphans,
            report=report,
            # the step summary once, with the first report
            step_summary=Path(step_summary) if step_summary and index == 0 else None,
        )
        state.problems += published
        if report is not None and not any("report not written" in p for p in published):
            state.reports_written.append(report)
    state.report_written = state.reports_written[0] if state.reports_written else None
    cache = getattr(config, "cache", None)
    if cache is not None and (state.records or orphans):
        previous = cache.get(last_run.CACHE_KEY, None)
        cache.set(
            last_run.CACHE_KEY,
            last_run.last_run(previous, state.records, str(config.rootpath), orphans),
        )


def _not_written(session: pytest.Session, state: Session) -> None:
    """Goldens syrupy could not write fail the run, and their checks say ``not written``
    (the summary, the reports and ``diff`` would otherwise call them recorded or updated);
    so do checks whose goldens never reached the flush (``state.unwritten``: their xdist
    worker crashed, which a rerun of the crashed test would otherwise leave green)."""
    if state.unwritten and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if not state.not_written:
        return
    failed = {record_path(session.config, path): why for path, why in state.not_written}
    for record in state.records:
        why = failed.get(record["golden_path"])
        if why is not None and record["status"] in WRITTEN:
            record["status"] = "not written"
            record["message"] = f"golden {record['golden_path']} not written: {why}"
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _orphans(session: pytest.Session, state: Session) -> None:
    """Find, and under ``--snapshot-update`` remove, goldens of deleted test files; a plain
    run fails for them, like syrupy's unused snapshots (unless it only warns)."""
    config = session.config
    settings = settings_of(config)
    if not state.may_have_orphans():
        return
    if not settings.golden_root.resolve().is_relative_to(config.rootpath.resolve()):
        return  # a folder outside rootdir may hold other projects' goldens: never ours to judge
    scopes = _orphan_scopes(config)
    modules = _whole_modules(config, state)
    if not scopes and not modules:
        return
    from .. import golden

    state.orphans = golden.orphans(config.rootpath, settings.golden_root, scopes)
    state.unused_tests = golden.unused_tests(config.rootpath, settings.golden_root, modules)
    unused = state.orphans + state.unused_tests
    if unused and syrupy_bridge.updating(config):
        failed = golden.remove_files(unused, settings.golden_root)
        here = config.invocation_params.dir
        for path, exc in failed:
            state.problems.append(
                f"weightshape: golden of a deleted test file not removed: "
                f"{os.path.relpath(path, here)}: {type(exc).__name__}: {exc.strerror or exc}"
            )
        kept = {path for path, _ in failed}
        state.orphans = [p for p in state.orphans if p not in kept]
        state.unused_tests = [p for p in state.unused_tests if p not in kept]
        state.orphans_removed = True
        if failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif (
        unused
        and not syrupy_bridge.warn_unused(config)
        and session.exitstatus == pytest.ExitCode.OK
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _orphan_scopes(config: pytest.Config) -> list[Path]:
    """Folders in which goldens of deleted test files are called unused: the folders this run
    was given (its directory arguments, or the rootdir / testpaths by default). A run given
    only files or node ids looks at no other file's goldens. Keywords and markers (``-k``,
    ``-m``) do not matter here: no selection can include a file that does not exist."""
    folders = (config.invocation_params.dir / arg for arg in config.args if "::" not in arg)
    return [folder.resolve() for folder in folders if folder.is_dir()]


def _whole_modules(config: pytest.Config, state: Session) -> dict[Path, set[str]]:
    """Test files this run collected whole, each with the names of its tests (syrupy's:
    ``Class.test_x[param]``), mapped from the collected node ids.

    Only a run given paths (``pytest tests``, ``pytest tests/test_a.py``) needs this: a plain
    ``pytest`` leaves goldens of renamed tests to syrupy's unused report, which skips them when
    paths are given. A file reached by a node id (``test_a.py::test_x``) or a run that selects
    (``-k``, ``-m``, ``--deselect``, ``--lf``, ``--sw``) did not collect every test of a file,
    so it judges none: it never deletes another test's golden. Nor does a file (or folder)
    whose collection failed in part (a class that did not collect, a conftest that raised), or
    from which any plugin or conftest deselected a test."""
    option = config.option
    if not getattr(option, "file_or_dir", None):
        return {}
    selecting = ("keyword", "markexpr", "deselect", "lf", "stepwise", "pyargs")
    if any(getattr(option, name, None) for name in selecting):
        return {}
    here = config.invocation_params.dir
    given = [(here / arg).resolve() for arg in config.args if "::" not in arg]
    partial = [(config.rootpath / path).resolve() for path in state.partial]
    modules: dict[Path, set[str]] = {}
    for nodeid in state.collected:
        path, sep, rest = nodeid.partition("::")
        if not sep:
            continue
        module = (config.rootpath / path).resolve()
        if any(module.is_relative_to(p) for p in partial):
            continue
        if any(module == arg or module.is_relative_to(arg) for arg in given):
            modules.setdefault(module, set()).add(rest.replace("::", "."))
    return modules


def summary(terminalreporter: Any, config: pytest.Config, state: Session) -> None:
    """The plugin's ``pytest_terminal_summary``."""
    here = config.invocation_params.dir
    if not (
        state.records or state.orphans or state.unused_tests or state.problems or state.not_written
    ):
        if state.reports_written:
            shown = ", ".join(os.path.relpath(p, here) for p in state.reports_written)
            terminalreporter.write_line(f"weightshape: no checks ran; report: {shown}")
        return
    from ..report.formats import summary_lines

    terminalreporter.section("weightshape")
    for line in summary_lines(state.records):
        terminalreporter.write_line(line)
    for paths, whose in (
        (state.orphans, "deleted test files"),
        (state.unused_tests, "tests that no longer exist"),
    ):
        if not paths:
            continue
        what = "removed" if state.orphans_removed else "unused"
        terminalreporter.write_line(
            f"{len(paths)} golden file{'s' if len(paths) != 1 else ''} of {whose} {what}"
            + ("" if state.orphans_removed else " (--snapshot-update removes them)")
            + ":"
        )
        for path in paths:
            terminalreporter.write_line(f"  {os.path.relpath(path, here)}")
        if not state.orphans_removed and not syrupy_bridge.warn_unused(config):
            terminalreporter.write_line(
                "they fail this run, like unused snapshots (--snapshot-warn-unused only warns)",
                red=True,
            )
    if state.not_written:
        count = len(state.not_written)
        terminalreporter.write_line(
            f"{count} golden{'s' if count != 1 else ''} not written (the run fails):", red=True
        )
        for where, why in state.not_written:
            shown = os.path.relpath(where, here)
            terminalreporter.write_line(f"  {shown}: {why.replace(where, shown)}", red=True)
    unwritten = [
        r for r in state.records if r["status"] == "not written" and r["nodeid"] in state.unwritten
    ]
    if unwritten:
        count = len(unwritten)
        terminalreporter.write_line(
            f"{count} golden{'s' if count != 1 else ''} not written (fix the cause, then run "
            "pytest --snapshot-update again):",
            red=True,
        )
        for record in unwritten:
            shown = os.path.relpath(config.rootpath / record["golden_path"], here)
            why = state.unwritten[record["nodeid"]]
            terminalreporter.write_line(f"  {shown} ({record['nodeid']}): {why}", red=True)
    for problem in state.problems:
        terminalreporter.write_line(problem, red=True)
    if state.reports_written:
        shown = ", ".join(os.path.relpath(p, here) for p in state.reports_written)
        terminalreporter.write_line(f"report: {shown}")
