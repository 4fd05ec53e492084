"""pytest glue: options, the ``shape_variant`` marker and fixture, the report header.

Everything substantive lives in the core modules; loading this plugin imports no numpy,
torch or tensorflow (the measuring code is imported on the first ``check``).
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .devices import check_device
from .errors import GoldenError, NewerGoldenError, SpecError, WeightShapeError
from .spec import MARKER_SIGNATURE, VariantSpec, parse_marker
from .tolerance import Override, check_number, parse_per_stat, parse_profiles, resolve

if TYPE_CHECKING:
    from syrupy.assertion import SnapshotAssertion

    from .result import CheckResult
    from .snapshot import Candidate

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


@dataclass(frozen=True)
class Settings:
    """Session-wide settings after command line > ini precedence (picklable for xdist)."""

    golden_root: Path
    override: Override
    sources: Mapping[str, str]
    device: str = "cpu"
    profiles: Mapping[str, float] = field(default_factory=dict)
    device_strict: bool = False
    deterministic: bool = False
    golden_per_device: bool = False
    calibrate: bool = False
    update_failing: bool = False
    strict: bool = False
    report: Path | None = None


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
        #: Goldens of test files that no longer exist, found at session end.
        self.orphans: list[Path] = []
        self.orphans_removed = False
        self.report_written: Path | None = None
        #: Reports that could not be written (shown in the summary, never a traceback).
        self.problems: list[str] = []

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
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
        if report.when == "call":
            self.records.extend(getattr(report, "weightshape", None) or ())
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
    try:
        check_device(device, f"--weightshape-device ({device_source})")
        profiles = parse_profiles(profiles_text, f"--weightshape-device-rtol ({profiles_source})")
    except SpecError as exc:
        raise pytest.UsageError(str(exc)) from None
    settings = Settings(
        golden_root=config.rootpath / (golden_dir or "golden"),
        override=Override(rtol=rtol, atol=atol),
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
    from .snapshot import WeightShapeExtension

    config.stash[_PREVIOUS_LOCATION] = _location(WeightShapeExtension)
    WeightShapeExtension.rootdir = config.rootpath
    WeightShapeExtension.golden_root = settings.golden_root
    WeightShapeExtension.only_device = None


_PREVIOUS_LOCATION = pytest.StashKey[tuple[Path, Path, "str | None"]]()


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
    if getattr(option, "disable_unused_snapshots", False) or not settings.golden_root.is_dir():
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


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """A ``weightshape`` section: checks by status, the largest drift, goldens recorded
    under another environment that still hold, unused goldens, and where the report is."""
    outcomes = config.stash.get(_OUTCOMES, None)
    if outcomes is None or not (outcomes.records or outcomes.orphans or outcomes.problems):
        if outcomes is not None and outcomes.report_written is not None:
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
            f"{k}={getattr(settings.override, k)} ({settings.sources[k]})"
            for k in ("rtol", "atol")
            if getattr(settings.override, k) is not None
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


class ShapeVariant:
    """The ``shape_variant`` fixture: runs checks of the test's marker against its golden."""

    def __init__(
        self, request: pytest.FixtureRequest, snapshot: SnapshotAssertion, spec: VariantSpec
    ) -> None:
        self.spec = spec
        self._request = request
        self._snapshot = snapshot
        self._assertion: SnapshotAssertion | None = None
        self._names: set[str] = set()
        #: (check name, golden path) of the check running, once known (for error records).
        self._current: tuple[str, str] | None = None
        self.results: list[CheckResult] = []

    def check(
        self,
        build: Callable[..., Any],
        inputs: Any,
        *,
        name: str | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        tolerance: Mapping[str, Any] | None = None,
        device: str | None = None,
        weights: str | None = None,
    ) -> CheckResult:
        """Build base and variants from one seed, run them, measure, compare with the golden.

        Fails the test with an explanation when a value moved beyond tolerance, when the
        golden is missing (record it with ``--snapshot-update``) or unreadable.
        """
        __tracebackhide__ = True
        nodeid = self._request.node.nodeid
        self._current = None
        try:
            return self._check(build, inputs, name, rtol, atol, tolerance, device, weights)
        except _Failed as exc:
            message = str(exc)
        except WeightShapeError as exc:
            message = f"{nodeid}: {exc}"
            self._record_error(name, message)
        except Exception as exc:
            message = (
                f"{nodeid}: pytest-weightshape internal error (please report it with this "
                f"text):\n{''.join(traceback.format_exception(exc))}"
            )
            self._record_error(name, message)
        pytest.fail(message, pytrace=False)  # outside `except`: no chained traceback

    def _record_error(self, name: Any, message: str) -> None:
        check, path = self._current or (_shown_name(name), "")
        self._record(check=check, status="error", message=message, path=path)

    def _finish(self) -> None:
        nodeid = self._request.node.nodeid
        if not self._names and nodeid not in self._request.config.stash[_OUTCOMES].failed:
            warnings.warn(
                WeightShapeWarning(
                    f"{nodeid} uses the shape_variant fixture but ran no check: "
                    "call shape_variant.check(build, inputs)"
                ),
                stacklevel=1,
            )

    def _check(
        self,
        build: Callable[..., Any],
        inputs: Any,
        name: str | None,
        rtol: float | None,
        atol: float | None,
        tolerance: Mapping[str, Any] | None,
        device: str | None,
        weights: str | None,
    ) -> CheckResult:
        from syrupy.location import PyTestLocation

        from . import devices, golden, report
        from .result import CheckResult
        from .run import Observer
        from .snapshot import Candidate, WeightShapeExtension

        check = golden.DEFAULT_CHECK if name is None else name
        if not isinstance(check, str) or not check or "@" in check:
            raise SpecError(f"check name= must be a non-empty string without '@', got {name!r}")
        if check in self._names:
            what = "unnamed checks" if name is None else f"checks named {check!r}"
            raise SpecError(
                f"two {what} in one test; give each check(..., name='...') "
                "a distinct name (names key the golden file)"
            )
        self._names.add(check)
        settings = self._request.config.stash[_SETTINGS]
        requested = check_device(device, "check()") or self.spec.device or settings.device
        placement = devices.resolve(requested)
        if placement.unavailable:
            if settings.device_strict:
                raise SpecError(f"device unavailable: {placement.unavailable}")
            pytest.skip(f"weightshape: {placement.unavailable}")
        if settings.golden_per_device:
            check = f"{check}@{devices.kind(placement.device)}"
            WeightShapeExtension.only_device = devices.kind(placement.device)
        policy = resolve(
            (
                Override(
                    rtol=check_number(rtol, "check(rtol=)"), atol=check_number(atol, "check(atol=)")
                ),
                parse_per_stat(tolerance, "check()"),
            ),
            (self.spec.tolerance, self.spec.per_stat),
            (settings.override, {}),
            profiles=settings.profiles,
        )
        if self._assertion is None:
            self._assertion = self._snapshot.use_extension(WeightShapeExtension)
            if settings.update_failing:  # rewrite drifted goldens; new ones are refused below
                self._assertion.update_snapshots = True
        assertion = self._assertion
        location = PyTestLocation(self._request.node)
        path = assertion.extension.get_location(test_location=location, index=check)
        self._current = (check, path)  # an error from here on is recorded with both
        document = Observer(
            self.spec,
            build,
            inputs,
            device=placement.device,
            weights=weights,
            deterministic=settings.deterministic,
            calibrate=settings.calibrate,
        ).observe()
        config = self._request.config
        shown = os.path.relpath(path, config.invocation_params.dir)
        nodeid = _node_argument(self._request.node.nodeid, config)
        test = location.snapshot_name
        known: Mapping[str, Any] = {}
        if Path(path).exists():
            try:  # a corrupt golden fails here, untouched (an update rewrites it)
                _, known = golden.read_checks(Path(path))
            except NewerGoldenError:
                raise
            except GoldenError:
                if not assertion.update_snapshots:
                    raise

        outcomes = config.stash[_OUTCOMES]
        candidate = Candidate(
            document,
            policy,
            test,
            check,
            write=lambda: self._request.node.nodeid not in outcomes.failed,
        )
        # modes that never record a new golden do not ask syrupy to (so its summary counts
        # the check as failed, not as generated)
        saved = (assertion.update_snapshots, assertion.update_new_snapshots_only)
        if (settings.strict or settings.update_failing) and check not in known:
            assertion.update_snapshots = assertion.update_new_snapshots_only = False
        try:
            assertion(name=check) == candidate  # noqa: B015  (syrupy's assertion protocol)
        finally:
            assertion.update_snapshots, assertion.update_new_snapshots_only = saved
        outcome = assertion.executions[assertion.num_executions - 1]
        if outcome.exception is not None:
            if isinstance(outcome.exception, WeightShapeError):
                raise outcome.exception
            raise WeightShapeError(
                f"reading or writing golden {shown} failed: "
                f"{type(outcome.exception).__name__}: {outcome.exception}"
            )
        verdict = candidate.verdict
        where = dict(test=test, check=check, path=shown, nodeid=nodeid)
        record = functools.partial(
            self._record, check=check, document=document, candidate=candidate, path=path
        )
        absent = not outcome.success and outcome.recalled_data is None
        refused = None  # an update flag would record it, but this mode does not
        if (absent or outcome.created) and settings.strict:
            refused = "strict"
        elif (absent or outcome.created) and settings.update_failing:
            refused = "update_failing"
        if absent or refused is not None:
            message = report.missing(**where, refused=refused)
            record(status="missing", message=message)
            raise _Failed(message)
        if not outcome.success:
            assert verdict is not None
            message = report.failure(verdict, **where, verbose=config.get_verbosity() >= 2)
            record(status="drifted", message=message)
            raise _Failed(message)
        status = "recorded" if outcome.created else "updated" if outcome.updated else "passed"
        record(status=status)
        result = CheckResult(check, status, shown, document, verdict)
        self.results.append(result)
        return result

    def _record(
        self,
        *,
        check: str,
        status: str,
        document: dict[str, Any] | None = None,
        candidate: Candidate | None = None,
        path: str = "",
        message: str | None = None,
    ) -> None:
        """Attach the check's outcome to the test: a JUnit property (status, largest drift /
        tolerance, environment changes) and the full record for the summary, reports and
        ``diff``, which travels on the test report (so across xdist workers)."""
        from . import records

        verdict = candidate.verdict if candidate is not None else None
        golden_path = ""  # empty: the check failed before its golden was known
        if path:
            resolved = Path(path).resolve()
            rootdir = self._request.config.rootpath
            is_inside = resolved.is_relative_to(rootdir)
            golden_path = resolved.relative_to(rootdir).as_posix() if is_inside else str(path)
        record = records.build(
            nodeid=self._request.node.nodeid,
            test=self._request.node.name,
            check=check,
            golden_path=golden_path,
            status=status,
            document=document,
            recorded=candidate.recorded if candidate is not None else None,
            verdict=verdict,
            message=message,
        )
        self._request.node.stash.setdefault(_RECORDS, []).append(record)
        worst = record["worst"]
        summary = records.plain(
            {
                "status": status,
                "worst": round(worst, 6) if worst is not None else None,
                "environment_changes": record["environment"]["changes"],
            }
        )
        self._request.node.user_properties.append(
            (f"weightshape[{check}]", json.dumps(summary, sort_keys=True))
        )


class _Failed(WeightShapeError):
    """A check that ran and did not match its golden."""


def _shown_name(name: Any) -> str:
    return name if isinstance(name, str) and name else "default"


def _node_argument(nodeid: str, config: pytest.Config) -> str:
    """The node id as an argument that works from the directory pytest was started in."""
    path, sep, rest = nodeid.partition("::")
    relative = os.path.relpath(config.rootpath / path, config.invocation_params.dir)
    return shlex.quote(f"{Path(relative).as_posix()}{sep}{rest}")


@pytest.fixture
def shape_variant(request: pytest.FixtureRequest, snapshot: SnapshotAssertion) -> ShapeVariant:
    """Checks the variants declared by ``@pytest.mark.shape_variant(...)`` against a golden."""
    marker = request.node.get_closest_marker("shape_variant")
    if marker is None:
        pytest.fail(
            f"{request.node.nodeid}: the shape_variant fixture needs a marker, e.g. "
            "@pytest.mark.shape_variant(hidden_size=[10, 20])",
            pytrace=False,
        )
    try:
        fixture = ShapeVariant(request, snapshot, parse_marker(marker.args, marker.kwargs))
    except SpecError as exc:
        message = f"{request.node.nodeid}: invalid shape_variant marker: {exc}"
    else:
        request.addfinalizer(fixture._finish)
        return fixture
    pytest.fail(message, pytrace=False)  # outside `except`: no chained traceback
