"""The ``shape_variant`` fixture's object: runs the checks of a test's marker against its golden.

Imported by the plugin on the first use of the fixture, so a session that never uses it does
not load the measuring code (spec, tolerance, syrupy extension, golden, comparison).
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import traceback
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .devices import check_device
from .errors import GoldenError, NewerGoldenError, SpecError, WeightShapeError
from .plugin import _OUTCOMES, _RECORDS, _SETTINGS, WeightShapeWarning
from .spec import VariantSpec, parse_marker
from .tolerance import Override, check_number, parse_per_stat, resolve

if TYPE_CHECKING:
    from syrupy.assertion import SnapshotAssertion

    from .result import CheckResult
    from .snapshot import Candidate


def create(request: pytest.FixtureRequest, snapshot: SnapshotAssertion) -> ShapeVariant:
    """The fixture's value for the test of ``request`` (the plugin's ``shape_variant``)."""
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
            (Override(rtol=settings.rtol, atol=settings.atol), {}),
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
        properties = self._request.node.user_properties
        name = f"weightshape[{check}]"
        # replaced, not added: an attempt that pytest-rerunfailures runs again is superseded
        properties[:] = [p for p in properties if p[0] != name]
        properties.append((name, json.dumps(summary, sort_keys=True)))


class _Failed(WeightShapeError):
    """A check that ran and did not match its golden."""


def _shown_name(name: Any) -> str:
    return name if isinstance(name, str) and name else "default"


def _node_argument(nodeid: str, config: pytest.Config) -> str:
    """The node id as an argument that works from the directory pytest was started in."""
    path, sep, rest = nodeid.partition("::")
    relative = os.path.relpath(config.rootpath / path, config.invocation_params.dir)
    return shlex.quote(f"{Path(relative).as_posix()}{sep}{rest}")
