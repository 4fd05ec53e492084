"""pytest glue: options, the ``shape_variant`` marker and fixture, the report header.

Everything substantive lives in the core modules; loading this plugin imports no numpy,
torch or tensorflow (the measuring code is imported on the first ``check``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .errors import SpecError, WeightShapeError
from .spec import MARKER_SIGNATURE, VariantSpec, parse_marker
from .tolerance import Override, check_number, parse_per_stat, resolve

if TYPE_CHECKING:
    from syrupy.assertion import SnapshotAssertion

    from .result import CheckResult

#: Command-line option -> (ini twin, help).
_OPTIONS: dict[str, tuple[str, str]] = {
    "golden_dir": ("weightshape_golden_dir", "folder of golden files, relative to rootdir"),
    "rtol": ("weightshape_rtol", "relative tolerance for every check (default: per dtype)"),
    "atol": ("weightshape_atol", "absolute tolerance for every check (default: rtol x output rms)"),
}


@dataclass(frozen=True)
class Settings:
    """Session-wide settings after command line > ini precedence (picklable for xdist)."""

    golden_root: Path
    override: Override
    sources: Mapping[str, str]


_SETTINGS = pytest.StashKey[Settings]()


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER_SIGNATURE}: check a model's weight-shape "
        "variants against a golden file (pytest-weightshape)",
    )
    golden_dir, golden_source = _setting(config, "golden_dir")
    rtol, rtol_source = _float_setting(config, "rtol")
    atol, atol_source = _float_setting(config, "atol")
    settings = Settings(
        golden_root=config.rootpath / (golden_dir or "golden"),
        override=Override(rtol=rtol, atol=atol),
        sources={"golden_dir": golden_source, "rtol": rtol_source, "atol": atol_source},
    )
    config.stash[_SETTINGS] = settings
    from .snapshot import WeightShapeExtension

    WeightShapeExtension.rootdir = config.rootpath
    WeightShapeExtension.golden_root = settings.golden_root


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
    return [
        f"weightshape: goldens in {where}/ ({settings.sources['golden_dir']}); "
        f"tolerance {tol}; {versions}"
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
    ) -> CheckResult:
        """Build base and variants from one seed, run them, measure, compare with the golden.

        Fails the test with an explanation when a value moved beyond tolerance, when the
        golden is missing (record it with ``--snapshot-update``) or unreadable.
        """
        __tracebackhide__ = True
        nodeid = self._request.node.nodeid
        try:
            return self._check(build, inputs, name, rtol, atol, tolerance, device)
        except _Failed as exc:
            message = str(exc)
        except WeightShapeError as exc:
            message = f"{nodeid}: {exc}"
        pytest.fail(message, pytrace=False)  # outside `except`: no chained traceback

    def _check(
        self,
        build: Callable[..., Any],
        inputs: Any,
        name: str | None,
        rtol: float | None,
        atol: float | None,
        tolerance: Mapping[str, Any] | None,
        device: str | None,
    ) -> CheckResult:
        from syrupy.location import PyTestLocation

        from . import golden, report
        from .result import CheckResult
        from .run import Observer
        from .snapshot import Candidate, WeightShapeExtension

        check = golden.DEFAULT_CHECK if name is None else name
        if not isinstance(check, str) or not check:
            raise SpecError(f"check name= must be a non-empty string, got {name!r}")
        if check in self._names:
            raise SpecError(
                f"two checks named {check!r} in one test; give each check(..., name='...') "
                "a distinct name (names key the golden file)"
            )
        self._names.add(check)
        settings = self._request.config.stash[_SETTINGS]
        policy = resolve(
            (
                Override(
                    rtol=check_number(rtol, "check(rtol=)"), atol=check_number(atol, "check(atol=)")
                ),
                parse_per_stat(tolerance, "check()"),
            ),
            (self.spec.tolerance, self.spec.per_stat),
            (settings.override, {}),
        )
        document = Observer(self.spec, build, inputs, device=device).observe()

        if self._assertion is None:
            self._assertion = self._snapshot.use_extension(WeightShapeExtension)
        assertion = self._assertion
        location = PyTestLocation(self._request.node)
        path = assertion.extension.get_location(test_location=location, index=check)
        shown = _relative(Path(path), self._request.config.rootpath)
        nodeid = self._request.node.nodeid
        test = location.snapshot_name
        updating = assertion.update_snapshots
        if not updating and Path(path).exists():
            golden.read_checks(Path(path))  # a corrupt golden fails here, untouched

        candidate = Candidate(document, policy, test, check)
        assertion(name=check) == candidate  # noqa: B015  (syrupy's assertion protocol)
        outcome = assertion.executions[assertion.num_executions - 1]
        if outcome.exception is not None:
            if isinstance(outcome.exception, WeightShapeError):
                raise outcome.exception
            raise WeightShapeError(
                f"reading or writing golden {shown} failed: "
                f"{type(outcome.exception).__name__}: {outcome.exception}"
            )
        if not outcome.success:
            if outcome.recalled_data is None:
                raise _Failed(report.missing(test=test, check=check, path=shown, nodeid=nodeid))
            assert candidate.verdict is not None
            raise _Failed(
                report.failure(candidate.verdict, test=test, check=check, path=shown, nodeid=nodeid)
            )
        status = "recorded" if outcome.created else "updated" if outcome.updated else "passed"
        result = CheckResult(check, status, shown, document, candidate.verdict)
        self.results.append(result)
        return result


class _Failed(WeightShapeError):
    """A check that ran and did not match its golden."""


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


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
        return ShapeVariant(request, snapshot, parse_marker(marker.args, marker.kwargs))
    except SpecError as exc:
        message = f"{request.node.nodeid}: invalid shape_variant marker: {exc}"
    pytest.fail(message, pytrace=False)
