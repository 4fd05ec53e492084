"""The ``shape_variant`` fixture's object: runs the checks of a test's marker against its golden.

A check goes plan -> observe -> assert -> conclude: the plan validates the call and finds the
golden (name, device, tolerance, file), :class:`~..run.Observer` measures the variants, syrupy
compares the observation with the golden through our extension, and the conclusion records the
outcome and passes or fails the test with a readable message.

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
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from ..devices import check_device
from ..document import DEFAULT_CHECK
from ..errors import GoldenError, NewerGoldenError, SpecError, WeightShapeError
from ..spec import VariantSpec, check_text, parse_marker
from ..tolerance import Override, Policy, check_number, parse_per_stat, resolve
from . import syrupy_bridge
from .session import RECORDS, WeightShapeWarning, record_path, session_of, settings_of

if TYPE_CHECKING:
    from syrupy.assertion import SnapshotAssertion

    from ..result import CheckResult
    from .extension import Candidate


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


class _Plan(NamedTuple):
    """A validated check, before anything runs: its name, device, tolerance and golden."""

    check: str
    device: str | None
    policy: Policy
    assertion: SnapshotAssertion
    path: str  # the golden file, as syrupy names it
    test: str  # syrupy's name of the test (the golden's ``test``)


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
        #: Warnings of the check running, given once it is done (see ``_warn``).
        self._warnings: list[str] = []
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
        # a partial, not a lambda: no frame of its own, so a device skip is reported at the
        # test's line (every frame between it and the test hides itself)
        return self._guarded(
            name,
            functools.partial(
                self._check, build, inputs, name, rtol, atol, tolerance, device, weights
            ),
        )

    def check_training(
        self,
        build: Callable[..., Any],
        inputs: Any,
        targets: Any,
        *,
        loss: Any,
        optimizer: Any,
        steps: int = 1,
        lr: float | None = None,
        name: str | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        tolerance: Mapping[str, Any] | None = None,
        device: str | None = None,
    ) -> CheckResult:
        """Train base and variants from one seed for ``steps`` steps and compare their
        losses, gradients, updates and outputs after training with the golden (README
        "Training steps"). The check is named ``training`` unless ``name=`` says otherwise.
        """
        __tracebackhide__ = True
        from ..training import DEFAULT_TRAINING_CHECK

        shown = DEFAULT_TRAINING_CHECK if name is None else name
        return self._guarded(
            shown,
            functools.partial(
                self._check_training,
                build,
                inputs,
                targets,
                dict(loss=loss, optimizer=optimizer, steps=steps, lr=lr),
                shown,
                rtol,
                atol,
                tolerance,
                device,
            ),
        )

    def _guarded(self, name: Any, run: Callable[[], CheckResult]) -> CheckResult:
        """``run()`` (a check), its errors turned into a failure naming the test."""
        __tracebackhide__ = True
        nodeid = self._request.node.nodeid
        self._current = None
        try:
            result = run()
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
        else:
            self._warn()  # outside `try`: under -W error a warning fails the test as itself
            return result
        self._warn()
        pytest.fail(message, pytrace=False)  # outside `except`: no chained traceback

    def _warn(self) -> None:
        pending, self._warnings = self._warnings, []
        for text in pending:
            # frames: _warn, _guarded, check (or check_training), the test's call
            warnings.warn(WeightShapeWarning(text), stacklevel=4)

    def _record_error(self, name: Any, message: str) -> None:
        check, path = self._current or (_shown_name(name), "")
        self._record(check=check, status="error", message=message, path=path)

    def _finish(self) -> None:
        nodeid = self._request.node.nodeid
        state = session_of(self._request.config)
        if not self._names and not (state is not None and state.has_failed(nodeid)):
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
        __tracebackhide__ = True  # a device skip is reported at the test's line, not here
        from ..run import Observer

        plan = self._plan(name, rtol, atol, tolerance, device)
        settings = settings_of(self._request.config)
        may_record = self._may_record(plan)
        observer = Observer(
            self.spec,
            build,
            inputs,
            device=plan.device,
            weights=weights,
            deterministic=settings.deterministic,
            calibrate=settings.calibrate,
            flops=settings.flops,
            sensitivity=may_record,
            layers=may_record,
            recorded=None if may_record else self._recorded(plan),
        )
        document = observer.observe()
        self._observed_warnings(plan, observer)
        candidate, outcome = self._assert(plan, document)
        localised = self._localise(observer, candidate, outcome)
        return self._conclude(plan, document, candidate, outcome, localised)

    def _observed_warnings(self, plan: _Plan, observer: Any) -> None:
        """What the observation warns about: unchanged variants, changed numeric globals,
        unmeasured sensitivity."""
        self._warnings += [
            f"{self._request.node.nodeid} [{plan.check}]: variant {unchanged} has the base's "
            "weights, buffers and outputs, byte for byte: it changes nothing the check can see "
            "(pruning that pruned nothing, or an axis the builder ignores)"
            for unchanged in observer.unchanged
        ]
        self._warnings += [
            f"{self._request.node.nodeid} [{plan.check}]: {change}, a process-wide setting; "
            "it was put back after the variant, so other variants and later checks do not run "
            "under it (set it back in the model, or set it for the whole session instead)"
            for change in observer.changed_globals
        ]
        self._warnings += [
            f"{self._request.node.nodeid} [{plan.check}]: variant {reused}: the builder returned "
            "a model that an earlier check_training in this process trained in place (a cached "
            "builder, a module-level model): its training is in this golden, which then "
            "depends on which tests ran before; build a new model in each call"
            for reused in observer.reused_models
        ]
        self._warnings += [
            f"{self._request.node.nodeid} [{plan.check}]: sensitivity not measured: the forward "
            f"run again with every weight scaled (then nudged), {why}\nThe golden is recorded "
            "without it (its sensitivity reads 'not stated'); a model whose forward runs only "
            "once, or that rejects changed weights, cannot state it"
            for why in observer.unmeasured
        ]

    def _check_training(
        self,
        build: Callable[..., Any],
        inputs: Any,
        targets: Any,
        training: dict[str, Any],
        name: str,
        rtol: float | None,
        atol: float | None,
        tolerance: Mapping[str, Any] | None,
        device: str | None,
    ) -> CheckResult:
        """``check``'s plan -> observe -> assert -> conclude, observed by a ``Trainer``
        (no sensitivity and no layers: a training golden holds neither)."""
        __tracebackhide__ = True
        from ..training_run import Trainer

        plan = self._plan(name, rtol, atol, tolerance, device)
        settings = settings_of(self._request.config)
        trainer = Trainer(
            self.spec,
            build,
            inputs,
            targets,
            device=plan.device,
            deterministic=settings.deterministic,
            calibrate=settings.calibrate,
            **training,
        )
        document = trainer.observe()
        self._observed_warnings(plan, trainer)
        candidate, outcome = self._assert(plan, document)
        return self._conclude(plan, document, candidate, outcome)

    def _localise(
        self, observer: Any, candidate: Candidate, outcome: syrupy_bridge.Outcome
    ) -> list[Any]:
        """For a check that moved: its failing variants run again with their layers observed,
        and are compared with the golden's layers (``layers.localise``). Nothing runs for a
        passing check, nor for a golden without layers (it is only told so)."""
        from .. import layers
        from ..errors import ModelError, exception_line

        verdict, recorded = candidate.verdict, candidate.recorded
        if outcome.success or verdict is None or verdict.ok or recorded is None:
            return []
        current = candidate.document["variants"]
        failing = [
            name
            for name in dict.fromkeys(d.variant for d in verdict.differences)
            if name in current and name in recorded["variants"]
        ]
        if not failing:
            return []
        if layers.missing_layers(recorded):
            return layers.localise(recorded, {name: {} for name in failing}, candidate.policy)
        rerun = [
            n for n in failing if "unrecorded" not in recorded["variants"][n].get("layers", {})
        ]
        try:
            observed = observer.observe_layers(rerun) if rerun else {}
        except Exception as exc:  # localising must never hide the failure it explains
            why = str(exc).splitlines()[0] if isinstance(exc, ModelError) else exception_line(exc)
            observed = {
                n: layers.unrecorded(f"the rerun to observe them failed: {why}") for n in rerun
            }
        for name in failing:
            observed.setdefault(name, recorded["variants"][name].get("layers", {}))
        device = str(candidate.document.get("environment", {}).get("device", "cpu"))
        ordered = {name: observed[name] for name in failing}
        return layers.localise(recorded, ordered, candidate.policy, device)

    def _plan(
        self,
        name: str | None,
        rtol: float | None,
        atol: float | None,
        tolerance: Mapping[str, Any] | None,
        device: str | None,
    ) -> _Plan:
        """Validate the call and find the golden; skips the test when its device is absent."""
        __tracebackhide__ = True  # the skip's location is the test's call of check()
        from .. import devices
        from . import extension

        check = DEFAULT_CHECK if name is None else name
        if not isinstance(check, str) or not check or "@" in check:
            raise SpecError(f"check name= must be a non-empty string without '@', got {name!r}")
        check_text(check, "check name=")
        if check in self._names:
            what = "unnamed checks" if name is None else f"checks named {check!r}"
            raise SpecError(
                f"two {what} in one test; give each check(..., name='...') "
                "a distinct name (names key the golden file)"
            )
        self._names.add(check)
        settings = settings_of(self._request.config)
        requested = check_device(device, "check()") or self.spec.device or settings.device
        placement = devices.resolve(requested)
        if placement.unavailable:
            if settings.device_strict:
                raise SpecError(f"device unavailable: {placement.unavailable}")
            pytest.skip(f"weightshape: {placement.unavailable}")
        if settings.golden_per_device:
            kind = devices.kind(placement.device)
            check = f"{check}@{kind}"
            extension.configure(extension.configured()._replace(only_device=kind))
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
            self._assertion = syrupy_bridge.use_extension(
                self._snapshot,
                extension.WeightShapeExtension,
                update_drifted=settings.update_failing,  # new goldens are refused in _assert
            )
        where = syrupy_bridge.location(self._assertion, self._request.node, check)
        self._current = (check, where.path)  # an error from here on is recorded with both
        return _Plan(check, placement.device, policy, self._assertion, where.path, where.test)

    def _may_record(self, plan: _Plan) -> bool:
        """Whether this check may write its golden (an update flag): only then are its
        sensitivity (two more forwards per variant, see ``sensitivity``) and its layers (see
        ``layers``) measured, so a plain run pays for neither (a missing golden is not written
        by a plain run either)."""
        settings = settings_of(self._request.config)
        return syrupy_bridge.may_update(plan.assertion) or settings.update_failing

    def _recorded(self, plan: _Plan) -> Mapping[str, Any] | None:
        """The golden's record of this check, for a run that will not write it: what it
        sealed is taken instead of measured again (``reuse``). ``None`` when there is none or
        it cannot be read (``_assert`` then says why)."""
        from .. import golden

        try:
            return golden.read_checks(Path(plan.path))[1].get(plan.check)
        except (GoldenError, OSError):
            return None

    def _assert(
        self, plan: _Plan, document: dict[str, Any]
    ) -> tuple[Candidate, syrupy_bridge.Outcome]:
        """Compare the observation with the golden (syrupy, through our extension)."""
        from .. import golden
        from .extension import Candidate

        known: Mapping[str, Any] = {}
        unreadable: GoldenError | None = None
        try:  # a corrupt golden fails here, untouched (an update rewrites it); none: {}
            _, known = golden.read_checks(Path(plan.path))
        except GoldenError as exc:
            # named as every other message names a golden: from where pytest started
            shown = os.path.relpath(plan.path, self._request.config.invocation_params.dir)
            unreadable = type(exc)(str(exc).replace(str(Path(plan.path)), shown))
            if isinstance(exc, NewerGoldenError) or not syrupy_bridge.may_update(plan.assertion):
                raise unreadable from None
        config = self._request.config
        settings = settings_of(config)
        nodeid = self._request.node.nodeid
        state = session_of(config)
        candidate = Candidate(
            document,
            plan.policy,
            plan.test,
            plan.check,
            write=lambda: state is None or not state.has_failed(nodeid),
        )
        candidate.fill_missing = syrupy_bridge.may_update(plan.assertion) and not (
            settings.update_failing
        )
        # modes that never record a new golden do not ask syrupy to
        refuse_new = (settings.strict or settings.update_failing) and plan.check not in known
        if refuse_new and unreadable is not None:  # not "no golden": it cannot be read
            raise unreadable from None
        outcome = syrupy_bridge.assert_match(
            plan.assertion, plan.check, candidate, may_record=not refuse_new
        )
        return candidate, outcome

    def _conclude(
        self,
        plan: _Plan,
        document: dict[str, Any],
        candidate: Candidate,
        outcome: syrupy_bridge.Outcome,
        localised: list[Any] | None = None,
    ) -> CheckResult:
        """Record the outcome; pass with a :class:`CheckResult`, or fail with a message."""
        from ..report import messages
        from ..result import CheckResult

        config = self._request.config
        settings = settings_of(config)
        shown = os.path.relpath(plan.path, config.invocation_params.dir)
        if outcome.exception is not None:
            if isinstance(outcome.exception, WeightShapeError):
                raise outcome.exception
            raise WeightShapeError(
                f"reading or writing golden {shown} failed: "
                f"{type(outcome.exception).__name__}: {outcome.exception}"
            )
        where = dict(
            test=plan.test,
            check=plan.check,
            path=shown,
            nodeid=_node_argument(self._request.node.nodeid, config),
        )

        def record(status: str, message: str | None = None) -> None:
            self._record(
                check=plan.check,
                status=status,
                document=document,
                candidate=candidate,
                path=plan.path,
                message=message,
                localised=localised,
            )

        refused = None  # an update flag would record it, but this mode does not
        if (outcome.absent or outcome.created) and settings.strict:
            refused = "strict"
        elif (outcome.absent or outcome.created) and settings.update_failing:
            refused = "update_failing"
        if outcome.absent or refused is not None:
            message = messages.missing(**where, refused=refused)
            record("missing", message)
            raise _Failed(message)
        if not outcome.success:
            assert candidate.verdict is not None
            verbose = config.get_verbosity() >= 2
            message = messages.failure(
                candidate.verdict, **where, verbose=verbose, localised=localised
            )
            record("drifted", message)
            raise _Failed(message)
        status = "recorded" if outcome.created else "updated" if outcome.updated else "passed"
        if status != "passed":
            self._warn_degenerate(plan, document)
        record(status)
        result = CheckResult(plan.check, status, shown, document, candidate.verdict)
        self.results.append(result)
        return result

    def _warn_degenerate(self, plan: _Plan, document: Mapping[str, Any]) -> None:
        """A golden just written that cannot see what it pins warns (see ``degenerate``)."""
        from ..degenerate import findings

        nodeid = self._request.node.nodeid
        for found in findings(document):
            where = "every variant" if found.variant == "every variant" else found.variant
            training = found.kind in ("noise gradient", "diverged")
            what = found.output if training else f"output {found.output!r}"
            self._warnings.append(
                f"{nodeid} [{plan.check}]: {where}, {what} is degenerate "
                f"({found.kind}): {found.text}"
            )

    def _record(
        self,
        *,
        check: str,
        status: str,
        document: dict[str, Any] | None = None,
        candidate: Candidate | None = None,
        path: str = "",
        message: str | None = None,
        localised: list[Any] | None = None,
    ) -> None:
        """Attach the check's outcome to the test: a JUnit property (status, largest drift /
        tolerance, environment changes) and the full record for the summary, reports and
        ``diff``, which travels on the test report (so across xdist workers)."""
        from ..report import records

        verdict = candidate.verdict if candidate is not None else None
        # empty: the check failed before its golden was known
        golden_path = record_path(self._request.config, path) if path else ""
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
            policy=candidate.policy if candidate is not None else None,
        )
        if localised:
            record["layers"] = records.layers_record(localised)
        self._request.node.stash.setdefault(RECORDS, []).append(record)
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
    if not isinstance(name, str) or not name:
        return "default"
    return name.encode("utf-8", "backslashreplace").decode("utf-8")  # records are JSON


def _node_argument(nodeid: str, config: pytest.Config) -> str:
    """The node id as an argument that works from the directory pytest was started in."""
    path, sep, rest = nodeid.partition("::")
    relative = os.path.relpath(config.rootpath / path, config.invocation_params.dir)
    return shlex.quote(f"{Path(relative).as_posix()}{sep}{rest}")
