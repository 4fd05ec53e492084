"""The environment a golden was recorded in: recorded to explain a failure, never compared.

Versions come from package metadata, so recording them imports no framework; live settings
(threads, CUDA) are read only from frameworks the test has already imported.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
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


def collect(device: str) -> dict[str, Any]:
    """The environment block of a golden for a check that ran on ``device``."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": f"{platform.system()}-{platform.machine()}",
        "cpu": cpu_name(),
    }
    # versions of numpy and of the frameworks this process imported (installed-but-unused
    # ones would only add noise to environment diffs)
    env.update(
        {
            k: v
            for k, v in framework_versions().items()
            if v is not None and (k == "numpy" or k in sys.modules)
        }
    )
    torch = sys.modules.get("torch")
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
    if "tensorflow" in sys.modules:
        from tensorflow.python.framework import config as tf_config

        env["tensorflow_gpus"] = len(tf_config.list_physical_devices("GPU"))
        env["tensorflow_deterministic"] = bool(tf_config.is_op_determinism_enabled())
    if "keras" in sys.modules:
        env["keras_backend"] = sys.modules["keras"].backend.backend()
    if "tensorflow" in sys.modules:
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


def differences(golden: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Readable changes between two environment blocks: ``torch 2.13.0 -> 2.14.1``."""
    out = []
    for key in dict.fromkeys([*golden, *current]):
        old, new = golden.get(key), current.get(key)
        if old != new:
            out.append(
                f"{key} {old if old is not None else '(absent)'} -> "
                f"{new if new is not None else '(absent)'}"
            )
    return out
