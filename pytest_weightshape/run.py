"""Seeds, builds and runs every variant of a spec -> the observed check document.

Inputs are drawn once (:mod:`.inputs`); each variant's build (and forward pass) runs under the
same seed, with the global RNG state restored afterwards; each variant's outputs are measured
(:mod:`.stats`) and compared with the base's (:mod:`.divergence`) as soon as they exist, so at
most the base's and one variant's outputs are alive at a time.
"""

from __future__ import annotations

import math
import traceback
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from . import environment
from .calibration import divergence_noise, output_noise
from .divergence import output_divergence, parameter_divergence
from .document import SCHEMA_VERSION
from .errors import ModelError, SpecError, exception_line
from .frameworks import (
    Adapter,
    Array,
    Generators,
    adapter_for,
    kept_generators,
    kept_globals,
    keyword_problem,
    numerics,
    placed,
    seeded,
    summarize_output,
)
from .inputs import draw_inputs
from .inputs import input_stream as input_stream  # re-exported: moved to inputs
from .inputs import make_inputs as make_inputs  # re-exported: moved to inputs
from .inputs import resolve_inputs as resolve_inputs  # re-exported: moved to inputs
from .portable import redraw
from .reuse import Recorded, chained, hinted, sealed
from .sensitivity import delta_for, measure, nudged, scaled
from .sparsity import divergence_fields, same_outputs, same_weights, variant_fields
from .sparsity import tensors as sparsity_tensors
from .spec import Variant, VariantSpec, check_weights, format_value
from .stats import fingerprint, output_crc


def user_traceback(exc: BaseException) -> str:
    """The exception's traceback without the harness's own frames."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if "pytest_weightshape" not in f.filename
    ]
    lines = traceback.format_list(frames[-4:])
    return "".join(lines) + exception_line(exc)


def _json_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    def value(v: Any) -> Any:
        if v is None or isinstance(v, (bool, int, str)):
            return v
        if isinstance(v, float):
            return v if math.isfinite(v) else format_value(v)
        if isinstance(v, (list, tuple)):
            return [value(x) for x in v]
        return format_value(v)

    return {k: value(v) for k, v in kwargs.items()}


def _tensor_info(arrays: list[Array]) -> dict[str, dict[str, Any]]:
    return {
        a.name: {
            "shape": list(a.value.shape),
            "dtype": a.dtype,
            "fingerprint": fingerprint(a.value),
        }
        for a in arrays
    }


class FlopsError(ModelError):
    """The forward fails under torch's FLOP counter only (``--weightshape-flops``)."""


class Observer:
    """Runs a spec's variants and assembles the check document."""

    #: Whether this check changes the models it is given (``check_training`` trains them in
    #: place): a builder that hands one of them to a later check is named (``_handed_out``).
    trains = False

    def __init__(
        self,
        spec: VariantSpec,
        build: Callable[..., Any],
        inputs: Any,
        *,
        device: str | None = None,
        weights: str | None = None,
        deterministic: bool = False,
        calibrate: bool = False,
        flops: bool = False,
        sensitivity: bool = False,
        layers: bool = False,
        recorded: Mapping[str, Any] | None = None,
    ) -> None:
        if not callable(build):
            raise SpecError(
                "check() needs a builder (variant kwargs -> model) first, "
                f"got {type(build).__name__}"
            )
        self.spec = spec
        self.build = build
        self.device = device
        self.deterministic = deterministic
        self.calibrate = calibrate
        #: Count each torch variant's FLOPs in its measured forward (``torch.utils.flop_counter``).
        self.flops = flops
        self._counted: dict[str, int] = {}  # the measured forward's FLOPs, when counted
        #: Variants whose weights and outputs equal the base's: one line each, for a warning.
        self.unchanged: list[str] = []
        #: Measure what the golden can detect (see :mod:`.sensitivity`): two more forwards per
        #: variant, so only when a golden will be recorded.
        self.sensitivity = sensitivity
        self.weights = check_weights(weights if weights is not None else spec.weights, "check()")
        #: Record each variant's layers (``layers``): when the document may become a golden.
        self.layers = layers
        self._given_inputs = inputs
        #: The seed's input stream, left after the inputs' draws (targets are drawn next).
        self.stream = input_stream(spec.seed)
        self.inputs = draw_inputs(inputs, spec.seed, self.stream)
        self.input_info = _tensor_info([i.host for i in self.inputs])
        #: Numeric globals a variant's build or forward changed (put back after it, so no
        #: other variant or check runs under them): one line each, for a warning.
        self.changed_globals: list[str] = []
        #: Variants whose sensitivity could not be measured (a forward with changed weights
        #: failed), with why: recorded without it, and the test warns.
        self.unmeasured: list[str] = []
        #: The golden's check document, read before a run that will not write it: outputs
        #: whose bytes it sealed are taken from it instead of measured (see :mod:`.reuse`).
        self.recorded = Recorded(recorded) if recorded is not None else None
        #: Per variant, each output's CRC (``None``: kept on its device), for the seals.
        self._crcs: dict[str, dict[str, int | None]] = {}
        #: The base's output shapes: whether a variant's output is read along its framework's
        #: feature axis (``reuse.hinted``), for the seals.
        self._base_shapes: dict[str, tuple[int, ...]] = {}
        #: The generators ``observe`` saved (see ``_seeded``); ``None`` outside it.
        self._generators: Generators | None = None
        #: Variants whose builder returned a model an earlier ``check_training`` trained (see
        #: ``_handed_out``), for a warning.
        self.reused_models: list[str] = []
        #: The models this check's builders returned, handed out once ``observe`` is done.
        self._models: list[Any] = []

    def observe(self) -> dict[str, Any]:
        """Build, run and measure every variant; the base's outputs are kept for divergence.
        Every build and forward runs under the spec's seed; the generators are saved once for
        the whole check and put back after it (``frameworks.kept_generators``)."""
        with numerics(self.deterministic), placed(self.device), kept_generators() as kept:
            self._generators = kept
            try:
                return self._observe()
            finally:
                self._generators = None
                for model in self._models:
                    _TRAINED.add(model)
                self._models = []

    @contextmanager
    def _seeded(self) -> Iterator[None]:
        """The block under the spec's seed (inside ``observe``, the generators it saved are
        seeded again; elsewhere they are saved and put back around the block)."""
        if self._generators is None:
            with seeded(self.spec.seed):
                yield
        else:
            self._generators.seed(self.spec.seed)
            yield

    def _observe(self) -> dict[str, Any]:
        variants: dict[str, Any] = {}
        base: _Base | None = None
        device = "cpu"
        for variant in self.spec.variants:
            doc, outputs, adapter = self._variant(variant)
            device = str(doc["device"])
            if variant.is_base:
                base = _Base(doc, {o.name: o.measured() for o in outputs})
            else:
                assert base is not None  # the spec's first variant is its base
                self._diverge(base, doc, outputs, variant, adapter)
            variants[variant.name] = doc
            del outputs
        return self._document(variants, device)

    def _document(self, variants: dict[str, Any], device: str) -> dict[str, Any]:
        """The check document around its variants."""
        return {
            "schema_version": SCHEMA_VERSION,
            "seed": self.spec.seed,
            "weights": self.weights,
            "environment": environment.collect(
                device, {str(v["framework"]) for v in variants.values()}
            ),
            "variants": variants,
        }

    def _variant(self, variant: Variant) -> tuple[dict[str, Any], list[Array], Adapter]:
        """Build, run and measure one variant -> its document, its outputs and its adapter."""
        changed: list[str] = []
        with kept_globals(changed):  # each variant starts from the same numeric globals
            adapter, model = self._weighted(variant)
            device = adapter.device(model)
            last = variant is self.spec.variants[-1]
            last = last and not (self.calibrate or self.sensitivity)
            self._counted.clear()
            observed: dict[str, Any] | None = {} if self.layers else None
            outputs = self._forward(variant, adapter, model, last, observed, count=self.flops)
        doc = self._measure(variant, adapter, model, device, outputs)
        if "flops" in self._counted:
            doc["flops"] = self._counted["flops"]
        if observed is not None:
            doc["layers"] = observed["layers"]
        if self.calibrate:
            with kept_globals(changed):
                self._calibrate(variant, adapter, model, outputs, doc)
        if self.sensitivity:
            with kept_globals(changed):
                self._sensitivity(variant, adapter, model, doc)
        self._changed(variant, changed)
        return doc, outputs, adapter

    def _changed(self, variant: Variant, changed: list[str]) -> None:
        self.changed_globals += [f"variant {variant.name} set the {c}" for c in changed]

    def _diverge(
        self,
        base: _Base,
        doc: dict[str, Any],
        outputs: list[Array],
        variant: Variant,
        adapter: Adapter,
    ) -> None:
        """A non-base variant's divergence from the base, into its document."""
        recorded = self.recorded
        taken = None
        if recorded is not None:
            taken = lambda name: recorded.divergence(variant.name, name)  # noqa: E731
        doc["divergence"] = _divergence(base, doc, outputs, adapter.feature_axis, taken)
        doc["divergence"]["parameters"].update(divergence_fields(base.doc, doc))
        self._seal_divergence(variant, doc, adapter.feature_axis)
        if same_weights(base.doc, doc) and same_outputs(base.doc, doc):
            self.unchanged.append(variant.name)

    def _weighted(self, variant: Variant) -> tuple[Adapter, Any]:
        """The variant built, with its portable weights when the check asks for them."""
        adapter, model = self._build(variant)
        if self.weights == "portable":
            self._forward(variant, adapter, model)  # lazy models create weights here
            values = redraw(adapter.parameters(model), self.spec.seed, adapter.convention)
            adapter.set_parameters(model, values)
        return adapter, model

    def _build(self, variant: Variant) -> tuple[Adapter, Any]:
        with self._seeded():
            try:
                model = self.build(**variant.kwargs)
            except Exception as exc:
                raise ModelError(
                    f"variant {variant.name}: the builder raised\n{user_traceback(exc)}"
                ) from None
        if model is None:
            raise ModelError(
                f"variant {variant.name}: the builder returned None; it must return the model"
            )
        try:
            adapter = adapter_for(model)
        except ModelError as exc:
            raise ModelError(f"variant {variant.name}: {exc}") from None
        self._handed_out(variant, adapter, model)
        try:
            return adapter, adapter.prepare(model, self.device)
        except Exception as exc:
            raise ModelError(
                f"variant {variant.name}: preparing the model for device {self.device!r} "
                f"failed: {exception_line(exc)}"
            ) from None

    def _handed_out(self, variant: Variant, adapter: Adapter, model: Any) -> None:
        """A torch or Keras model an earlier ``check_training`` trained in place (a cached
        builder, a module-level model) carries that training into this check: named in
        ``reused_models`` for a warning. Kept weakly, so no model outlives its test for this;
        a model an earlier forward-only check was given is as it was (a test may check one
        model under two names)."""
        if adapter.name not in ("torch", "keras"):  # a NumPy callable may be a shared function
            return
        try:
            if model in _TRAINED:
                self.reused_models.append(variant.name)
            if self.trains:
                self._models.append(model)
        except TypeError:  # not weakly referable
            pass

    def _forward(
        self,
        variant: Variant,
        adapter: Adapter,
        model: Any,
        last: bool = False,
        observed: dict[str, Any] | None = None,
        *,
        count: bool = False,
    ) -> list[Array]:
        """Run one forward; unless it is the ``last`` to read the inputs, keep them as drawn
        for the next (see :meth:`.inputs.Input.keep`). With ``observed``, the model's layers
        are observed during it and their record is put there (``observed["layers"]``)."""
        converted, keywords = self._converted(variant, adapter, model)
        with self._seeded():
            try:
                if keywords:
                    forward = lambda: adapter.forward(model, converted, keywords)  # noqa: E731
                else:
                    forward = lambda: adapter.forward(model, converted)  # noqa: E731
                if observed is not None:
                    forward = _observing(adapter, model, forward, observed)
                raw = self._run(adapter, forward, count)
            except FlopsError as exc:
                raise ModelError(f"variant {variant.name}: {exc}") from None
            except Exception as exc:
                shapes = ", ".join(
                    f"{name} {info['shape']} {info['dtype']}"
                    for name, info in self.input_info.items()
                )
                raise ModelError(
                    f"variant {variant.name}: the model rejected the inputs ({shapes})\n"
                    f"{user_traceback(exc)}"
                ) from None
        try:
            outputs = adapter.outputs(raw, model)
        except ModelError as exc:
            raise ModelError(f"variant {variant.name}: {exc}") from None
        if not last:
            for each in self.inputs:
                each.keep(outputs)
        return outputs

    def _converted(
        self, variant: Variant, adapter: Adapter, model: Any, *, own: bool = False
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The inputs as the model takes them: (positional, keyword). Each forward gets its
        own inputs (see Adapter.convert_input), or shares the drawn ones: a model that works
        in place on its input must not change what the next variant sees. ``own``: copies
        even of the drawn ones (a training step runs several forwards on them)."""
        converted = tuple(
            adapter.convert_input(i.value, model, i.shared and not own)
            for i in self.inputs
            if i.keyword is None
        )
        keywords = {
            i.keyword: adapter.convert_input(i.value, model, i.shared and not own)
            for i in self.inputs
            if i.keyword is not None
        }
        if keywords:
            problem = keyword_problem(adapter, model, keywords, len(converted))
            if problem:
                raise ModelError(f"variant {variant.name}: {problem}")
        return converted, keywords

    def _run(self, adapter: Adapter, forward: Callable[[], Any], count: bool) -> Any:
        """``forward()``; with ``count`` on a torch model, its FLOPs are kept for the document."""
        if not count or adapter.name != "torch":
            return forward()
        from .frameworks.torch_adapter import count_flops

        try:
            raw, self._counted["flops"] = count_flops(forward)
        except Exception as exc:
            forward()  # fails too: the model's own error, reported as such by the caller
            raise FlopsError(
                "the forward raised under torch.utils.flop_counter.FlopCounterMode "
                f"(--weightshape-flops) but runs without it: {exception_line(exc)}; the counter "
                "cannot trace an operation this model uses, so run this test without "
                "--weightshape-flops"
            ) from None
        return raw

    def observe_layers(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """Build and run the variants ``names`` again, observing their layers: variant ->
        the layers' record (as ``observe`` records them). Runs only when a check failed, so a
        passing check never observes layers."""
        with numerics(self.deterministic), placed(self.device):
            self.inputs = draw_inputs(self._given_inputs, self.spec.seed)  # as first drawn
            found: dict[str, dict[str, Any]] = {}
            for variant in self.spec.variants:
                if variant.name not in names:
                    continue
                observed: dict[str, Any] = {}
                with kept_globals([]):
                    adapter, model = self._weighted(variant)
                    self._forward(variant, adapter, model, False, observed)
                found[variant.name] = observed["layers"]
                del model
            return found

    def _measure(
        self,
        variant: Variant,
        adapter: Adapter,
        model: Any,
        device: str,
        outputs: list[Array],
        kept: tuple[list[Array], list[Array] | None] | None = None,
    ) -> dict[str, Any]:
        """One variant's part of the document: what it is, its parameters (each with its zero
        fraction), buffers, sparsity and outputs. ``kept``: the parameters and buffers to
        record instead of the model's own now (a training check records the initial ones)."""
        # after the forward: lazy models build there
        params = adapter.parameters(model) if kept is None else kept[0]
        recorded = sparsity_tensors(params, self._golden_tensors(variant, "parameters"))
        doc: dict[str, Any] = {
            "base": variant.is_base,
            "kwargs": _json_kwargs(variant.kwargs),
            "framework": adapter.name,
            "model": type(model).__name__,
            "device": device,
            "parameter_count": int(sum(p.value.size for p in params)),
            "parameters": recorded,
            "inputs": self.input_info,
            "outputs": self._outputs(variant, outputs, adapter.feature_axis),
        }
        buffers = getattr(adapter, "buffers", None)
        if kept is not None and kept[1] is not None:
            doc["buffers"] = sparsity_tensors(kept[1], self._golden_tensors(variant, "buffers"))
        elif buffers is not None:
            doc["buffers"] = sparsity_tensors(
                buffers(model), self._golden_tensors(variant, "buffers")
            )
        doc.update(variant_fields(params, recorded))
        return doc

    def _golden_tensors(self, variant: Variant, kind: str) -> dict[str, Mapping[str, Any]]:
        """The golden's fingerprints of ``variant``'s tensors of ``kind`` (read before a run
        that will not write it): their mean and std are taken where the bytes are theirs."""
        return self.recorded.fingerprints(variant.name, kind) if self.recorded is not None else {}

    def _outputs(
        self, variant: Variant, outputs: list[Array], feature_axis: Callable[[int], int]
    ) -> dict[str, Any]:
        """Each output's shape, dtype and statistics; the base's are sealed here (a variant's
        once its divergence is known, in ``_diverge``). Statistics the golden sealed for these
        bytes are taken from it (``reuse``)."""
        crcs = self._crcs[variant.name] = {}
        base = self._crcs.get(self.spec.variants[0].name, {}) if not variant.is_base else {}
        if variant.is_base:
            self._base_shapes = {o.name: o.shape for o in outputs}
        records: dict[str, Any] = {}
        for o in outputs:
            crc = crcs[o.name] = output_crc(o.measured())
            base_crc = base.get(o.name)
            sealable = crc is not None and (o.name not in base or base_crc is not None)
            stats = None
            if sealable and self.recorded is not None:
                assert crc is not None
                axis = self._axis(o.name, o.shape, feature_axis) if base_crc is not None else None
                stats = self.recorded.stats(variant.name, o.name, crc, base_crc, axis)
            if stats is None:
                stats = summarize_output(o)
            records[o.name] = {"shape": list(o.shape), "dtype": o.dtype, "stats": stats}
            if sealable and o.name not in base:  # no divergence to seal with it
                assert crc is not None
                records[o.name]["digest"] = sealed(crc, stats, None)
        return records

    def _axis(
        self, name: str, shape: tuple[int, ...], feature_axis: Callable[[int], int]
    ) -> int | None:
        """The feature axis output ``name``'s divergence reads, when sealed (``reuse.hinted``)."""
        return hinted(self._base_shapes.get(name, ()), shape, feature_axis(len(shape)))

    def _seal_divergence(
        self, variant: Variant, doc: dict[str, Any], feature_axis: Callable[[int], int]
    ) -> None:
        """Seal each output of a variant that has a divergence from the base's: from both
        outputs' CRCs (and the feature axis it read, see ``reuse.chained``), over its
        statistics and that divergence."""
        crcs, base = self._crcs[variant.name], self._crcs[self.spec.variants[0].name]
        for name, entry in doc["divergence"]["outputs"].items():
            crc, base_crc = crcs.get(name), base.get(name)
            if crc is not None and base_crc is not None:
                record = doc["outputs"][name]
                axis = self._axis(name, tuple(record["shape"]), feature_axis)
                chain = chained(base_crc, crc, axis)
                record["digest"] = sealed(chain, record["stats"], entry)

    def _calibrate(
        self, variant: Variant, adapter: Adapter, model: Any, outputs: list[Array], doc: Any
    ) -> None:
        """Record each output statistic's float32 rounding noise (see ``calibration``)."""
        wide = adapter.float64_copy(model)
        if wide is None:
            return
        narrow = {o.name: o for o in outputs}
        for o in self._forward(variant, adapter, wide):
            mine = narrow.get(o.name)
            if mine is not None and mine.dtype == "float32" and o.shape == mine.shape:
                noise = output_noise(mine.value, o.value)
                if noise:
                    doc["outputs"][o.name]["noise"] = noise

    def _sensitivity(self, variant: Variant, adapter: Adapter, model: Any, doc: Any) -> None:
        """Each output's response to a scaling of every weight and its drift under a
        rounding-sized change of every weight (see ``sensitivity``); weights put back after."""
        weights = adapter.parameters(model)
        original = {p.name: p.value.copy() for p in weights}
        if not original:
            return
        dtypes = {p.name: p.dtype for p in weights}
        delta = delta_for(dtypes)
        measured = []
        try:
            for values in (scaled(original, delta), nudged(original, self.spec.seed, dtypes)):
                adapter.set_parameters(model, values)
                outputs = self._forward(variant, adapter, model)
                measured.append({o.name: summarize_output(o) for o in outputs})
                del outputs
        except ModelError as exc:  # a forward that runs once only, or rejects changed weights
            self.unmeasured.append(str(exc).replace("the model rejected the inputs", "it failed"))
            return
        finally:
            adapter.set_parameters(model, original)
        up, nudge = measured
        for name, out in doc["outputs"].items():
            if name in up and name in nudge:
                out.update(measure(out["stats"], up[name], nudge[name], delta))


def _observing(
    adapter: Adapter, model: Any, forward: Callable[[], Any], into: dict[str, Any]
) -> Callable[[], Any]:
    """``forward`` with the model's layers observed; their record goes to ``into``."""
    from .layers import unrecorded

    observe = getattr(adapter, "observe_layers", None)
    if observe is None:
        into["layers"] = unrecorded(f"the {adapter.name} adapter cannot observe layers")
        return forward

    def observed() -> Any:
        raw, into["layers"] = observe(model, forward)
        return raw

    return observed


#: Every torch and Keras model a ``check_training`` trained in this process (weakly).
_TRAINED: weakref.WeakSet[Any] = weakref.WeakSet()


class _Base:
    """What divergence needs of the base: its document, and its outputs (host arrays, or
    native tensors on their device)."""

    __slots__ = ("doc", "outputs")

    def __init__(self, doc: dict[str, Any], outputs: dict[str, Any]) -> None:
        self.doc = doc
        self.outputs = outputs


def _divergence(
    base: _Base,
    doc: dict[str, Any],
    outputs: list[Array],
    feature_axis: Callable[[int], int],
    taken: Callable[[str], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """A variant's divergence from the base: parameters, each output both have, outputs that
    appeared or went away, and (calibrated goldens) each measure's rounding noise. ``taken``
    gives an output's divergence taken from the golden with its statistics (``reuse``)."""
    names = {o.name for o in outputs}

    def measured(o: Array) -> dict[str, Any]:
        entry = taken(o.name) if taken is not None else None
        if entry is not None:
            return entry
        return output_divergence(
            base.outputs[o.name],
            o.measured(),
            base.doc["outputs"][o.name]["stats"],
            doc["outputs"][o.name]["stats"],
            feature_axis(len(o.shape)),
        )

    divergence: dict[str, Any] = {
        "parameters": parameter_divergence(
            base.doc["parameters"],
            doc["parameters"],
            base.doc["parameter_count"],
            doc["parameter_count"],
        ),
        "outputs": {o.name: measured(o) for o in outputs if o.name in base.outputs},
        "outputs_added": [o.name for o in outputs if o.name not in base.outputs],
        "outputs_removed": [n for n in base.outputs if n not in names],
    }
    base_outputs, outputs_doc = base.doc["outputs"], doc["outputs"]
    noise = {
        name: divergence_noise(
            base_outputs[name]["stats"],
            base_outputs[name]["noise"],
            outputs_doc[name]["stats"],
            outputs_doc[name]["noise"],
            measures,
        )
        for name, measures in divergence["outputs"].items()
        if "noise" in outputs_doc[name] and "noise" in base_outputs[name]
    }
    if noise:
        divergence["noise"] = noise
    return divergence
