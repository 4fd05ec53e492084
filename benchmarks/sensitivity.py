"""What the default tolerance detects: the seed's three torch systems under weight changes.

    python benchmarks/sensitivity.py

For each system (examples/test_torch_examples.py: Conv2d 3 vs 5, LSTM 10 vs 20, Linear+ReLU
Xavier vs He) a golden is observed, then observed again with every weight changed; each cell
is the largest drift as a fraction of what the default policy allows (> 1 fails), with
pass/fail. Rows: every weight scaled by (1 + r); every weight given relative Gaussian noise
(a float32-rounding-sized change, which must pass); one vs two torch threads (must pass).
Also prints each check's stated sensitivity (noise floor, smallest failing weight change).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_weightshape.compare import compare
from pytest_weightshape.run import Observer
from pytest_weightshape.sensitivity import under
from pytest_weightshape.spec import parse_marker
from pytest_weightshape.tolerance import Policy


def _linear_relu(init):
    layer = nn.Linear(784, 128)
    init(layer.weight)
    return nn.Sequential(layer, nn.ReLU())


SYSTEMS = {
    "conv2d": (
        {"kernel_size": [3, 5], "padding": [1, 2]},
        lambda kernel_size, padding: nn.Conv2d(1, 32, kernel_size, padding=padding),
        (1, 1, 28, 28),
    ),
    "lstm": (
        {"hidden_size": [10, 20]},
        lambda hidden_size: nn.LSTM(10, hidden_size, batch_first=True),
        (1, 10, 10),
    ),
    "linear + init": (
        {"init": [nn.init.xavier_uniform_, nn.init.kaiming_uniform_]},
        _linear_relu,
        (64, 784),
    ),
}


def perturbed(build, relative, noise):
    def wrapped(**kwargs):
        model = build(**kwargs)
        generator = torch.Generator().manual_seed(1234)
        with torch.no_grad():
            for p in model.parameters():
                if noise:
                    p.add_(p * relative * torch.randn(p.shape, generator=generator))
                else:
                    p.mul_(1 + relative)
        return model

    return wrapped


def observe(build, inputs, marker, threads=None, sensitivity=False):
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        spec = parse_marker((), marker)
        return Observer(spec, build, inputs, sensitivity=sensitivity).observe()
    finally:
        torch.set_num_threads(before)


def cell(golden, current):
    verdict = compare(golden, current, Policy())
    # only value drift counts: changed weights also change fingerprints, which never decide
    return f"{verdict.worst:.3g} ({'pass' if verdict.ok else 'FAIL'})"


ROWS = [
    ("x (1 + 1e-6)", dict(relative=1e-6, noise=False)),
    ("x (1 + 3e-6)", dict(relative=3e-6, noise=False)),
    ("x (1 + 1e-5)", dict(relative=1e-5, noise=False)),
    ("x (1 + 1e-4)", dict(relative=1e-4, noise=False)),
    ("1e-7 relative noise", dict(relative=1e-7, noise=True)),
    ("1e-6 relative noise", dict(relative=1e-6, noise=True)),
]


def main() -> None:
    goldens = {
        name: observe(build, inputs, marker, threads=1, sensitivity=True)
        for name, (marker, build, inputs) in SYSTEMS.items()
    }
    print("| change of every weight | " + " | ".join(SYSTEMS) + " |")
    print("|---|" + "---|" * len(SYSTEMS))
    for label, how in ROWS:
        cells = [
            cell(goldens[name], observe(perturbed(build, **how), inputs, marker, threads=1))
            for name, (marker, build, inputs) in SYSTEMS.items()
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    cells = [
        cell(goldens[name], observe(build, inputs, marker, threads=2))
        for name, (marker, build, inputs) in SYSTEMS.items()
    ]
    print("| (none) 1 vs 2 threads | " + " | ".join(cells) + " |")
    stated = [under(goldens[name], Policy()) for name in SYSTEMS]
    cells = [f"{s.floor:.2g} / {s.detects:.2g}" if s else "?" for s in stated]
    print("| stated by the golden: noise floor / fails from | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
