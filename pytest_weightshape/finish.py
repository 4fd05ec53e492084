"""Session end, when the session has something to tell: unused goldens of deleted test files,
the report file, the GitHub step summary, the run kept for ``python -m pytest_weightshape``, and
the ``weightshape`` section of the terminal summary.

Imported by the plugin only then, so a session that checks nothing does not load it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .plugin import _may_have_orphans

if TYPE_CHECKING:
    from .plugin import Settings, _Outcomes


def publish(session: pytest.Session, settings: Settings, outcomes: _Outcomes) -> None:
    """The plugin's ``pytest_sessionfinish`` on the controller (or a plain run)."""
    config = session.config
    _orphans(session, settings, outcomes)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not (outcomes.records or outcomes.orphans or settings.report):
        return
    from . import reports

    orphans = [str(p.relative_to(config.rootpath)) for p in outcomes.orphans]
    outcomes.problems = reports.publish(
        outcomes.records,
        orphans=orphans,
        report=settings.report,
        step_summary=Path(step_summary) if step_summary else None,
    )
    if settings.report is not None and not outcomes.problems:
        outcomes.report_written = settings.report
    cache = getattr(config, "cache", None)
    if cache is not None and (outcomes.records or orphans):
        previous = cache.get(reports.CACHE_KEY, None)
        cache.set(
            reports.CACHE_KEY,
            reports.last_run(previous, outcomes.records, str(config.rootpath), orphans),
        )


def _orphans(session: pytest.Session, settings: Settings, outcomes: _Outcomes) -> None:
    """Find, and under ``--snapshot-update`` remove, goldens of deleted test files; a plain
    run fails for them, like syrupy's unused snapshots (unless it only warns)."""
    config = session.config
    option = config.option
    if not _may_have_orphans(config, settings):
        return
    if not settings.golden_root.resolve().is_relative_to(config.rootpath.resolve()):
        return  # a folder outside rootdir may hold other projects' goldens: never ours to judge
    scopes = _orphan_scopes(config)
    if not scopes:
        return
    from . import golden

    outcomes.orphans = golden.orphans(config.rootpath, settings.golden_root, scopes)
    if outcomes.orphans and option.update_snapshots:
        golden.remove_files(outcomes.orphans, settings.golden_root)
        outcomes.orphans_removed = True
    elif (
        outcomes.orphans
        and not option.warn_unused_snapshots
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


def summary(terminalreporter: Any, config: pytest.Config, outcomes: _Outcomes) -> None:
    """The plugin's ``pytest_terminal_summary``."""
    if not (outcomes.records or outcomes.orphans or outcomes.problems):
        if outcomes.report_written is not None:
            shown = os.path.relpath(outcomes.report_written, config.invocation_params.dir)
            terminalreporter.write_line(f"weightshape: no checks ran; report: {shown}")
        return
    from .reports import summary_lines

    terminalreporter.section("weightshape")
    for line in summary_lines(outcomes.records):
        terminalreporter.write_line(line)
    if outcomes.orphans:
        what = "removed" if outcomes.orphans_removed else "unused"
        terminalreporter.write_line(
            f"{len(outcomes.orphans)} golden file{'s' if len(outcomes.orphans) != 1 else ''} "
            f"of deleted test files {what}"
            + ("" if outcomes.orphans_removed else " (--snapshot-update removes them)")
            + ":"
        )
        for path in outcomes.orphans:
            terminalreporter.write_line(f"  {os.path.relpath(path, config.invocation_params.dir)}")
        if not outcomes.orphans_removed and not config.option.warn_unused_snapshots:
            terminalreporter.write_line(
                "they fail this run, like unused snapshots (--snapshot-warn-unused only warns)",
                red=True,
            )
    for problem in outcomes.problems:
        terminalreporter.write_line(problem, red=True)
    if outcomes.report_written is not None:
        shown = os.path.relpath(outcomes.report_written, config.invocation_params.dir)
        terminalreporter.write_line(f"report: {shown}")
