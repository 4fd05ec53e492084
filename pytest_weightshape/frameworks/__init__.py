"""One adapter per framework behind one small protocol.

An adapter module is imported only when a model of its kind reaches a check, and a framework
is detected with ``sys.modules.get(...)`` before any ``isinstance``: a test suite that never
imports torch never pays for it.
"""

from __future__ import annotations

import importlib
import random
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any, Protocol

import numpy as np

from ..errors import ModelError
from .first_import import on_first_import


class Array:
    """A leaf of a model's inputs, outputs or parameters.

    ``value`` is on the host. An output that lives on an accelerator keeps its ``native``
    tensor instead and is measured there (``summarize``, ``divergence``); it is copied to the
    host only if something reads ``value`` (calibration).
    """

    __slots__ = ("_host", "dtype", "name", "native")

    def __init__(self, name: str, value: np.ndarray | None, dtype: str, native: Any = None):
        if value is None and native is None:
            raise ValueError("an Array needs a host value or a native tensor")
        self.name = name
        self._host = value
        self.dtype = dtype  # the framework's name (``bfloat16`` is kept: numpy lacks it)
        self.native = native

    @property
    def value(self) -> np.ndarray:
        if self._host is None:
            converted = to_numpy(self.native)
            assert converted is not None
            self._host = converted[0]
        return self._host

    @property
    def shape(self) -> tuple[int, ...]:
        source = self.native if self._host is None else self._host
        return tuple(int(d) for d in source.shape)

    def measured(self) -> Any:
        """What statistics and divergence read: the native tensor if kept, else the host array."""
        return self.native if self._host is None else self._host

    def __repr__(self) -> str:
        where = "native" if self._host is None else "host"
        return f"Array({self.name!r}, {self.dtype}, shape={list(self.shape)}, {where})"


class Adapter(Protocol):
    """What the harness needs from a framework."""

    name: str
    #: Whose default-initializer scale portable weights follow (``keras`` or ``torch``).
    convention: str

    def prepare(self, model: Any, device: str | None) -> Any:
        """Put the model in inference mode (and on ``device``); return the model to run."""

    def convert_input(self, value: Any, model: Any, shared: bool = False) -> Any:
        """A numpy array or a native tensor -> what the model takes, on the model's device.

        The result is the forward pass's own: a model may change it in place (``x.add_(1)``,
        ``ReLU(inplace=True)``, ``x *= 2``) without changing ``value``, which the next variant
        and the caller still need. Adapters copy only where the conversion does not already
        (a device or dtype change copies; immutable tensors need no copy), and not at all when
        ``shared``: ``value`` is then the harness's own drawn array, which it checks after
        each forward (``inputs.Input.keep``)."""

    def forward(
        self, model: Any, inputs: tuple[Any, ...], keywords: Mapping[str, Any] | None = None
    ) -> Any:
        """Run the model without gradients; ``keywords`` are keyword inputs (issue 14)."""

    def parameters(self, model: Any) -> list[Array]:
        """Named parameters in a stable order."""

    def set_parameters(self, model: Any, values: Mapping[str, np.ndarray]) -> None:
        """Overwrite parameters by name (for portable weights)."""

    def float64_copy(self, model: Any) -> Any | None:
        """The same model computing in float64 (calibration), or ``None`` if not possible."""

    def outputs(self, raw: Any, model: Any) -> list[Array]:
        """Flatten a raw output (tensor, tuple, list, dict) to named arrays."""

    def device(self, model: Any) -> str:
        """Where the model runs (``cpu``, ``cuda:0``...)."""

    def feature_axis(self, ndim: int) -> int:
        """The channel/feature axis of an output with ``ndim`` dims, when no width differs."""

    def observe_layers(self, model: Any, forward: Callable[[], Any]) -> tuple[Any, Any]:
        """Run ``forward()`` observing every leaf layer of ``model``: its raw output and the
        layers' record for a golden (``layers.to_golden``, or ``layers.unrecorded`` saying why
        they cannot be observed). Observation is removed again, also when the forward raises."""


#: (module that must already be imported, adapter module) in detection order.
#: Keras comes first: on its torch backend, Keras layers are also ``torch.nn.Module``s.
_FRAMEWORKS: tuple[tuple[str, str], ...] = (("keras", "keras_adapter"), ("torch", "torch_adapter"))
#: (module that must already be imported, module with ``save() -> restore`` and ``seed(int)``).
_RNGS: tuple[tuple[str, str], ...] = (
    ("torch", "torch_adapter"),
    ("tensorflow", "tensorflow_adapter"),
    ("keras", "keras_adapter"),
)
#: Modules with ``deterministic() -> restore`` (deterministic algorithms / op determinism).
#: Modules with ``numeric_globals() -> {description: (value, restore)}``: process-wide settings
#: that change how a model computes (torch's default dtype, Keras's floatx).
_GLOBALS: tuple[tuple[str, str], ...] = (("torch", "torch_adapter"), ("keras", "keras_adapter"))
_DETERMINISM: tuple[tuple[str, str], ...] = (
    ("torch", "torch_adapter"),
    ("tensorflow", "tensorflow_adapter"),
)
#: Frameworks set up right after their first import when a builder or a forward imports one
#: inside a check (``first_import``), as if it had been imported before the check.
_WATCHED = frozenset(name for name, _ in _RNGS + _GLOBALS + _DETERMINISM)


def adapter_for(model: Any) -> Adapter:
    """The adapter for ``model``; plain callables get the NumPy adapter."""
    for module_name, adapter_module in _FRAMEWORKS:
        if module_name in sys.modules:
            adapter = _load(adapter_module)
            if adapter.owns(model):
                return adapter.ADAPTER  # type: ignore[no-any-return]
    if callable(model):
        return _load("numpy_adapter").ADAPTER  # type: ignore[no-any-return]
    raise ModelError(
        f"the builder returned {type(model).__name__} {_short(model)}, which is not a model: "
        "return a torch.nn.Module or a callable that maps arrays to arrays"
    )


def _load(adapter_module: str) -> Any:
    return importlib.import_module(f"{__name__}.{adapter_module}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Generators:
    """Python ``random``, numpy's global RNG and every imported framework's generators, saved
    when made (``kept_generators``) and put back by ``restore``; ``seed`` seeds them all.

    Saving is the costly part (numpy's state alone took ~80 us to read and ~100 us to write
    back on the 2-core machine: a check that seeds each build and forward saves once). A
    framework first imported inside ``kept_generators`` (by a builder) is saved as its import
    left it and seeded with the last seed (``imported``), before the builder draws from it; one
    imported otherwise after the save is saved when it is first seeded. Either way it is put
    back as found.
    """

    def __init__(self) -> None:
        self._python = random.getstate()
        self._numpy = np.random.get_state()
        self._restores: dict[str, Callable[[], None]] = {}
        self._seed: int | None = None
        self._save_new()

    def imported(self, name: str) -> None:
        """Framework ``name`` was first imported in the block: save it, seed it if seeded."""
        for rng, module in _RNGS:
            if rng == name and module not in self._restores:
                self._restores[module] = _load(module).save()
                if self._seed is not None:
                    _load(module).seed(self._seed)

    def _save_new(self) -> None:
        # every state is saved before anything is seeded: seeding one framework may touch
        # another's generator, as Keras on torch does
        for name, module in _RNGS:
            if name in sys.modules and module not in self._restores:
                self._restores[module] = _load(module).save()

    def seed(self, seed: int) -> None:
        self._seed = seed
        self._save_new()
        random.seed(seed)
        np.random.seed(seed)
        for module in self._restores:
            _load(module).seed(seed)

    def restore(self) -> None:
        for restore in reversed(self._restores.values()):
            restore()
        np.random.set_state(self._numpy)
        random.setstate(self._python)


@contextmanager
def kept_generators() -> Iterator[Generators]:
    """Every generator (see ``Generators``) as it was before the block, after it."""
    generators = Generators()
    try:
        with on_first_import(_WATCHED, generators.imported):
            yield generators
    finally:
        generators.restore()


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed python ``random``, numpy's global RNG and every imported framework; restore after.

    Frameworks that are not imported are left alone.
    """
    with kept_generators() as generators:
        generators.seed(seed)
        yield


@contextmanager
def kept_globals(changed: list[str]) -> Iterator[None]:
    """Numeric globals a model may set while it is built or run (torch's default dtype and
    float32 matmul precision, Keras's floatx and dtype policy) are put back after the block,
    so no variant or later check computes under another's; each one that changed is
    described in ``changed`` (``torch default dtype: torch.float32 -> torch.float64``)."""
    saved = {
        what: state
        for name, module in _GLOBALS
        if name in sys.modules
        for what, state in _load(module).numeric_globals().items()
    }

    def imported(name: str) -> None:  # as its import left them
        for framework, module in _GLOBALS:
            if framework == name:
                for what, state in _load(module).numeric_globals().items():
                    saved.setdefault(what, state)

    try:
        with on_first_import(_WATCHED, imported):
            yield
    finally:
        now = {
            what: value
            for name, module in _GLOBALS
            if name in sys.modules
            for what, (value, _) in _load(module).numeric_globals().items()
        }
        for what, (before, restore) in saved.items():
            if what in now and now[what] != before:
                changed.append(f"{what}: {before} -> {now[what]}")
                restore()


@contextmanager
def numerics(deterministic: bool) -> Iterator[None]:
    """Deterministic algorithms in every imported framework for the block, when asked."""
    restores = (
        [_load(m).deterministic() for name, m in _DETERMINISM if name in sys.modules]
        if deterministic
        else []
    )

    def imported(name: str) -> None:
        restores.extend(_load(m).deterministic() for fw, m in _DETERMINISM if fw == name)

    try:
        with on_first_import(_WATCHED if deterministic else frozenset(), imported):
            yield
    finally:
        for restore in reversed(restores):
            restore()


@contextmanager
def placed(device: str | None) -> Iterator[None]:
    """Frameworks that place tensors at creation (Keras) build and run on ``device`` (Keras
    imported in the block too, from its import on)."""
    if device is None:
        yield
        return
    with ExitStack() as late:
        if "keras" in sys.modules:
            late.enter_context(_load("keras_adapter").placed(device))
        owner = threading.get_ident()

        def imported(name: str) -> None:
            # a Keras device scope belongs to the thread that enters it: Keras first imported
            # on another thread (a builder that builds on a pool) is placed from the next check
            if name == "keras" and threading.get_ident() == owner:
                late.enter_context(_load("keras_adapter").placed(device))

        with on_first_import(frozenset({"keras"}), imported):
            yield


def to_numpy(value: Any) -> tuple[np.ndarray, str] | None:
    """A native array or tensor on the host, with its dtype name; ``None`` if not an array."""
    if isinstance(value, np.ndarray):
        return value, value.dtype.name
    if isinstance(value, np.generic):
        return np.asarray(value), value.dtype.name
    for module_name, adapter_module in _FRAMEWORKS:
        if module_name in sys.modules:
            converted = _load(adapter_module).to_numpy(value)
            if converted is not None:
                return converted  # type: ignore[no-any-return]
    return None


def summarize_output(array: Array) -> dict[str, Any]:
    """The statistics of an output, on its device when it was kept native there."""
    if array.native is not None and array.measured() is array.native:
        return native_ops(array.native).summarize(array.native)  # type: ignore[no-any-return]
    from ..stats import summarize

    return summarize(array.value)


def native_ops(value: Any) -> Any:
    """The module measuring ``value`` natively (``summarize``, ``similarity``, ``sample_matrix``,
    ``host``); only torch tensors are kept native today."""
    if "torch" in sys.modules:
        module = _load("torch_stats")
        if module.owns(value):
            return module
    raise TypeError(f"no native statistics for {type(value).__name__}")


def _host_leaf(value: np.ndarray | np.generic) -> tuple[np.ndarray, str]:
    """A NumPy output as a plain array; a masked array is refused (its mask would be lost)."""
    if isinstance(value, np.ma.MaskedArray):
        raise ModelError(
            "a masked array: return its values (.filled(...) or .compressed()); a mask is "
            "not measured"
        )
    array = np.asarray(value)  # np.matrix and other subclasses: their plain values
    return array, array.dtype.name


def flatten(
    raw: Any,
    leaf: Callable[[Any], tuple[np.ndarray, str] | Array | None],
) -> list[Array]:
    """Flatten nested outputs to stable names.

    A lone array is ``output``; tuples and lists are indexed (``0``, ``1.0``), dicts and named
    tuples keyed by field (adapters turn known structures such as an LSTM's
    ``(output, (h_n, c_n))`` into dicts first).
    ``None`` leaves are skipped; Python numbers become 0-d arrays; anything else is an error.
    """
    out: list[Array] = []
    try:
        _flatten_into(raw, (), leaf, out)
    except RecursionError:
        raise ModelError(
            "the model's outputs are nested too deeply to flatten: return arrays or tensors, "
            "or shallow tuples, lists and dicts of them"
        ) from None
    seen: set[str] = set()
    for item in out:
        if item.name in seen:
            raise ModelError(f"the model's outputs flatten to the name {item.name!r} twice")
        seen.add(item.name)
    if not out:
        raise ModelError("the model returned no array output (None or an empty container)")
    return out


# -- keyword inputs (issue 14) ----------------------------------------------------------------


def _flatten_into(
    value: Any,
    path: tuple[str, ...],
    leaf: Callable[[Any], tuple[np.ndarray, str] | Array | None],
    out: list[Array],
) -> None:
    """``flatten``'s walk: a module function, not a closure calling itself (that is a reference
    cycle holding ``out``, and with it every output, alive until the garbage collector runs)."""
    if value is None:
        return
    try:
        converted = leaf(value)
        if converted is None and isinstance(value, (np.ndarray, np.generic)):
            converted = _host_leaf(value)  # a torch or Keras model may return NumPy
    except ModelError as exc:
        raise ModelError(f"output {'.'.join(path) or 'output'!r} is {exc}") from None
    if converted is None and isinstance(value, (bool, int, float)):
        converted = (np.asarray(value), np.asarray(value).dtype.name)
    if isinstance(converted, Array):  # kept native on its device
        out.append(Array(".".join(path) or "output", None, converted.dtype, converted.native))
        return
    if converted is not None:
        name = ".".join(path) or "output"
        array, dtype = converted
        if array.dtype.kind not in "biufc":  # text, bytes, objects, dates
            raise ModelError(
                f"output {name!r} holds {array.dtype} values ({type(value).__name__}), which "
                "have no statistics: return numeric arrays or tensors (encode text as ids)"
            )
        if np.iscomplexobj(array):  # measured as two real outputs
            out.append(Array(f"{name}.real", np.ascontiguousarray(array.real), dtype))
            out.append(Array(f"{name}.imag", np.ascontiguousarray(array.imag), dtype))
        else:
            out.append(Array(name, array, dtype))
        return
    if isinstance(value, Mapping):
        for key in value:
            _flatten_into(value[key], (*path, str(key)), leaf, out)
    elif isinstance(value, tuple) and hasattr(value, "_fields"):
        for key in value._fields:
            _flatten_into(getattr(value, key), (*path, key), leaf, out)
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            _flatten_into(item, (*path, str(i)), leaf, out)
    else:
        sparse = "sparse" in type(value).__name__.lower()
        raise ModelError(
            f"the model returned an output of unsupported type {type(value).__name__} "
            f"at {'.'.join(path) or 'the top level'}: outputs must be arrays/tensors, "
            "numbers, or tuples, lists and dicts of them"
            + ("; return a dense tensor (to_dense)" if sparse else "")
        )


def keyword_problem(adapter: Adapter, model: Any, keywords: Any, positional: int = 0) -> str | None:
    """Why ``model`` cannot take the keyword inputs ``keywords`` (names), or ``None``.

    The signature read is the one the adapter calls: a torch module's ``forward``, a Keras
    functional model's named inputs or a Keras layer's ``call``, a plain callable itself. A
    signature that cannot be read, or takes ``**kwargs``, accepts every keyword.
    """
    import inspect

    names = list(keywords)
    if not names:
        return None
    if adapter.name == "keras":
        inputs = _load("keras_adapter").input_names(model)
        if inputs is not None:
            unknown = [n for n in names if n not in inputs]
            if unknown:
                return (
                    f"the model has no input named {unknown[0]!r}: its inputs are "
                    f"{', '.join(inputs) or '(none)'} (Keras functional models take keyword "
                    "inputs by their Input layers' names)"
                )
            return None
        target, shown = model.call, f"{type(model).__name__}.call"
    elif adapter.name == "torch":
        target, shown = model.forward, f"{type(model).__name__}.forward"
    else:
        target, shown = model, getattr(model, "__name__", type(model).__name__)
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    params = signature.parameters.values()
    text = str(
        signature.replace(
            parameters=[p.replace(annotation=inspect.Parameter.empty) for p in params],
            return_annotation=inspect.Signature.empty,
        )
    )
    if len(text) > 300:
        text = text[:297] + "..."
    filled = [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ][:positional]
    twice = [n for n in names if n in filled]
    if twice:
        return (
            f"inputs= gives {twice[0]!r} both positionally and by keyword: its signature is "
            f"{shown}{text}; drop the keyword or the positional input"
        )
    accepted = {
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    for p in params:
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            typed = _typed_kwargs(p.annotation)
            if typed is None:
                return None  # **kwargs: every keyword is accepted
            accepted |= typed
    unknown = [n for n in names if n not in accepted]
    if not unknown:
        return None
    which = ", ".join(repr(n) for n in unknown)
    return (
        f"the model takes no keyword argument {which}: its signature is {shown}{text}; "
        "rename the key in inputs= or pass that input positionally"
    )


def _typed_kwargs(annotation: Any) -> set[str] | None:
    """The keys of ``**kwargs: Unpack[SomeTypedDict]`` (how HuggingFace types a model's extra
    keywords); ``None`` when ``**kwargs`` takes anything."""
    import typing

    unpack = getattr(typing, "Unpack", None)  # Python 3.11+
    if unpack is None or typing.get_origin(annotation) is not unpack:
        return None
    (inner,) = typing.get_args(annotation) or (None,)
    if not typing.is_typeddict(inner):
        return None
    keys: set[str] = set()
    for klass in getattr(inner, "__mro__", (inner,)):
        keys |= set(getattr(klass, "__annotations__", {}))
    return keys
