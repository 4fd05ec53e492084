"""Where checks run: ``cpu``, ``cuda``, ``cuda:N``, ``mps``, or ``auto`` (the best available).

Availability is asked of torch only when the test process already imported it, so resolving a
device never imports a framework. Inputs are always made on the CPU first (bit-identical
everywhere) and then moved to the device with the model.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from .errors import SpecError

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(?::\d+)?)$")


@dataclass(frozen=True)
class Placement:
    """A resolved device, or why the requested one cannot be used here."""

    device: str
    unavailable: str | None = None


def check_device(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _DEVICE.match(value):
        raise SpecError(
            f"{where}: device= must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {value!r}"
        )
    return value


def kind(device: str) -> str:
    """``cuda:1`` -> ``cuda``; ``gpu:0`` (TensorFlow's name) -> ``cuda``."""
    head = device.split(":", 1)[0].lower()
    return "cuda" if head == "gpu" else head


def _cuda_count() -> int:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return int(torch.cuda.device_count())
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        return len(tf.config.list_physical_devices("GPU"))
    return 0


def _mps() -> bool:
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.backends.mps.is_available())


def resolve(requested: str | None) -> Placement:
    """The device to run on for a request (``None`` means ``cpu``)."""
    if requested in (None, "cpu"):
        return Placement("cpu")
    if requested == "auto":
        if _cuda_count():
            return Placement("cuda:0")
        return Placement("mps" if _mps() else "cpu")
    if requested == "mps":
        return Placement("mps") if _mps() else Placement("mps", "MPS is not available here")
    assert requested is not None
    index = int(requested.partition(":")[2] or 0)
    count = _cuda_count()
    if index < count:
        return Placement(f"cuda:{index}")
    have = f"{count} CUDA device(s)" if count else "no CUDA device"
    return Placement(requested, f"{requested} was requested but this machine has {have}")
