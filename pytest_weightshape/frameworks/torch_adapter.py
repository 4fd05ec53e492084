"""PyTorch ``nn.Module`` models. Imported only once torch is already imported by the test."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from ..errors import ModelError, exception_line
from . import Array, flatten

#: Device types whose large outputs are measured on the device with torch reductions instead
#: of being copied to the host (``frameworks.torch_stats``). MPS lacks float64, so its outputs
#: take the host path (its memory is the host's anyway).
NATIVE_DEVICES: frozenset[str] = frozenset({"cuda"})


def owns(model: Any) -> bool:
    return isinstance(model, torch.nn.Module)


def _cuda_ready() -> bool:
    return bool(torch.cuda.is_initialized())  # type: ignore[no-untyped-call]


def save() -> Callable[[], None]:
    """Snapshot torch's CPU generator (and CUDA's, once initialised); return a restore."""
    cpu_state = torch.random.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if _cuda_ready() else None

    def restore() -> None:
        torch.random.set_rng_state(cpu_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        elif _cuda_ready():  # CUDA started inside the check: do not leave it at our seed
            torch.cuda.seed_all()

    return restore


def numeric_globals() -> dict[str, tuple[Any, Callable[[], None]]]:
    """torch's process-wide numeric settings: description -> (value, how to put it back)."""
    dtype = torch.get_default_dtype()
    precision = torch.get_float32_matmul_precision()
    found: dict[str, tuple[Any, Callable[[], None]]] = {
        "torch default dtype": (dtype, lambda: torch.set_default_dtype(dtype)),
        "torch float32 matmul precision": (
            precision,
            lambda: torch.set_float32_matmul_precision(precision),
        ),
    }
    threads = torch.get_num_threads()
    found["torch thread count"] = (threads, lambda: torch.set_num_threads(threads))
    # this thread's (a builder's torch.set_grad_enabled(False) turned autograd off for every
    # later test, which failed with "element 0 of tensors does not require grad")
    grad = torch.is_grad_enabled()

    def put_grad_back() -> None:
        torch.set_grad_enabled(grad)

    found["torch grad mode"] = (grad, put_grad_back)
    if hasattr(torch, "get_default_device"):  # torch 2.3+
        device = torch.get_default_device()
        found["torch default device"] = (device, lambda: torch.set_default_device(device))
    return found


def seed(value: int) -> None:
    """Seed the CPU generator, and CUDA's only if initialised (``torch.manual_seed`` would
    queue a lazy CUDA seed that outlives the check)."""
    torch.default_generator.manual_seed(value)
    if _cuda_ready():
        torch.cuda.manual_seed_all(value)


def deterministic() -> Callable[[], None]:
    """``torch.use_deterministic_algorithms(True)``; return a restore of the previous mode."""
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required on CUDA
    torch.use_deterministic_algorithms(True)

    def restore() -> None:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)

    return restore


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def to_numpy(value: Any) -> tuple[np.ndarray, str] | None:
    if not isinstance(value, torch.Tensor):
        return None
    _check_measurable(value)
    tensor = value.detach()
    if tensor.is_floating_point() and tensor.dtype not in (
        torch.float16,
        torch.float32,
        torch.float64,
    ):
        tensor = tensor.to(torch.float32)  # bfloat16, float8...: numpy has no such dtype
    return tensor.cpu().resolve_conj().resolve_neg().numpy(), dtype_name(value.dtype)


def _check_measurable(tensor: torch.Tensor) -> None:
    """A tensor whose values can be read as numbers, or a :class:`ModelError` saying what it
    is and what to return instead."""
    what = f"a {tensor.dtype} tensor of layout {tensor.layout} on {tensor.device}"
    if tensor.is_meta:
        raise ModelError(
            f"{what}: a meta tensor has a shape but no values; build the model on a real "
            "device (or load its weights) before the check"
        )
    if tensor.is_quantized:
        raise ModelError(
            f"{what}: quantized values have no float statistics here; return "
            "tensor.dequantize() (or check the float model)"
        )
    if tensor.is_nested:
        raise ModelError(f"{what}: a nested tensor is not measured; return its parts (.unbind())")
    if tensor.dtype == torch.complex32:
        raise ModelError(f"{what}: return it as complex64 (tensor.to(torch.complex64))")
    if tensor.layout != torch.strided:
        raise ModelError(f"{what}: return tensor.to_dense() (a sparse layout is not measured)")


def output_leaf(value: Any) -> tuple[np.ndarray, str] | Array | None:
    """An output tensor: kept on its device when that is where it is measured, else on the host."""
    if isinstance(value, torch.Tensor):
        _check_measurable(value)
    if (
        isinstance(value, torch.Tensor)
        and value.device.type in NATIVE_DEVICES
        and not value.is_complex()
    ):
        return Array("", None, dtype_name(value.dtype), value.detach())
    return to_numpy(value)


def _float_dtype(model: Any) -> torch.dtype | None:
    for tensor in model.parameters():
        if tensor.is_floating_point():
            dtype: torch.dtype = tensor.dtype
            return dtype
    return None


#: Recurrent modules return ``(output, h_n)`` or ``(output, (h_n, c_n))``: name the parts.
_RNN_NAMES: dict[type[torch.nn.Module], tuple[str, ...]] = {
    torch.nn.LSTM: ("h_n", "c_n"),
    torch.nn.GRU: ("h_n",),
    torch.nn.RNN: ("h_n",),
}


class TorchAdapter:
    name = "torch"
    convention = "torch"

    def prepare(self, model: Any, device: str | None) -> Any:
        if device is not None:
            model = model.to(device)
        return model.eval()

    def convert_input(self, value: Any, model: Any, shared: bool = False) -> Any:
        caller = torch.from_numpy(value) if isinstance(value, np.ndarray) else value
        if not isinstance(caller, torch.Tensor):
            return value
        tensor, dtype = caller, _float_dtype(model)
        if tensor.is_floating_point() and dtype is not None:
            tensor = tensor.to(dtype)  # a .double() or .half() model gets inputs it accepts
        tensor = tensor.to(self.device(model))
        # the forward's own copy: .to() returns the same tensor unless it changes dtype or
        # device (then it copies); a shared (drawn) input is checked after the forward instead;
        # the caller's memory is copied, a NumPy array by NumPy (its allocator asks for huge
        # pages: a 40 MB copy takes ~5 ms, clone() ~12 ms in page faults)
        if tensor is not caller or shared:
            return tensor
        if caller is not value:
            return torch.from_numpy(value.copy(order="K"))
        return tensor.clone()

    def forward(
        self, model: Any, inputs: tuple[Any, ...], keywords: Mapping[str, Any] | None = None
    ) -> Any:
        with torch.no_grad():
            return model(*inputs, **(keywords or {}))

    def parameters(self, model: Any) -> list[Array]:
        """Named parameters; a pruned or parametrized tensor as its effective value under the
        module's own name (see :func:`effective_parameters`)."""
        out = []
        for name, tensor, _ in effective_parameters(model):
            host = to_numpy(tensor)
            assert host is not None
            out.append(Array(name, host[0], host[1]))
        return out

    def buffers(self, model: Any) -> list[Array]:
        """Persistent buffers (see :func:`persistent_buffers`)."""
        out = []
        for name, tensor in persistent_buffers(model):
            host = to_numpy(tensor)
            assert host is not None
            out.append(Array(name, host[0], host[1]))
        return out

    def set_parameters(self, model: Any, values: Mapping[str, np.ndarray]) -> None:
        with torch.no_grad():
            for name, tensor, write in effective_parameters(model):
                write(torch.from_numpy(values[name]).to(tensor.dtype))

    def float64_copy(self, model: Any) -> Any | None:
        return copy.deepcopy(model).double()

    def outputs(self, raw: Any, model: Any) -> list[Array]:
        names = next((v for k, v in _RNN_NAMES.items() if type(model) is k), None)
        if names and isinstance(raw, tuple) and len(raw) == 2:
            state = raw[1] if len(names) > 1 else (raw[1],)
            if isinstance(state, tuple) and len(state) == len(names):
                raw = {"output": raw[0], **dict(zip(names, state, strict=True))}
        return flatten(raw, output_leaf)

    def device(self, model: Any) -> str:
        for tensor in model.parameters():
            return str(tensor.device)
        for tensor in model.buffers():
            return str(tensor.device)
        return "cpu"

    def feature_axis(self, ndim: int) -> int:
        # torch convolutions are channels-first (N, C, ...); sequences and dense are last-axis.
        return 1 if ndim >= 4 else -1

    def observe_layers(self, model: Any, forward: Callable[[], Any]) -> tuple[Any, Any]:
        """``forward()`` with every leaf module observed -> (its output, the layers' record)."""
        return observe_layers(model, forward)

    def train(
        self,
        model: Any,
        inputs: tuple[Any, ...],
        keywords: Mapping[str, Any],
        targets: tuple[Any, ...],
        loss: Any,
        optimizer: Any,
        steps: int,
        seed: int,
    ) -> Any:
        """Train ``model`` in place (see :mod:`.torch_training` and :mod:`..training`)."""
        from .torch_training import train

        return train(
            model,
            inputs,
            keywords,
            targets,
            loss,
            optimizer,
            steps,
            seed,
            names=effective_names(model),
            outputs=lambda raw: self.outputs(raw, model),
        )


# -- pruning, parametrizations, buffers and FLOPs (issue 14) ----------------------------------


def _pruned_names(module: torch.nn.Module) -> set[str]:
    """Tensors ``torch.nn.utils.prune`` prunes on ``module`` (its forward pre-hooks)."""
    from torch.nn.utils import prune

    return {
        str(hook._tensor_name)
        for hook in module._forward_pre_hooks.values()
        if isinstance(hook, prune.BasePruningMethod)
    }


def effective_parameters(
    model: torch.nn.Module,
) -> list[tuple[str, torch.Tensor, Callable[[torch.Tensor], Any]]]:
    """(name, tensor, how to write it) for every parameter, in ``named_parameters`` order.

    A tensor pruned by ``torch.nn.utils.prune`` (``weight_orig`` with a ``weight_mask``
    buffer) is its effective value ``weight`` (what the forward uses: ``orig * mask``), under
    the module's own name; a tensor with a ``torch.nn.utils.parametrize`` parametrization
    (``parametrizations.weight.original``) is its parametrized value ``weight``. Writing the
    first writes ``weight_orig`` (the mask still applies); writing the second goes through the
    parametrization's ``right_inverse``.
    """
    return [(name, tensor, write) for _, name, tensor, write in _effective_entries(model)]


def effective_names(model: torch.nn.Module) -> dict[str, str]:
    """Each name of ``named_parameters`` -> the name :func:`effective_parameters` gives its
    tensor (``fc.weight_orig`` -> ``fc.weight``; every ``original`` of a parametrization ->
    the parametrized tensor's name)."""
    return {raw: name for raw, name, _, _ in _effective_entries(model, every=True)}


def _effective_entries(
    model: torch.nn.Module, every: bool = False
) -> list[tuple[str, str, torch.Tensor, Callable[[torch.Tensor], Any]]]:
    """(raw name, effective name, tensor, writer) per effective parameter; with ``every``,
    also each further ``original`` of a parametrization already listed."""
    from torch.nn.utils import parametrize

    out: list[tuple[str, str, torch.Tensor, Callable[[torch.Tensor], Any]]] = []
    seen: set[str] = set()
    for name, param in model.named_parameters():
        owner_name, _, leaf = name.rpartition(".")
        parts = name.split(".")
        if "parametrizations" in parts:
            at = len(parts) - 1 - parts[::-1].index("parametrizations")
            prefix, tensor_name = ".".join(parts[:at]), parts[at + 1]
            owner = model.get_submodule(prefix)
            if parametrize.is_parametrized(owner, tensor_name) and leaf.startswith("original"):
                effective = f"{prefix}.{tensor_name}" if prefix else tensor_name
                if effective not in seen or every:
                    seen.add(effective)
                    out.append(
                        (
                            name,
                            effective,
                            getattr(owner, tensor_name),
                            _parametrized_writer(owner, tensor_name),
                        )
                    )
                continue
        owner = model.get_submodule(owner_name)
        if leaf.endswith("_orig") and leaf.removesuffix("_orig") in _pruned_names(owner):
            base = leaf.removesuffix("_orig")
            effective = f"{owner_name}.{base}" if owner_name else base
            seen.add(effective)
            out.append((name, effective, _effective(owner, base), param.copy_))
            continue
        seen.add(name)
        out.append((name, name, param, param.copy_))
    return out


def _effective(owner: torch.nn.Module, base: str) -> torch.Tensor:
    """A pruned tensor's value now: ``orig * mask`` (the attribute ``prune`` sets is only
    refreshed by a forward)."""
    orig = getattr(owner, f"{base}_orig")
    mask = getattr(owner, f"{base}_mask")
    value: torch.Tensor = (orig * mask.to(orig.dtype)).detach()
    return value


def _parametrized_writer(owner: torch.nn.Module, name: str) -> Callable[[torch.Tensor], Any]:
    """Write a parametrized tensor through its ``right_inverse``; a parametrization without
    one gets the value as its ``original`` (when the shapes agree), else a clear error."""

    def write(value: torch.Tensor) -> None:
        try:
            setattr(owner, name, value)
            return
        except (RuntimeError, NotImplementedError):
            pass
        plist = getattr(owner.parametrizations, name)
        original = getattr(plist, "original", None)
        if isinstance(original, torch.Tensor) and original.shape == value.shape:
            original.copy_(value)
            return
        raise ModelError(
            f"{type(owner).__name__}.{name} is parametrized without a right_inverse and its "
            "original has another shape, so weights='portable' cannot write it: give the "
            "parametrization a right_inverse, or use weights='framework'"
        )

    return write


def persistent_buffers(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Buffers a ``state_dict`` keeps (BatchNorm running statistics, ``num_batches_tracked``,
    pruning masks), in ``named_buffers`` order; non-persistent buffers are left out."""
    out = []
    for name, buffer in model.named_buffers():
        owner_name, _, leaf = name.rpartition(".")
        owner = model.get_submodule(owner_name)
        if leaf in owner._non_persistent_buffers_set or buffer is None:
            continue
        out.append((name, buffer))
    return out


def count_flops(run: Callable[[], Any]) -> tuple[Any, int]:
    """``run()``'s result and the FLOPs torch counted in it (``torch.utils.flop_counter``:
    matrix multiplications and convolutions, 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        result = run()
    return result, int(counter.get_total_flops())


ADAPTER = TorchAdapter()


# -- layer observation (localisation, see ``layers``) -----------------------------------------


def _unobservable(model: Any) -> str | None:
    """Why a model's layers cannot be observed with hooks, or ``None``."""
    if isinstance(model, torch.jit.ScriptModule):
        return "a TorchScript model: its layers run inside the script, where hooks do not reach"
    if type(model).__name__ == "OptimizedModule":
        return "a torch.compile'd model: hooks on its layers would break its compiled graph"
    return None


#: Values per partial sum in ``layer_stats``: each row of this many values is summed by
#: torch's vectorised (cascade) reduction in float32, and the rows' sums in float64.
LAYER_ROW = 1024


def layer_stats(tensor: torch.Tensor, scratch: list[torch.Tensor] | None = None) -> dict[str, Any]:
    """Count, mean, std, mean |x|, min and max of a layer output with torch's reductions on
    the tensor's device: sums of x, x**2 and |x| over rows of ``LAYER_ROW`` values (float32
    for half and single precision, float64 otherwise), accumulated in float64 across rows.
    No float64 copy of the output is made; |x| goes to ``scratch`` (a buffer kept across the
    layers of one forward: a fresh one per layer costs more in page faults than the sums).
    On the CPU the extremes come first (reading them costs no device sync): an output of one
    sign (a ReLU's) takes its sum of |x| from its sum, one pass fewer."""
    from ..layers import from_sums

    t = tensor.detach()
    if t.is_complex():
        t = t.abs()
    count = t.numel()
    if not count:
        return from_sums(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    wide = torch.float64 if t.device.type != "mps" else torch.float32  # MPS has no float64
    narrow = wide if t.dtype == torch.float64 or not t.is_floating_point() else torch.float32
    flat = t.reshape(-1)
    try:
        low, high = torch.aminmax(flat)
    except (NotImplementedError, RuntimeError):  # float8, uint16/32/64: not on every device
        low, high = torch.aminmax(flat.to(wide))
    extremes: list[float] | None = None
    sign = 0  # of every value: 1, -1, or 0 when unknown or mixed
    if flat.device.type == "cpu":
        extremes = [float(low), float(high)]
        sign = 1 if extremes[0] >= 0 else -1 if extremes[1] <= 0 else 0
    whole = count - count % LAYER_ROW
    parts = []
    if whole:
        rows = flat[:whole].view(-1, LAYER_ROW)
        parts.append(_row_sums(rows, narrow, wide, scratch, sign))
    if whole < count:
        parts.append(_row_sums(flat[whole:].to(wide).view(1, -1), wide, wide, None, sign))
    sums = parts[0] if len(parts) == 1 else parts[0] + parts[1]
    if extremes is not None:
        values = sums.tolist() + extremes
    else:
        values = torch.cat([sums, torch.stack([low.to(wide), high.to(wide)])]).tolist()
    return from_sums(count, values[0], values[1], values[2], values[3], values[4])


def _row_sums(
    rows: torch.Tensor,
    dtype: torch.dtype,
    wide: torch.dtype,
    scratch: list[torch.Tensor] | None,
    sign: int = 0,
) -> torch.Tensor:
    """The sum, the sum of squares and the sum of |x| of ``rows``: reduced per row in
    ``dtype`` into one small tensor, the rows' sums added in ``wide`` (few torch calls: each
    costs ~5-10 us). ``sign`` 1 or -1: every value has that sign, so |x| sums are the sums."""
    if rows.dtype != dtype:
        rows = rows.to(dtype)
    per_row = torch.empty((3, rows.shape[0]), dtype=dtype, device=rows.device)
    _reduce_rows(rows, per_row, None if sign else _absolute(rows, scratch), sign)
    return per_row.to(wide).sum(dim=1)


def _absolute(rows: torch.Tensor, scratch: list[torch.Tensor] | None) -> torch.Tensor | None:
    """A buffer for |rows| from the scratch list (grown as needed), or ``None`` without one."""
    if scratch is None:
        return None
    size = abs_size(rows.numel())
    held = scratch[0] if scratch else None
    if (
        held is None
        or held.numel() < size
        or held.dtype != rows.dtype
        or held.device != rows.device
        or _frozen(held)
    ):
        held = torch.empty(size, dtype=rows.dtype, device=rows.device)
        scratch[:] = [held]
    return held[:size]


def _frozen(held: torch.Tensor) -> bool:
    """Whether a kept buffer cannot be written here: made under ``torch.inference_mode`` (a
    forward that runs its first layers so), it refuses in-place updates outside it."""
    return held.is_inference() and not torch.is_inference_mode_enabled()


#: Rows whose |x| ``_reduce_rows`` makes at once: the scratch for a layer output's |x| is at
#: most this many rows (16 MiB of float32), not a copy of the whole output.
ABS_ROWS = 4096


def abs_size(values: int) -> int:
    """The scratch ``_reduce_rows`` needs for the |x| of ``values`` values in rows."""
    return min(values, ABS_ROWS * LAYER_ROW)


#: Layer output dtypes and device types measured by ``LayerSums``' own path (results in
#: buffers of the forward, read back once after it); any other output takes ``layer_stats``.
_BUFFERED_DTYPES = (torch.float32, torch.float64)
_BUFFERED_DEVICES = frozenset({"cpu", "cuda"})
#: Float64 values per measured output in ``LayerSums``' result buffer: the rows' sums of x,
#: x**2 and |x|, the same three of the ragged tail, and the extremes.
_SLOT = 8


class LayerSums:
    """The statistics of every layer output of one forward, as ``layer_stats`` computes
    them (the same torch operations on the same values: bit-identical results), with next to
    no allocation per layer: each reduction writes into buffers kept for the whole forward
    (per-row sums and |x| into scratch reused by every layer, each output's float64 sums
    into one result buffer grown in large steps), and the results are read back with one
    ``tolist()`` per device after the forward (on CUDA: one device sync, not one per layer).

    Why: a layer's statistics then allocate about what the layer itself does (on the CNN of
    ``benchmarks/layers.py``, 830 allocations past glibc's per-thread cache per observed
    forward against 1118 with a fresh small tensor per reduction, and 799 for a plain
    forward): fewer chunks for glibc to carve out of the holes freed activations leave.

    ``add`` returns an index; ``read()`` gives the statistics in that order. Outputs of
    other dtypes or devices are measured at once by ``layer_stats``."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, torch.dtype, torch.device], torch.Tensor] = {}
        self._used: dict[torch.device, int] = {}
        # per output: its statistics (measured at once), or
        # (count, device, slot, has rows, has a tail, extremes read on the host or None)
        self._pending: list[Any] = []
        self._scratch: list[torch.Tensor] = []  # ``layer_stats``' |x| buffer

    def _buffer(
        self, kind: str, dtype: torch.dtype, device: torch.device, size: int, keep: bool = False
    ) -> torch.Tensor:
        """The first ``size`` values of this forward's ``kind`` buffer, grown in large steps
        (at least doubling; ``keep``: with the values it held)."""
        key = (kind, dtype, device)
        held = self._buffers.get(key)
        if held is None or held.numel() < size or _frozen(held):
            grown = torch.empty(
                max(size, 2 * held.numel() if held is not None else 0, 256),
                dtype=dtype,
                device=device,
            )
            if keep and held is not None:
                grown[: held.numel()].copy_(held)
            held = self._buffers[key] = grown
        return held[:size]

    def add(self, tensor: torch.Tensor) -> int:
        """Measure ``tensor`` now (it may be freed as soon as this returns); -> its index."""
        t = tensor.detach()
        count = t.numel()
        if t.dtype not in _BUFFERED_DTYPES or t.device.type not in _BUFFERED_DEVICES or not count:
            self._pending.append(layer_stats(t, self._scratch))
            return len(self._pending) - 1
        device = t.device
        slot = self._used.get(device, 0)
        self._used[device] = slot + 1
        row = self._buffer("results", torch.float64, device, _SLOT * (slot + 1), keep=True)
        row = row[_SLOT * slot :]
        flat = t.reshape(-1)
        extremes = self._buffer("extremes", t.dtype, device, 2)
        torch.aminmax(flat, out=(extremes[0], extremes[1]))
        host: list[float] | None = None
        sign = 0
        if device.type == "cpu":  # reading them costs no sync: one pass fewer for one sign
            host = extremes.tolist()
            sign = 1 if host[0] >= 0 else -1 if host[1] <= 0 else 0
        else:
            row[6:8].copy_(extremes)
        whole = count - count % LAYER_ROW
        if whole:
            rows = flat[:whole].view(-1, LAYER_ROW)
            n = rows.shape[0]
            per_row = self._buffer("rows", t.dtype, device, 3 * n).view(3, n)
            absolute = None if sign else self._buffer("abs", t.dtype, device, abs_size(whole))
            _reduce_rows(rows, per_row, absolute, sign)
            if t.dtype != torch.float64:
                wide = self._buffer("wide", torch.float64, device, 3 * n).view(3, n)
                wide.copy_(per_row)
                per_row = wide
            torch.sum(per_row, dim=1, out=row[0:3])
        if whole < count:
            tail = self._buffer("tail", torch.float64, device, count - whole)
            tail.copy_(flat[whole:])
            rows = tail.view(1, -1)
            per_row = self._buffer("tail rows", torch.float64, device, 3).view(3, 1)
            absolute = (
                None if sign else self._buffer("tail abs", torch.float64, device, count - whole)
            )
            _reduce_rows(rows, per_row, absolute, sign)
            torch.sum(per_row, dim=1, out=row[3:6])
        self._pending.append((count, device, slot, bool(whole), whole < count, host))
        return len(self._pending) - 1

    def read(self) -> list[dict[str, Any]]:
        """Every added output's statistics, in the order they were added (one read-back
        per device)."""
        from ..layers import from_sums

        values = {
            device: self._buffers["results", torch.float64, device][: _SLOT * used].tolist()
            for device, used in self._used.items()
        }
        out = []
        for entry in self._pending:
            if isinstance(entry, dict):
                out.append(entry)
                continue
            count, device, slot, main, tail, host = entry
            v = values[device][_SLOT * slot : _SLOT * (slot + 1)]
            if main and tail:
                sums = [v[0] + v[3], v[1] + v[4], v[2] + v[5]]
            else:
                sums = v[0:3] if main else v[3:6]
            low, high = host if host is not None else v[6:8]
            out.append(from_sums(count, sums[0], sums[1], sums[2], low, high))
        return out


def _reduce_rows(
    rows: torch.Tensor, per_row: torch.Tensor, absolute: torch.Tensor | None, sign: int
) -> None:
    """The sum, the sum of squares and the sum of |x| of each row of ``rows`` into
    ``per_row`` (3 x rows); |x| goes to ``absolute`` (at least ``abs_size(rows.numel())``
    values; a fresh tensor without one), ``ABS_ROWS`` rows at a time (each row's sum is the
    same however many rows go at once: |x| is contiguous), unless ``sign`` (1 or -1) says
    every value has that sign: then the |x| sums are the sums."""
    torch.sum(rows, dim=1, out=per_row[0])
    torch.linalg.vector_norm(rows, 2, dim=1, out=per_row[1])
    per_row[1].square_()
    if sign:
        torch.mul(per_row[0], sign, out=per_row[2])
        return
    for start in range(0, rows.shape[0], ABS_ROWS):  # |x| a block of rows at a time
        part = rows[start : start + ABS_ROWS]
        magnitude = (
            part.abs()
            if absolute is None
            else torch.abs(part, out=absolute[: part.numel()].view(part.shape))
        )
        torch.sum(magnitude, dim=1, out=per_row[2, start : start + ABS_ROWS])


def _measurable(value: Any) -> bool:
    return (
        isinstance(value, torch.Tensor)
        and value.layout == torch.strided
        and not value.is_meta
        and not value.is_quantized
        and not value.is_nested
    )


def observe_layers(model: Any, forward: Callable[[], Any]) -> tuple[Any, Any]:
    """Run ``forward`` with a hook on every leaf module of ``model``; return its output and
    the layers' record (see ``layers``). Every hook is removed, also when ``forward`` raises.
    The hooks measure into one ``LayerSums`` of this forward, read back after it."""
    from ..layers import LayerOutput, to_golden, unique_names, unrecorded

    why = _unobservable(model)
    if why is not None:
        return forward(), unrecorded(why)
    calls: list[tuple[str, str, Any]] = []
    handles = []
    sums = LayerSums()
    failed: list[str] = []  # measuring must never break the model's forward

    def hook_for(name: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            if failed:
                return
            try:
                parts = _summaries(_named(module, output), sums)
            except Exception as exc:
                failed.append(
                    f"{name or 'model'} ({type(module).__name__}) failed: {exception_line(exc)}"
                )
                return
            calls.append((name, type(module).__name__, parts))

        return hook

    try:
        for name, module in _hookable_leaves(model):
            handles.append(module.register_forward_hook(hook_for(name or "model")))
        raw = forward()
    finally:
        for handle in handles:
            handle.remove()
    if failed:
        return raw, unrecorded(f"measuring the output of {failed[0]}")
    if not calls:
        return raw, unrecorded("no leaf module ran in the forward")
    try:
        stats = sums.read()
    except Exception as exc:
        return raw, unrecorded(f"reading the layers' statistics failed: {exception_line(exc)}")
    outputs = []
    for name, (_, kind, parts) in zip(unique_names(c[0] for c in calls), calls, strict=True):
        for suffix, dtype, shape, index in parts:
            outputs.append(LayerOutput(name + suffix, kind, dtype, shape, stats[index]))
    return raw, to_golden(outputs)


def _hookable_leaves(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """(qualified name, module) of every leaf module that takes a forward hook: the leaves
    inside a TorchScript or torch.compile'd submodule are left out (TorchScript refuses hooks;
    a compiled one runs its graph, where they would break it), the rest stay observed."""
    opaque: list[str] = []
    found = []
    for name, module in model.named_modules():
        if any(name == o or name.startswith(o + ".") for o in opaque):
            continue
        if name and _unobservable(module) is not None:
            opaque.append(name)
        elif next(module.children(), None) is None:  # a leaf
            found.append((name, module))
    return found


def _named(module: Any, raw: Any) -> Any:
    """A recurrent module's ``(output, (h_n, c_n))`` as named parts, as for model outputs."""
    names = next((v for k, v in _RNN_NAMES.items() if type(module) is k), None)
    if names and isinstance(raw, tuple) and len(raw) == 2:
        state = raw[1] if len(names) > 1 else (raw[1],)
        if isinstance(state, tuple) and len(state) == len(names):
            return {"output": raw[0], **dict(zip(names, state, strict=True))}
    return raw


def _summaries(output: Any, sums: LayerSums) -> list[tuple[str, str, tuple[int, ...], int]]:
    """A layer's output, flattened and measured at once (nothing is kept alive): (suffix,
    dtype, shape, index of its statistics in ``sums``) per part."""
    from ..layers import flatten_output

    return [
        (suffix, dtype_name(t.dtype), tuple(t.shape), sums.add(t))
        for suffix, t in flatten_output(output, _measurable)
    ]
