"""The environment a golden was recorded in: recorded to explain a failure, never compared.

Versions come from package metadata, so recording them imports no framework; live settings
(threads, CUDA) are read only from frameworks the test has already imported.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import metadata
from typing import Any

#: Distributions whose versions are recorded, by the key used in the golden.
_DISTRIBUTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("numpy", ("numpy",)),
    ("torch", ("torch",)),
    ("tensorflow", ("tensorflow", "tensorflow-cpu")),
    ("keras", ("keras",)),
    ("jax", ("jax",)),
)


def package_version(*distributions: str) -> str | None:
    for dist in distributions:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def framework_versions() -> dict[str, str | None]:
    """Installed versions of the frameworks we know, from metadata (no imports)."""
    return dict(_installed_versions())


@cache
def _installed_versions() -> tuple[tuple[str, str | None], ...]:
    # reading package metadata costs ~1 ms per package; what is installed does not change
    # while a test session runs, so each process reads it once
    return tuple((key, package_version(*dists)) for key, dists in _DISTRIBUTIONS)


#: The environment keys that belong to a framework. A check records, and diffs, only those of
#: the frameworks its models used (``used``): a torch check neither records TensorFlow's
#: version nor reports it ``(absent)`` when a later run did not import TensorFlow. Every other
#: key (python, platform, cpu, numpy, threads, device ...) belongs to every check.
FRAMEWORK_KEYS: Mapping[str, tuple[str, ...]] = {
    "torch": (
        "torch",
        "torch_cuda",
        "cudnn",
        "torch_tf32_matmul",
        "torch_tf32_cudnn",
        "torch_matmul_precision",
        "torch_deterministic",
    ),
    "tensorflow": ("tensorflow", "tensorflow_gpus", "tensorflow_deterministic", "onednn"),
    "keras": ("keras", "keras_backend"),
    "jax": ("jax",),
}
_OWNER = {key: name for name, keys in FRAMEWORK_KEYS.items() for key in keys}


def used(frameworks: Iterable[str], keras_backend: str | None = None) -> frozenset[str]:
    """The frameworks a check's models used: their adapters' names (``torch``, ``keras``,
    ``numpy``), with Keras's backend added for Keras models."""
    out = set(frameworks)
    if "keras" in out and keras_backend in FRAMEWORK_KEYS:
        out.add(str(keras_backend))
    return frozenset(out)


def used_by(document: Mapping[str, Any]) -> frozenset[str]:
    """The frameworks a check document's variants ran on (see :func:`used`)."""
    variants = document.get("variants")
    names = [
        str(v.get("framework"))
        for v in (variants.values() if isinstance(variants, Mapping) else ())
        if isinstance(v, Mapping) and v.get("framework")
    ]
    env = document.get("environment")
    backend = env.get("keras_backend") if isinstance(env, Mapping) else None
    return used(names, backend if isinstance(backend, str) else None)


def relevant(key: str, frameworks: frozenset[str] | None) -> bool:
    """Whether ``key`` belongs to a check that used ``frameworks`` (``None``: every key)."""
    owner = _OWNER.get(key)
    return frameworks is None or owner is None or owner in frameworks


def collect(device: str, frameworks: Iterable[str] | None = None) -> dict[str, Any]:
    """The environment block of a golden for a check that ran on ``device``, with the keys of
    the ``frameworks`` its models used (adapter names; ``None``: every imported framework)."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": f"{platform.system()}-{platform.machine()}",
        "cpu": cpu_name(),
    }
    keras = sys.modules.get("keras")
    chosen: frozenset[str] | None = None
    if frameworks is not None:
        backend = keras.backend.backend() if keras is not None else None
        chosen = used(frameworks, backend)
    # versions of numpy and of the frameworks used (installed-but-unused ones would only add
    # noise to environment diffs)
    env.update(
        {
            k: v
            for k, v in framework_versions().items()
            if v is not None and (k == "numpy" or (k in sys.modules and relevant(k, chosen)))
        }
    )
    torch = sys.modules.get("torch") if relevant("torch", chosen) else None
    if torch is not None:
        env["torch_cuda"] = torch.version.cuda
        if torch.backends.cudnn.is_available():
            env["cudnn"] = torch.backends.cudnn.version()
        env["threads"] = torch.get_num_threads()
        env["torch_tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
        env["torch_tf32_cudnn"] = bool(torch.backends.cudnn.allow_tf32)
        env["torch_matmul_precision"] = torch.get_float32_matmul_precision()
        env["torch_deterministic"] = bool(torch.are_deterministic_algorithms_enabled())
    else:
        env["threads"] = os.cpu_count()
    tensorflow = "tensorflow" in sys.modules and relevant("tensorflow", chosen)
    if tensorflow:
        from tensorflow.python.framework import config as tf_config

        env["tensorflow_gpus"] = len(tf_config.list_physical_devices("GPU"))
        env["tensorflow_deterministic"] = bool(tf_config.is_op_determinism_enabled())
    if keras is not None and relevant("keras", chosen):
        env["keras_backend"] = keras.backend.backend()
    if tensorflow:
        env["onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")
    env["device"] = device
    if torch is not None and device.startswith("cuda"):
        index = torch.device(device).index or 0
        env["device_name"] = torch.cuda.get_device_name(index)
        env["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability(index)))
    return env


@cache
def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux), else ``platform.processor()``
    (read once per process)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def differences(
    golden: Mapping[str, Any],
    current: Mapping[str, Any],
    frameworks: frozenset[str] | None = None,
) -> list[str]:
    """Readable changes between two environment blocks: ``torch 2.13.0 -> 2.14.1``; with
    ``frameworks``, only the keys of those frameworks and the common ones (a golden recorded
    by an older version holds every imported framework's)."""
    out = []
    for key in dict.fromkeys([*golden, *current]):
        old, new = golden.get(key), current.get(key)
        if old != new and relevant(key, frameworks):
            out.append(
                f"{key} {old if old is not None else '(absent)'} -> "
                f"{new if new is not None else '(absent)'}"
            )
    return out


#: How a changed key explains new outputs on the same inputs and weights, most likely first.
_CULPRITS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("device", "device_name", "compute_capability"), "the device: other kernels"),
    (("torch", "tensorflow", "keras", "jax"), "the framework version: its kernels"),
    (("keras_backend",), "the Keras backend: another framework computes the layers"),
    (
        (
            "onednn",
            "torch_tf32_matmul",
            "torch_tf32_cudnn",
            "torch_matmul_precision",
            "torch_deterministic",
            "tensorflow_deterministic",
        ),
        "a numerics switch: other kernels or precision",
    ),
    (("torch_cuda", "cudnn"), "the CUDA or cuDNN version: its kernels"),
    (("threads",), "the thread count: sums split and added in another order"),
    (("numpy", "cpu", "platform", "python"), "the math library or machine"),
)


def culprit(
    golden: Mapping[str, Any],
    current: Mapping[str, Any],
    frameworks: frozenset[str] | None = None,
) -> str | None:
    """The environment change that most likely explains new outputs on the same inputs and
    weights (``torch 2.13.0 -> 2.14.1 (the framework version: its kernels)``), or ``None``
    when nothing relevant to ``frameworks`` changed."""
    for keys, why in _CULPRITS:
        for key in keys:
            old, new = golden.get(key), current.get(key)
            if old != new and relevant(key, frameworks):
                shown = f"{old if old is not None else '(absent)'} -> "
                shown += f"{new if new is not None else '(absent)'}"
                return f"{key} {shown} ({why})"
    return None
