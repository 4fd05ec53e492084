"""What recording layers costs (issue 15): time and golden bytes.

    PYTHONPATH=. REPEATS=7 PROCESSES=5 python benchmarks/layers.py   # prints the Markdown section
    ONLY=CNN ...                                                       # only the 50-layer CNN

(1) Recording time with vs without layer observation (``Observer(..., layers=True)``, what
    ``--snapshot-update`` runs), on the examples and on a 50-layer CNN. Each check is measured
    in ``PROCESSES`` fresh processes, each running ``REPEATS`` rounds that alternate the arms
    (without layers, with layers, a bare observation); the table gives the median CPU time of
    every run of an arm (torch on one thread, so CPU time is the work done), the range of the
    per-process ratios, and the median minor page faults per recording. Why fresh processes:
    a forward's cost depends on glibc's heap (its dynamic mmap/trim thresholds follow the
    process's allocation history; a 1 MB activation may get fresh pages, 2-3 us per 4 KB page,
    at every forward or never), so the best of N runs in one process measures allocator luck.
    A passing check runs ``Observer(..., layers=False)``, the code path without hooks, so it
    costs nothing extra by construction (``tests/sessions/test_layers.py`` asserts no hook is
    registered).
(2) Golden bytes per recorded layer output on a ResNet-50 built by hand (bottleneck blocks
    [3, 4, 6, 3], no torchvision), and the golden's size with and without layers.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import torch
from torch import nn

from pytest_weightshape import golden
from pytest_weightshape.run import Observer
from pytest_weightshape.spec import parse_marker

REPEATS = int(os.environ.get("REPEATS", "7"))
PROCESSES = int(os.environ.get("PROCESSES", "5"))
ONLY = os.environ.get("ONLY", "")  # measure only the checks whose name contains this


# -- models ---------------------------------------------------------------------------------


def cnn50(width: int) -> nn.Module:
    """50 convolutions (Conv2d + BatchNorm + ReLU each: 150 leaf layers), then a classifier."""
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1)]
    for i in range(50):
        if i:
            layers.append(nn.Conv2d(width, width, 3, padding=1))
        layers += [nn.BatchNorm2d(width), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)]
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, stride: int) -> None:
        super().__init__()
        cout = mid * 4
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(out + skip)


def resnet50(classes: int = 1000) -> nn.Module:
    """ResNet-50 (25.6M parameters at 1000 classes), as torchvision builds it."""
    stages, cin = [], 64
    for mid, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        layer = []
        for b in range(blocks):
            layer.append(Bottleneck(cin, mid, stride if b == 0 else 1))
            cin = mid * 4
        stages.append(nn.Sequential(*layer))
    return nn.Sequential(
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
        *stages,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2048, classes),
    )


def examples() -> list[tuple[str, dict[str, Any], Callable[..., Any], Any]]:
    """The examples' checks: (name, marker, builder, inputs)."""

    def linear_relu(init: Any) -> nn.Module:
        layer = nn.Linear(784, 128)
        init(layer.weight)
        return nn.Sequential(layer, nn.ReLU())

    def dense(units: int) -> Any:
        import keras  # imported by the Keras checks' processes only

        return keras.Sequential([keras.Input((784,)), keras.layers.Dense(units, "relu")])

    def lstm(units: int) -> Any:
        import keras

        return keras.Sequential([keras.Input((12, 8)), keras.layers.LSTM(units)])

    return [
        (
            "torch conv2d_kernel_size",
            {"kernel_size": [3, 5], "padding": [1, 2]},
            lambda kernel_size, padding: nn.Conv2d(1, 32, kernel_size, padding=padding),
            (1, 1, 28, 28),
        ),
        (
            "torch lstm_hidden_size",
            {"hidden_size": [10, 20]},
            lambda hidden_size: nn.LSTM(10, hidden_size, batch_first=True),
            (1, 10, 10),
        ),
        (
            "torch linear_relu_init",
            {"init": [nn.init.xavier_uniform_, nn.init.kaiming_uniform_]},
            linear_relu,
            (64, 784),
        ),
        ("keras dense_units", {"units": [10, 5]}, dense, (1, 784)),
        ("keras lstm_units", {"units": [10, 20]}, lstm, (4, 12, 8)),
        ("torch 50-layer CNN (150 leaf layers)", {"width": [32, 16]}, cnn50, (8, 3, 32, 32)),
    ]


# -- measuring ------------------------------------------------------------------------------


def record(
    marker: dict[str, Any],
    build: Callable[..., Any],
    inputs: Any,
    layers: bool,
    sensitivity: bool = True,
) -> Any:
    """One observation as ``--snapshot-update`` makes it (a recording measures the golden's
    sensitivity too); ``sensitivity=False`` is the bare observation of a passing run."""
    marker_spec = parse_marker((), marker)
    return Observer(marker_spec, build, inputs, layers=layers, sensitivity=sensitivity).observe()


def timed(
    marker: dict[str, Any], build: Callable[..., Any], inputs: Any
) -> dict[str, list[tuple[float, int]]]:
    """(CPU seconds, minor page faults) of every run of a recording without layers, with
    layers, and of a bare observation (no layers, no sensitivity), ``REPEATS`` rounds
    alternating the three after one warm-up of each."""
    arms = {"without": (False, True), "with": (True, True), "bare": (False, False)}
    runs: dict[str, list[tuple[float, int]]] = {arm: [] for arm in arms}
    for layers, sensitivity in arms.values():
        record(marker, build, inputs, layers, sensitivity)
    for _ in range(REPEATS):
        for arm, (layers, sensitivity) in arms.items():
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.process_time()
            record(marker, build, inputs, layers, sensitivity)
            elapsed = time.process_time() - start
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            runs[arm].append((elapsed, faults))
    return runs


def measure(index: int) -> dict[str, Any]:
    """One fresh process's measurements of example ``index`` (``--measure INDEX``)."""
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    _, marker, build, inputs = examples()[index]
    runs = timed(marker, build, inputs)
    size, bare, entries = golden_bytes(record(marker, build, inputs, True))
    return {"runs": runs, "size": size, "bare": bare, "entries": entries}


def in_fresh_processes(index: int) -> list[dict[str, Any]]:
    """``measure(index)`` in ``PROCESSES`` fresh processes, one after the other."""
    found = []
    for _ in range(PROCESSES):
        done = subprocess.run(
            [sys.executable, __file__, "--measure", str(index)],
            check=True,
            capture_output=True,
            text=True,
        )
        found.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return found


def golden_bytes(document: dict[str, Any]) -> tuple[int, int, int]:
    """(golden bytes with layers, without them, layer outputs recorded)."""
    text = golden.render_file("test_x", {"default": document})
    bare = {
        **document,
        "variants": {
            name: {k: v for k, v in data.items() if k != "layers"}
            for name, data in document["variants"].items()
        },
    }
    entries = sum(len(v["layers"].get("entries", {})) for v in document["variants"].values())
    return (
        len(text.encode()),
        len(golden.render_file("test_x", {"default": bare}).encode()),
        entries,
    )


def main() -> None:
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    only = f" ONLY={ONLY}" if ONLY else ""
    rows = []
    for index, (name, marker, _, _) in enumerate(examples()):
        if ONLY not in name:
            continue
        found = in_fresh_processes(index)
        per_variant = found[0]["entries"] // len(next(iter(marker.values())))
        rows.append((name, per_variant, found))
    print("## Localisation: recording layers (issue 15)\n")
    print(
        f"`PYTHONPATH=. REPEATS={REPEATS} PROCESSES={PROCESSES}{only} python "
        "benchmarks/layers.py` "
        f"wrote this section. Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{sys.version.split()[0]}, torch {torch.__version__} "
        f"({os.environ.get('THREADS', '1')} thread); load average {load} at the start, "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end. Each check in "
        f"{PROCESSES} fresh processes of {REPEATS} rounds alternating the arms: CPU time, "
        "the median of every run.\n"
    )
    print(
        "Recording (`--snapshot-update`, which also measures the golden's sensitivity: two more "
        "forwards per variant) with vs without layer observation; goal <= 1.5x. The ratio's "
        "range is that of the processes' own medians; page faults are minor faults per "
        "recording (median). The last column sets the layers' cost against a bare observation "
        "(a passing run's, no sensitivity).\n"
    )
    print(
        "| check | layer outputs / variant | recording without layers | with layers | ratio "
        "| ratio over processes | page faults without / with | bytes / layer output "
        "| bare observation | (with layers - without) / bare |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, per_variant, found in rows:
        med = {
            arm: statistics.median(t for f in found for t, _ in f["runs"][arm])
            for arm in ("without", "with", "bare")
        }
        faults = {
            arm: statistics.median(n for f in found for _, n in f["runs"][arm])
            for arm in ("without", "with")
        }
        ratios = [
            statistics.median(t for t, _ in f["runs"]["with"])
            / statistics.median(t for t, _ in f["runs"]["without"])
            for f in found
        ]
        f0 = found[0]
        print(
            f"| {name} | {per_variant} | {med['without'] * 1e3:.1f} ms "
            f"| {med['with'] * 1e3:.1f} ms | {med['with'] / med['without']:.2f}x "
            f"| {min(ratios):.2f}x-{max(ratios):.2f}x "
            f"| {faults['without']:,.0f} / {faults['with']:,.0f} "
            f"| {(f0['size'] - f0['bare']) / f0['entries']:.0f} | {med['bare'] * 1e3:.1f} ms "
            f"| {(med['with'] - med['without']) / med['bare']:.2f}x |"
        )
    print()
    doc = record({"classes": [1000, 10]}, resnet50, (1, 3, 224, 224), True)
    size, bare, entries = golden_bytes(doc)
    params = doc["variants"]["classes=1000"]["parameter_count"]
    print(
        f"ResNet-50 built by hand ({params / 1e6:.1f}M parameters), two variants "
        f"(classes=1000, 10), input (1, 3, 224, 224): {entries // 2} layer outputs per variant; "
        f"golden {size:,} B with layers, {bare:,} B without: "
        f"{(size - bare) / entries:.0f} B per layer output (goal ~200).\n"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        print(json.dumps(measure(int(sys.argv[2]))))
    else:
        main()
