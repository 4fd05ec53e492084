"""Seeds, builds and runs every variant of a spec -> the observed check document.

Inputs are made once, on the host, from a framework-independent NumPy stream, so they are
bit-identical across framework versions and devices; each variant's build (and forward pass)
runs under the same seed, with the global RNG state restored afterwards.
"""

from __future__ import annotations

import inspect
import math
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from . import environment
from .calibration import divergence_noise, output_noise
from .divergence import output_divergence, parameter_divergence
from .errors import ModelError, SpecError
from .frameworks import (
    Adapter,
    Array,
    adapter_for,
    numerics,
    placed,
    seeded,
    summarize_output,
    to_numpy,
)
from .golden import SCHEMA_VERSION
from .portable import redraw
from .spec import Variant, VariantSpec, check_weights, format_value
from .stats import block_digests, fingerprint


def _is_shape(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) > 0
        and all(isinstance(d, int) and not isinstance(d, bool) for d in value)
    )


def input_stream(seed: int) -> np.random.Generator:
    """The framework-independent stream inputs are drawn from (PCG64 keyed by the seed)."""
    return np.random.Generator(np.random.PCG64(seed))


def make_inputs(inputs: Any, seed: int) -> tuple[Any, ...]:
    """Resolve ``inputs`` to a tuple of arrays/tensors (one per model argument).

    A shape tuple gives a float32 standard-normal array; a tuple of shapes/arrays is a
    multi-input; a callable is called with a seeded ``numpy.random.Generator`` (or nothing).
    """
    return tuple(value for value, _ in resolve_inputs(inputs, seed))


Redraw = Callable[[], np.ndarray]


def resolve_inputs(inputs: Any, seed: int) -> tuple[tuple[Any, Redraw | None], ...]:
    """``make_inputs``, each value paired with how to draw it again (``None`` for a value the
    caller gave): no one else holds a drawn array, so the harness may hand it to the forwards
    as it is, and draw it afresh, bit for bit, if a forward changes it."""
    rng = input_stream(seed)
    if callable(inputs) and not _is_shape(inputs):
        try:
            takes_rng = bool(inspect.signature(inputs).parameters)
        except (TypeError, ValueError):
            takes_rng = False
        try:
            inputs = inputs(rng) if takes_rng else inputs()
        except Exception as exc:
            raise SpecError(f"the inputs= callable raised {_exception_line(exc)}") from None
        if _is_shape(inputs):
            raise SpecError("the inputs= callable returned a shape; return the array itself")
    if _is_shape(inputs):
        return (_drawn(rng, inputs),)
    if isinstance(inputs, list) and inputs and all(isinstance(d, int) for d in inputs):
        raise SpecError(f"inputs={inputs!r}: a shape is a tuple, e.g. inputs={tuple(inputs)!r}")
    if isinstance(inputs, (tuple, list)):
        if not inputs:
            raise SpecError("inputs= is empty: give a shape such as (1, 784), an array, or a tuple")
        return tuple(
            _drawn(rng, item) if _is_shape(item) else (_one(item), None) for item in inputs
        )
    return ((_one(inputs), None),)


def _drawn(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, Redraw]:
    """A drawn array, and how to draw the same one again (from the stream's state before it;
    nothing else, such as an ``inputs=`` callable, runs again)."""
    state = rng.bit_generator.state

    def again() -> np.ndarray:
        replay = np.random.Generator(np.random.PCG64())
        replay.bit_generator.state = state
        return _draw(replay, shape)

    return _draw(rng, shape), again


def _draw(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    if any(d < 0 for d in shape):
        raise SpecError(f"inputs= shape {shape} has a negative dimension")
    return rng.standard_normal(shape, dtype=np.float32)


def _one(value: Any) -> Any:
    if to_numpy(value) is None:
        raise SpecError(
            f"inputs= got {type(value).__name__}; give a shape tuple such as (1, 784), "
            "an array or tensor, a tuple of those, or a callable returning them"
        )
    return value


def _exception_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _user_traceback(exc: BaseException) -> str:
    """The exception's traceback without the harness's own frames."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if "pytest_weightshape" not in f.filename
    ]
    lines = traceback.format_list(frames[-4:])
    return "".join(lines) + _exception_line(exc)


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


def _holds(output: Array, value: np.ndarray) -> bool:
    """Whether a host output may share memory with ``value``."""
    held = output.measured()
    return isinstance(held, np.ndarray) and np.may_share_memory(held, value)


def _tensor_info(arrays: list[Array]) -> dict[str, dict[str, Any]]:
    return {
        a.name: {
            "shape": list(a.value.shape),
            "dtype": a.dtype,
            "fingerprint": fingerprint(a.value),
        }
        for a in arrays
    }


class Observer:
    """Runs a spec's variants and assembles the check document."""

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
        self.weights = check_weights(weights if weights is not None else spec.weights, "check()")
        resolved = resolve_inputs(inputs, spec.seed)
        self.inputs = [value for value, _ in resolved]
        self.redraw = [again for _, again in resolved]
        #: Drawn inputs are the harness's own: forwards get them as they are, with no copy,
        #: and each forward is checked not to have changed them (``_keep_inputs``).
        self.shared = [again is not None for again in self.redraw]
        self.signatures = {
            i: block_digests(value) for i, value in enumerate(self.inputs) if self.shared[i]
        }
        host_inputs = []
        for i, value in enumerate(self.inputs):
            converted = to_numpy(value)
            assert converted is not None
            name = "input" if len(self.inputs) == 1 else f"input.{i}"
            host_inputs.append(Array(name, converted[0], converted[1]))
        self.input_info = _tensor_info(host_inputs)

    def _build(self, variant: Variant) -> tuple[Adapter, Any]:
        with seeded(self.spec.seed):
            try:
                model = self.build(**variant.kwargs)
            except Exception as exc:
                raise ModelError(
                    f"variant {variant.name}: the builder raised\n{_user_traceback(exc)}"
                ) from None
        if model is None:
            raise ModelError(
                f"variant {variant.name}: the builder returned None; it must return the model"
            )
        try:
            adapter = adapter_for(model)
        except ModelError as exc:
            raise ModelError(f"variant {variant.name}: {exc}") from None
        try:
            return adapter, adapter.prepare(model, self.device)
        except Exception as exc:
            raise ModelError(
                f"variant {variant.name}: preparing the model for device {self.device!r} "
                f"failed: {_exception_line(exc)}"
            ) from None

    def _forward(
        self, variant: Variant, adapter: Adapter, model: Any, last: bool = False
    ) -> list[Array]:
        """Run one forward; unless it is the ``last`` to read the inputs, keep them as drawn
        for the next."""
        # each forward gets its own inputs (see Adapter.convert_input), or shares the drawn
        # ones (kept as drawn by ``_keep_inputs``): a model that works in place on its input
        # must not change what the next variant sees
        converted = tuple(
            adapter.convert_input(value, model, shared)
            for value, shared in zip(self.inputs, self.shared, strict=True)
        )
        with seeded(self.spec.seed):
            try:
                raw = adapter.forward(model, converted)
            except Exception as exc:
                shapes = ", ".join(
                    f"{name} {info['shape']} {info['dtype']}"
                    for name, info in self.input_info.items()
                )
                raise ModelError(
                    f"variant {variant.name}: the model rejected the inputs ({shapes})\n"
                    f"{_user_traceback(exc)}"
                ) from None
        try:
            outputs = adapter.outputs(raw, model)
        except ModelError as exc:
            raise ModelError(f"variant {variant.name}: {exc}") from None
        if not last:
            self._keep_inputs(outputs)
        return outputs

    def _keep_inputs(self, outputs: list[Array]) -> None:
        """After a forward on shared inputs: an input it changed in place (CRCs per block,
        which also see changes behind torch's version counter, such as through ``.data``) is
        drawn again, bit for bit, and an input an output holds (a model returning its input)
        is left to that output; the next forwards then get their own copies of it, as they
        do of the inputs a caller gives. Every forward thus sees the drawn values."""
        for i, (value, again) in enumerate(zip(self.inputs, self.redraw, strict=True)):
            if not self.shared[i] or again is None:
                continue
            if block_digests(value) != self.signatures[i]:
                self.inputs[i] = again()
                self.shared[i] = False
            elif any(_holds(o, value) for o in outputs):
                self.shared[i] = False

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

    def observe(self) -> dict[str, Any]:
        """Build, run and measure every variant; the base's outputs are kept for divergence."""
        with numerics(self.deterministic), placed(self.device):
            return self._observe()

    def _observe(self) -> dict[str, Any]:
        variants: dict[str, Any] = {}
        base_outputs: dict[str, Any] = {}  # host arrays, or native tensors on their device
        base_doc: dict[str, Any] = {}
        device = "cpu"
        feature_axis: Callable[[int], int] = lambda ndim: -1  # noqa: E731
        for variant in self.spec.variants:
            adapter, model = self._build(variant)
            if self.weights == "portable":
                self._forward(variant, adapter, model)  # lazy models create their weights here
                values = redraw(adapter.parameters(model), self.spec.seed, adapter.convention)
                adapter.set_parameters(model, values)
            device = adapter.device(model)
            feature_axis = adapter.feature_axis
            last = variant is self.spec.variants[-1] and not self.calibrate
            outputs = self._forward(variant, adapter, model, last)
            params = adapter.parameters(model)  # after the forward: lazy models build there
            doc: dict[str, Any] = {
                "base": variant.is_base,
                "kwargs": _json_kwargs(variant.kwargs),
                "framework": adapter.name,
                "model": type(model).__name__,
                "device": device,
                "parameter_count": int(sum(p.value.size for p in params)),
                "parameters": _tensor_info(params),
                "inputs": self.input_info,
                "outputs": {
                    o.name: {
                        "shape": list(o.shape),
                        "dtype": o.dtype,
                        "stats": summarize_output(o),
                    }
                    for o in outputs
                },
            }
            if self.calibrate:
                self._calibrate(variant, adapter, model, outputs, doc)
            if variant.is_base:
                base_outputs = {o.name: o.measured() for o in outputs}
                base_doc = doc
            else:
                doc["divergence"] = {
                    "parameters": parameter_divergence(
                        base_doc["parameters"],
                        doc["parameters"],
                        base_doc["parameter_count"],
                        doc["parameter_count"],
                    ),
                    "outputs": {
                        o.name: output_divergence(
                            base_outputs[o.name],
                            o.measured(),
                            base_doc["outputs"][o.name]["stats"],
                            doc["outputs"][o.name]["stats"],
                            feature_axis(len(o.shape)),
                        )
                        for o in outputs
                        if o.name in base_outputs
                    },
                    "outputs_added": [o.name for o in outputs if o.name not in base_outputs],
                    "outputs_removed": [
                        n for n in base_outputs if n not in {o.name for o in outputs}
                    ],
                }
                noise = {
                    name: divergence_noise(
                        base_doc["outputs"][name]["stats"],
                        base_doc["outputs"][name]["noise"],
                        doc["outputs"][name]["stats"],
                        doc["outputs"][name]["noise"],
                        measures,
                    )
                    for name, measures in doc["divergence"]["outputs"].items()
                    if "noise" in doc["outputs"][name] and "noise" in base_doc["outputs"][name]
                }
                if noise:
                    doc["divergence"]["noise"] = noise
            variants[variant.name] = doc
            del model, outputs
        return {
            "schema_version": SCHEMA_VERSION,
            "seed": self.spec.seed,
            "weights": self.weights,
            "environment": environment.collect(device),
            "variants": variants,
        }
