"""The session's state: which tests use ``shape_variant``, which of them failed, the record of
every check (on an xdist controller, the workers' too), and what session end found.

One :class:`Session` per pytest session, registered as a plugin for the hooks that keep it
current, stashed on the config with its :class:`~.options.Settings`. The fixture and session
end read it through this module, never through the plugin's hooks module.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from . import syrupy_bridge
from .options import Settings

SETTINGS = pytest.StashKey[Settings]()
SESSION = pytest.StashKey["Session"]()
#: Per test item: the records of its checks, until its report carries them.
RECORDS = pytest.StashKey[list[dict[str, Any]]]()
#: Statuses of a check whose golden is written at session end, if its test passes.
WRITTEN = ("recorded", "updated")
#: The syrupy extension's module: imported only by a session that checks something.
EXTENSION_MODULE = "pytest_weightshape.plugin.extension"
#: Where an xdist worker hands its goldens that were not written to the controller.
NOT_WRITTEN_KEY = "weightshape_not_written"
#: Where an xdist worker hands the paths it did not collect whole to the controller.
PARTIAL_KEY = "weightshape_partial"
#: The extension class by the name syrupy's xdist workers report it under.
EXTENSION_CLASS = f"{EXTENSION_MODULE}.WeightShapeExtension"
_PREVIOUS_LOCATION = pytest.StashKey[Any]()


class WeightShapeWarning(pytest.PytestWarning):
    """A shape_variant test that is set up in a way that checks nothing."""

    __module__ = "pytest_weightshape.plugin"  # its public home, where users filter it


def settings_of(config: pytest.Config) -> Settings:
    return config.stash[SETTINGS]


def session_of(config: pytest.Config) -> Session | None:
    """The session state, or None when the plugin was not configured (``-p no:...``)."""
    return config.stash.get(SESSION, None)


def record_path(config: pytest.Config, path: str) -> str:
    """A golden's path as records name it: relative to rootdir (POSIX), else as given."""
    try:
        resolved = Path(path).resolve()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
        return str(path)
    if resolved.is_relative_to(config.rootpath):
        return resolved.relative_to(config.rootpath).as_posix()
    return str(path)


class Session:
    """Which tests use ``shape_variant`` and which of them failed, for this process.

    A failing test never loses its golden and never writes one: syrupy is told the test was
    skipped (so its goldens are neither "unused" nor deleted by ``--snapshot-update``), and the
    deferred writes of a failed test are dropped at session end.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.users: set[str] = set()
        self.failed: set[str] = set()
        #: The record of every check (see :mod:`..report.records`), from test reports: on an
        #: xdist controller, the workers' too.
        self.records: list[dict[str, Any]] = []
        #: (nodeid, check) -> "recorded"/"updated": goldens that an attempt which
        #: pytest-rerunfailures ran again wrote (the next attempt then compares equal to them).
        self.rerun_writes: dict[tuple[str, str], str] = {}
        #: Goldens of test files that no longer exist, found at session end.
        self.orphans: list[Path] = []
        #: Goldens of tests that no longer exist in a test file this run collected whole (a
        #: path argument: ``pytest tests``, ``pytest tests/test_a.py``), found at session end.
        self.unused_tests: list[Path] = []
        #: Node ids of the collected tests (on an xdist controller, the workers').
        self.collected: set[str] = set()
        #: Paths (node ids' file or folder part) this run did not collect whole: a collector
        #: that failed (a class, a module, a conftest's folder) or a test deselected by any
        #: plugin or conftest. No golden under them is judged unused (on a controller, the
        #: workers' too).
        self.partial: set[str] = set()
        self.orphans_removed = False
        self.report_written: Path | None = None  # the first of ``reports_written``
        self.reports_written: list[Path] = []
        #: Reports that could not be written (shown in the summary, never a traceback).
        self.problems: list[str] = []
        #: Goldens that syrupy's flush could not write: (path, why); the run fails.
        self.not_written: list[tuple[str, str]] = []
        #: Tests whose checks' goldens were never handed to syrupy's flush, with why (the test
        #: failed after its check; its xdist worker crashed first): named in the summary, and
        #: the run fails for them (``finish._not_written``).
        self.unwritten: dict[str, str] = {}
        #: On an xdist controller: the worker (gateway id) that reported each test.
        self.worker_of: dict[str, str] = {}

    # -- accessors ------------------------------------------------------------------------

    def has_failed(self, nodeid: str) -> bool:
        """Whether the test failed (a check, or anything else in it): its goldens are kept."""
        return nodeid in self.failed

    def has_work(self) -> bool:
        """Whether session end has something to publish, or goldens to judge."""
        return bool(
            self.records
            or self.not_written
            or settings_of(self.config).report
            or self.may_have_orphans()
        )

    def take_not_written(self) -> None:
        """After syrupy's flush: the goldens it could not write. A worker hands them to the
        controller (``workeroutput``), which fails the run for them."""
        if EXTENSION_MODULE not in sys.modules:
            return
        from .extension import take_not_written

        found = take_not_written()
        output = getattr(self.config, "workeroutput", None)
        if output is not None:
            output[NOT_WRITTEN_KEY] = found
        else:
            self.not_written += found

    def may_have_orphans(self) -> bool:
        """Whether session end could find goldens of deleted test files."""
        if not syrupy_bridge.active(self.config):  # -p no:syrupy: no golden is managed
            return False
        unused_checked = not syrupy_bridge.unused_disabled(self.config)
        return unused_checked and settings_of(self.config).golden_root.is_dir()

    def has_news(self) -> bool:
        """Whether session end has anything to show in the terminal summary."""
        return bool(
            self.records
            or self.orphans
            or self.unused_tests
            or self.problems
            or self.not_written
            or self.report_written is not None
        )

    # -- hooks ----------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True, tryfirst=True)  # around every other plugin's and conftest's
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> Any:
        """After every other hook: the tests that use the fixture. Tests a hook dropped from
        ``items`` without calling ``pytest_deselected`` (the "--runslow" recipe's
        ``items[:] = [...]``, CI sharding) count as deselected: their goldens are not unused
        (for this plugin and for syrupy, which a conftest's hook runs before)."""
        collected = list(items)
        result = yield
        kept = {id(item) for item in items}
        dropped = [item for item in collected if id(item) not in kept]
        if dropped:
            self.pytest_deselected(dropped)
            syrupy_bridge.dropped(self.config, dropped)
        if EXTENSION_MODULE in sys.modules:  # a test module loaded it: point it here too
            point_extension(self.config)
        for item in items:
            uses = "shape_variant" in getattr(item, "fixturenames", ())
            if uses:
                self.users.add(item.nodeid)
            elif item.get_closest_marker("shape_variant") is not None:
                item.warn(
                    WeightShapeWarning(
                        "marked shape_variant but does not use the shape_variant fixture, so "
                        "nothing is checked: add `shape_variant` to the test's arguments"
                    )
                )
        return result

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected.update(item.nodeid for item in session.items)
        output = getattr(self.config, "workeroutput", None)
        if output is not None:
            output[PARTIAL_KEY] = sorted(self.partial)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.partial.add(report.nodeid.partition("::")[0])

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.partial.update(item.nodeid.partition("::")[0] for item in items)

    @pytest.hookimpl(optionalhook=True)  # pytest-xdist's: a worker collected these tests
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.collected.update(ids)

    @pytest.hookimpl(wrapper=True, tryfirst=True)  # around syrupy's finish (it deletes)
    def pytest_sessionfinish(self, session: pytest.Session) -> Any:
        syrupy_bridge.protect_unrun(self.config)
        syrupy_bridge.release_failed_writes(self.config, [path for path, _ in self.not_written])
        if _extension_used(self.config):
            point_extension(self.config)
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if call.when == "call" and item.nodeid in self.users:
            found = item.stash.get(RECORDS, None)
            if found:  # an attribute of the report: xdist carries it to the controller
                report.weightshape = found
                item.stash[RECORDS] = []  # a rerun (pytest-rerunfailures) starts afresh
        return report

    @pytest.hookimpl(trylast=True)  # after syrupy recorded the outcome
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome: str = report.outcome  # pytest types it without "rerun"
        if outcome == "rerun":
            self._superseded(report)
            return
        worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", None)
        if worker is not None:
            self.worker_of[report.nodeid] = worker
        if report.when == "call":
            for record in getattr(report, "weightshape", None) or ():
                earlier = self.rerun_writes.pop((record["nodeid"], record["check"]), None)
                if earlier is not None and record["status"] == "passed":
                    record["status"] = earlier  # matched what the superseded attempt wrote
                self.records.append(record)
        # the test failed after its check (call or teardown); on an xdist controller, which
        # collects nothing, its records tell that it uses the fixture
        mine = [r for r in self.records if r["nodeid"] == report.nodeid] if report.failed else []
        if report.failed and (report.nodeid in self.users or mine):
            self._unwritten(mine, f"the test failed after its check (in its {report.when})")
            self.failed.add(report.nodeid)
            syrupy_bridge.mark_not_run(self.config, report.nodeid)

    def _unwritten(self, records: list[dict[str, Any]], why: str) -> None:
        """Checks whose goldens their test's worker will not write: ``not written``, why."""
        for record in records:
            if record["status"] in WRITTEN:
                record["status"] = "not written"
                record["message"] = (
                    f"golden {record['golden_path']} not written: {why}; fix it, then run "
                    f"pytest --snapshot-update {record['nodeid']}"
                )
                self.unwritten[record["nodeid"]] = why

    @pytest.hookimpl(optionalhook=True)  # pytest-xdist's: a worker finished
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """A worker finished; one that crashed (``error``) never flushed the goldens of the
        tests it ran: their checks are not written (xdist only reports the test it died in)."""
        if error is not None:
            gone = getattr(getattr(node, "gateway", None), "id", None)
            crashed = [r for r in self.records if self.worker_of.get(r["nodeid"]) == gone]
            self._unwritten(crashed, f"its xdist worker {gone} crashed before writing goldens")
        output = getattr(node, "workeroutput", None) or {}
        self.not_written += [(str(path), str(why)) for path, why in output.get(NOT_WRITTEN_KEY, ())]
        self.partial.update(str(path) for path in output.get(PARTIAL_KEY, ()))

    def _superseded(self, report: pytest.TestReport) -> None:
        """pytest-rerunfailures runs the test again: the next attempt's checks replace this
        one's (counted once, written once)."""
        mine = [r for r in self.records if r["nodeid"] == report.nodeid]
        for record in (*mine, *(getattr(report, "weightshape", None) or ())):
            if record["status"] in WRITTEN:
                self.rerun_writes[(report.nodeid, record["check"])] = record["status"]
        self.records = [r for r in self.records if r["nodeid"] != report.nodeid]


# -- where the syrupy extension looks for goldens -------------------------------------------


def point_extension(config: pytest.Config) -> None:
    """Point the extension at this session's goldens, once, before its first use: the first
    ``shape_variant`` fixture, or session end on an xdist controller whose workers used it.
    The location it had is kept for :func:`restore_extension`."""
    if _PREVIOUS_LOCATION in config.stash:
        return
    from . import extension

    config.stash[_PREVIOUS_LOCATION] = extension.configure(
        extension.Location(config.rootpath, settings_of(config).golden_root, None)
    )


def restore_extension(config: pytest.Config) -> None:
    """Put back the location of an enclosing session (in-process pytester runs)."""
    if _PREVIOUS_LOCATION in config.stash:
        from . import extension

        extension.configure(config.stash[_PREVIOUS_LOCATION])


def _extension_used(config: pytest.Config) -> bool:
    """Whether syrupy may use the extension in this process: it is loaded, or (on an xdist
    controller) a worker reports using it, so syrupy loads it to judge unused goldens."""
    return EXTENSION_MODULE in sys.modules or syrupy_bridge.workers_used(config, EXTENSION_CLASS)
