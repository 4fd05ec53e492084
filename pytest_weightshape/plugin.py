"""pytest glue: options, the ``shape_variant`` marker and fixture, the report header.

Everything substantive lives in other modules, each imported when first needed, so that a
session that never uses the marker loads only this glue (the standard library, pytest,
:mod:`.errors` and :mod:`.marker`; no numpy, torch or tensorflow): the fixture's object and
the measuring code load with the first ``shape_variant`` fixture (:mod:`.fixture`), the
session-end reports when there is something to report (:mod:`.finish`), and the core modules
that validate an option when the option is set.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from .errors import SpecError
from .marker import MARKER_SIGNATURE

if TYPE_CHECKING:
    from syrupy.assertion import SnapshotAssertion

    from .fixture import ShapeVariant

#: Command-line option -> (ini twin, help). Valued options; flags are below.
_OPTIONS: dict[str, tuple[str, str]] = {
    "golden_dir": ("weightshape_golden_dir", "folder of golden files, relative to rootdir"),
    "rtol": ("weightshape_rtol", "relative tolerance for every check (default: per dtype)"),
    "atol": ("weightshape_atol", "absolute tolerance for every check (default: rtol x output rms)"),
    "device": ("weightshape_device", "where checks run: auto, cpu (default), cuda, cuda:N, mps"),
    "device_rtol": (
        "weightshape_device_rtol",
        "device profiles, e.g. 'cuda=1e-3 mps=1e-3 cross=1e-3' (rtol floors per device kind)",
    ),
    "report": (
        "weightshape_report",
        "write a report of every check; the format follows the extension: .json, .md or .html",
    ),
}
#: Flags (store_true) -> (ini twin, help).
_FLAGS: dict[str, tuple[str, str]] = {
    "device_strict": (
        "weightshape_device_strict",
        "fail, instead of skip, a check whose device is not available",
    ),
    "deterministic": (
        "weightshape_deterministic",
        "run checks with deterministic algorithms (torch) and op determinism (tensorflow)",
    ),
    "golden_per_device": (
        "weightshape_golden_per_device",
        "keep one golden entry per device kind (cpu, cuda, mps) instead of one for all",
    ),
    "calibrate": (
        "weightshape_calibrate",
        "also run each variant in float64 and store each statistic's float32 rounding noise; "
        "a golden so recorded allows max(tolerance, 10 x noise)",
    ),
    "update_failing": (
        "weightshape_update_failing",
        "rewrite only the goldens of failing checks: missing goldens are not recorded and "
        "unused ones not deleted (the counterpart of --snapshot-update-new-only)",
    ),
}
#: ``--weightshape-strict`` (a flag) and its ini twin, which also takes ``auto`` (the default:
#: strict when the ``CI`` environment variable is set) and ``false`` (never strict).
_STRICT_HELP = (
    "CI mode: a missing golden fails and is never recorded, even with --snapshot-update "
    "(default: on when the CI environment variable is set)"
)
_REPORT_FORMATS = (".json", ".md", ".html")


class Settings(NamedTuple):
    """Session-wide settings after command line > ini precedence.

    A named tuple (a frozen dataclass takes about a millisecond to create when the plugin
    loads). ``profiles`` is None when none were given: the defaults, resolved by the first
    check.
    """

    golden_root: Path
    rtol: float | None
    atol: float | None
    sources: Mapping[str, str]
    device: str
    profiles: Mapping[str, float] | None
    device_strict: bool
    deterministic: bool
    golden_per_device: bool
    calibrate: bool
    update_failing: bool
    strict: bool
    report: Path | None


_SETTINGS = pytest.StashKey[Settings]()
_OUTCOMES = pytest.StashKey["_Outcomes"]()
_RECORDS = pytest.StashKey[list[dict[str, Any]]]()
#: Statuses of a check whose golden is written at session end, if its test passes.
_WRITTEN = ("recorded", "updated")


class WeightShapeWarning(pytest.PytestWarning):
    """A shape_variant test that is set up in a way that checks nothing."""


class _Outcomes:
    """Which tests use ``shape_variant`` and which of them failed, for this process.

    A failing test never loses its golden and never writes one: syrupy is told the test was
    skipped (so its goldens are neither "unused" nor deleted by ``--snapshot-update``), and the
    deferred writes of a failed test are dropped at session end.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.users: set[str] = set()
        self.failed: set[str] = set()
        #: The record of every check (see :mod:`.records`), from test reports: on an xdist
        #: controller, the workers' too.
        self.records: list[dict[str, Any]] = []
        #: (nodeid, check) -> "recorded"/"updated": goldens that an attempt which
        #: pytest-rerunfailures ran again wrote (the next attempt then compares equal to them).
        self.rerun_writes: dict[tuple[str, str], str] = {}
        #: Goldens of test files that no longer exist, found at session end.
        self.orphans: list[Path] = []
        self.orphans_removed = False
        self.report_written: Path | None = None
        #: Reports that could not be written (shown in the summary, never a traceback).
        self.problems: list[str] = []

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if _SNAPSHOT_MODULE in sys.modules:  # a test module loaded it: point it here too
            _use_golden_location(self.config)
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

    @pytest.hookimpl(wrapper=True, tryfirst=True)  # around syrupy's finish (it deletes)
    def pytest_sessionfinish(self, session: pytest.Session) -> Any:
        _protect_unrun(self.config)
        if _extension_used(self.config):
            _use_golden_location(self.config)
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if call.when == "call" and item.nodeid in self.users:
            found = item.stash.get(_RECORDS, None)
            if found:  # an attribute of the report: xdist carries it to the controller
                report.weightshape = found
                item.stash[_RECORDS] = []  # a rerun (pytest-rerunfailures) starts afresh
        return report

    @pytest.hookimpl(trylast=True)  # after syrupy recorded the outcome
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome: str = report.outcome  # pytest types it without "rerun"
        if outcome == "rerun":  # pytest-rerunfailures runs the test again: the next
            # attempt's checks replace this one's (counted once, written once)
            mine = [r for r in self.records if r["nodeid"] == report.nodeid]
            for record in (*mine, *(getattr(report, "weightshape", None) or ())):
                if record["status"] in _WRITTEN:
                    self.rerun_writes[(report.nodeid, record["check"])] = record["status"]
            self.records = [r for r in self.records if r["nodeid"] != report.nodeid]
            return
        if report.when == "call":
            for record in getattr(report, "weightshape", None) or ():
                earlier = self.rerun_writes.pop((record["nodeid"], record["check"]), None)
                if earlier is not None and record["status"] == "passed":
                    record["status"] = earlier  # matched what the superseded attempt wrote
                self.records.append(record)
        if report.failed and report.nodeid in self.users:
            for record in self.records:  # the test failed after its check (call or teardown)
                if record["nodeid"] == report.nodeid and record["status"] in _WRITTEN:
                    record["status"] = "not written"
            self.failed.add(report.nodeid)
            syrupy = getattr(self.config, "_syrupy", None)
            if syrupy is not None:
                syrupy.ran_item(report.nodeid, "skipped")


def _protect_unrun(config: pytest.Config) -> None:
    """Tests that were selected but never ran (``-x``, ``--maxfail``, Ctrl-C) keep their goldens:
    syrupy is told they were skipped, so ``--snapshot-update`` does not delete them as unused.

    On an xdist controller the decision waits for every worker's report: a test counts as not
    run only if no worker ran it. Workers leave it to the controller.
    """
    syrupy = getattr(config, "_syrupy", None)
    if syrupy is None or hasattr(config, "workerinput"):
        return
    reports = getattr(syrupy, "_worker_reports", None)
    if reports:
        ran = {n for r in reports for n, status in r.get("selected", {}).items() if status}
        first = reports[0].get("selected", {})
        for r in reports:
            for nodeid in r.get("selected", {}):
                if nodeid not in ran:
                    first[nodeid] = "skipped"
        return
    for nodeid, status in list(getattr(syrupy, "_selected_items", {}).items()):
        if not status.value:
            syrupy.ran_item(nodeid, "skipped")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("weightshape", "pytest-weightshape: weight-shape regression checks")
    for dest, (ini, help_text) in _OPTIONS.items():
        group.addoption(
            f"--weightshape-{dest.replace('_', '-')}",
            dest=f"weightshape_{dest}",
            default=None,
            help=f"{help_text} (ini: {ini})",
        )
        parser.addini(ini, help_text, default=None)
    for dest, (ini, help_text) in _FLAGS.items():
        group.addoption(
            f"--weightshape-{dest.replace('_', '-')}",
            dest=f"weightshape_{dest}",
            action="store_true",
            default=False,
            help=f"{help_text} (ini: {ini} = true)",
        )
        parser.addini(ini, help_text, type="bool", default=False)
    group.addoption(
        "--weightshape-strict",
        dest="weightshape_strict",
        action="store_true",
        default=False,
        help=f"{_STRICT_HELP} (ini: weightshape_strict = auto|true|false)",
    )
    parser.addini("weightshape_strict", _STRICT_HELP + "; auto, true or false", default="auto")


def _strict(config: pytest.Config) -> tuple[bool, str]:
    if config.getoption("weightshape_strict"):
        return True, "command line"
    raw = str(config.getini("weightshape_strict") or "auto").strip().lower()
    if raw in ("true", "1", "yes", "on"):
        return True, "ini"
    if raw in ("false", "0", "no", "off"):
        return False, "ini"
    if raw != "auto":
        raise pytest.UsageError(
            f"weightshape_strict (ini): expected auto, true or false, got {raw!r}"
        )
    ci = os.environ.get("CI", "").strip().lower()
    if ci and ci not in ("0", "false", "no", "off"):
        return True, "CI environment variable"
    return False, "default"


def _report_path(config: pytest.Config) -> tuple[Path | None, str]:
    raw, source = _setting(config, "report")
    if raw is None:
        return None, source
    path = Path(raw)
    if path.suffix.lower() not in _REPORT_FORMATS:
        raise pytest.UsageError(
            f"--weightshape-report ({source}): {raw!r} has no known format; end the name in "
            f"{', '.join(_REPORT_FORMATS)}"
        )
    base = config.invocation_params.dir if source == "command line" else config.rootpath
    return base / path, source


def _setting(config: pytest.Config, dest: str) -> tuple[str | None, str]:
    value = config.getoption(f"weightshape_{dest}")
    if value is not None:
        return str(value), "command line"
    ini = config.getini(_OPTIONS[dest][0])
    if ini not in (None, ""):
        return str(ini), "ini"
    return None, "default"


def _float_setting(config: pytest.Config, dest: str) -> tuple[float | None, str]:
    raw, source = _setting(config, dest)
    if raw is None:
        return None, source
    from .tolerance import check_number

    try:
        return check_number(float(raw), f"--weightshape-{dest} ({source})"), source
    except (ValueError, SpecError) as exc:
        raise pytest.UsageError(
            f"--weightshape-{dest} ({source}): expected a number >= 0, got {raw!r}"
        ) from exc


def _flag(config: pytest.Config, dest: str) -> tuple[bool, str]:
    if config.getoption(f"weightshape_{dest}"):
        return True, "command line"
    if config.getini(_FLAGS[dest][0]):
        return True, "ini"
    return False, "default"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER_SIGNATURE}: check a model's weight-shape "
        "variants against a golden file (pytest-weightshape)",
    )
    golden_dir, golden_source = _setting(config, "golden_dir")
    rtol, rtol_source = _float_setting(config, "rtol")
    atol, atol_source = _float_setting(config, "atol")
    device, device_source = _setting(config, "device")
    profiles_text, profiles_source = _setting(config, "device_rtol")
    flags = {dest: _flag(config, dest) for dest in _FLAGS}
    strict, strict_source = _strict(config)
    report_path, report_source = _report_path(config)
    profiles = None  # the defaults
    if device is not None or profiles_text is not None:
        from .devices import check_device
        from .tolerance import parse_profiles

        try:
            check_device(device, f"--weightshape-device ({device_source})")
            if profiles_text is not None:
                where = f"--weightshape-device-rtol ({profiles_source})"
                profiles = parse_profiles(profiles_text, where)
        except SpecError as exc:
            raise pytest.UsageError(str(exc)) from None
    settings = Settings(
        golden_root=config.rootpath / (golden_dir or "golden"),
        rtol=rtol,
        atol=atol,
        sources={
            "golden_dir": golden_source,
            "rtol": rtol_source,
            "atol": atol_source,
            "device": device_source,
            "device_rtol": profiles_source,
            "strict": strict_source,
            "report": report_source,
            **{dest: source for dest, (_, source) in flags.items()},
        },
        device=device or "cpu",
        profiles=profiles,
        device_strict=flags["device_strict"][0],
        deterministic=flags["deterministic"][0],
        golden_per_device=flags["golden_per_device"][0],
        calibrate=flags["calibrate"][0],
        update_failing=flags["update_failing"][0],
        strict=strict,
        report=report_path,
    )
    config.stash[_SETTINGS] = settings
    outcomes = _Outcomes(config)
    config.stash[_OUTCOMES] = outcomes
    config.pluginmanager.register(outcomes, "weightshape-outcomes")
    if _SNAPSHOT_MODULE in sys.modules:  # e.g. an enclosing session's: point it here now
        _use_golden_location(config)


#: The syrupy extension's module and class: imported only by a session that checks something.
_SNAPSHOT_MODULE = "pytest_weightshape.snapshot"
_EXTENSION = f"{_SNAPSHOT_MODULE}.WeightShapeExtension"
_PREVIOUS_LOCATION = pytest.StashKey[tuple[Path, Path, "str | None"]]()


def _use_golden_location(config: pytest.Config) -> None:
    """Point the extension at this session's goldens, once, before its first use: the first
    ``shape_variant`` fixture, or session end on an xdist controller whose workers used it.
    The location it had is kept for ``pytest_unconfigure``."""
    if _PREVIOUS_LOCATION in config.stash:
        return
    from .snapshot import WeightShapeExtension

    config.stash[_PREVIOUS_LOCATION] = _location(WeightShapeExtension)
    WeightShapeExtension.rootdir = config.rootpath
    WeightShapeExtension.golden_root = config.stash[_SETTINGS].golden_root
    WeightShapeExtension.only_device = None


def _extension_used(config: pytest.Config) -> bool:
    """Whether syrupy may use the extension in this process: it is loaded, or (on an xdist
    controller) a worker reports using it, so syrupy loads it to judge unused goldens."""
    if _SNAPSHOT_MODULE in sys.modules:
        return True
    syrupy = getattr(config, "_syrupy", None)
    return any(
        member == _EXTENSION
        for report in getattr(syrupy, "_worker_reports", None) or ()
        for member in report.get("extensions", {}).values()
    )


def _location(extension: Any) -> tuple[Path, Path, str | None]:
    return extension.rootdir, extension.golden_root, extension.only_device


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On the controller (or a plain run): unused goldens of deleted test files, the report
    file, the GitHub step summary, and the last run kept for ``python -m pytest_weightshape``."""
    config = session.config
    outcomes = config.stash.get(_OUTCOMES, None)
    if outcomes is None or hasattr(config, "workerinput"):
        return
    settings = config.stash[_SETTINGS]
    if not (outcomes.records or settings.report or _may_have_orphans(config, settings)):
        return  # nothing to publish and no goldens to judge
    from .finish import publish

    publish(session, settings, outcomes)


def _may_have_orphans(config: pytest.Config, settings: Settings) -> bool:
    """Whether :func:`.finish.publish` could find goldens of deleted test files."""
    unused_checked = not getattr(config.option, "disable_unused_snapshots", False)
    return unused_checked and settings.golden_root.is_dir()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """A ``weightshape`` section: checks by status, the largest drift, goldens recorded
    under another environment that still hold, unused goldens, and where the report is."""
    outcomes = config.stash.get(_OUTCOMES, None)
    if outcomes is None or not (
        outcomes.records
        or outcomes.orphans
        or outcomes.problems
        or outcomes.report_written is not None
    ):
        return
    from .finish import summary

    summary(terminalreporter, config, outcomes)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put back the golden location of an enclosing session (in-process pytester runs)."""
    if _PREVIOUS_LOCATION in config.stash:
        from .snapshot import WeightShapeExtension

        (
            WeightShapeExtension.rootdir,
            WeightShapeExtension.golden_root,
            WeightShapeExtension.only_device,
        ) = config.stash[_PREVIOUS_LOCATION]


def pytest_report_header(config: pytest.Config) -> list[str]:
    from .environment import framework_versions

    settings = config.stash[_SETTINGS]
    versions = ", ".join(f"{k} {v}" for k, v in framework_versions().items() if v)
    try:
        where = settings.golden_root.relative_to(config.rootpath)
    except ValueError:
        where = settings.golden_root
    tol = (
        ", ".join(
            f"{k}={getattr(settings, k)} ({settings.sources[k]})"
            for k in ("rtol", "atol")
            if getattr(settings, k) is not None
        )
        or "per-dtype defaults"
    )
    extras = [f"device {settings.device} ({settings.sources['device']})"]
    extras += [
        f"{dest.replace('_', '-')} ({settings.sources[dest]})"
        for dest in (*_FLAGS, "strict")
        if getattr(settings, dest)
    ]
    if settings.report is not None:
        shown = os.path.relpath(settings.report, config.invocation_params.dir)
        extras.append(f"report {shown} ({settings.sources['report']})")
    return [
        f"weightshape: goldens in {where}/ ({settings.sources['golden_dir']}); "
        f"tolerance {tol}; {', '.join(extras)}; {versions}"
    ]


@pytest.fixture
def shape_variant(request: pytest.FixtureRequest, snapshot: SnapshotAssertion) -> ShapeVariant:
    """Checks the variants declared by ``@pytest.mark.shape_variant(...)`` against a golden."""
    _use_golden_location(request.config)
    from .fixture import create

    return create(request, snapshot)


def __getattr__(name: str) -> Any:
    if name == "ShapeVariant":  # its home was this module; it now loads with the fixture
        from .fixture import ShapeVariant

        return ShapeVariant
    raise AttributeError(name)
