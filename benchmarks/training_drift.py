"""How far benign changes move a training check, as a fraction of its default tolerance.

Observes a few training checks (``training_run.Trainer``: MLP with dropout and SGD momentum,
CNN with BatchNorm and Adam, the seed's LSTM with Adam, a classifier with cross-entropy) in
fresh processes under each benign change and compares each with the reference observation
(torch's default threads, this interpreter): the largest ``|difference| / allowed`` over every
compared value (``Verdict.worst``) is the drift; below 1 stays green.

    PYTHONPATH=. python benchmarks/training_drift.py [--other-python /path/to/python ...]

Changes measured: ``threads=1`` (``torch.set_num_threads(1)``), ``fresh process`` (what an
xdist worker is: a new interpreter, same settings), ``oneDNN off``
(``torch.backends.mkldnn.enabled = False``) and, per ``--other-python``, that interpreter's
torch (e.g. a venv with torch 2.14.1).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def observe(threads: int | None, mkldnn: bool) -> dict[str, object]:
    """Every training check's document, observed in this process."""
    import torch
    from torch import nn

    from pytest_weightshape import integers
    from pytest_weightshape.spec import parse_marker
    from pytest_weightshape.training_run import Trainer

    if threads is not None:
        torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mkldnn

    def mlp(hidden: int) -> nn.Module:
        return nn.Sequential(
            nn.Linear(32, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, 4)
        )

    def cnn(channels: int, bias: bool = False) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1, bias=bias),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, 10),
        )

    def lstm(hidden: int) -> nn.Module:
        return nn.LSTM(10, hidden, batch_first=True)

    def sequence_loss(output: object, target: torch.Tensor) -> torch.Tensor:
        sequence, _ = output  # type: ignore[misc]
        return ((sequence.mean(dim=-1) - target) ** 2).mean()

    def momentum(params: object) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-4)  # type: ignore[arg-type]

    checks = {
        "mlp dropout sgd-momentum": (
            {"hidden": [64, 128]}, mlp, (16, 32), (16, 4), "mse", momentum, 5
        ),
        "cnn batchnorm adam": (
            {"channels": [8, 16]}, cnn, (4, 3, 16, 16), integers((4,), high=10),
            "cross_entropy", "adam", 3,
        ),
        # a conv bias before BatchNorm: its gradient is rounding noise, which Adam turns into
        # full-size updates that reach the eval outputs through BatchNorm's running mean
        "cnn bias+batchnorm adam": (
            {"channels": [8, 16]}, lambda channels: cnn(channels, bias=True), (4, 3, 16, 16),
            integers((4,), high=10), "cross_entropy", "adam", 3,
        ),
        "lstm adam": ({"hidden": [10, 20]}, lstm, (1, 10, 10), (1, 10), sequence_loss, "adam", 3),
    }  # fmt: skip
    out = {}
    for name, (axes, build, inputs, targets, loss, optimizer, steps) in checks.items():
        spec = parse_marker((), axes)
        trainer = Trainer(spec, build, inputs, targets, loss=loss, optimizer=optimizer, steps=steps)
        out[name] = trainer.observe()
    return out


def _run(python: str, *args: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as where:
        path = Path(where) / "observed.json"
        subprocess.run(
            [python, __file__, "--observe", str(path), *args],
            check=True,
            env=None,
        )
        return json.loads(path.read_text())  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observe", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-mkldnn", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--other-python", action="append", default=[])
    args = parser.parse_args()
    if args.observe:
        observed = observe(args.threads, not args.no_mkldnn)
        Path(args.observe).write_text(json.dumps(observed))
        return
    from pytest_weightshape.compare import compare
    from pytest_weightshape.tolerance import Policy

    reference = _run(sys.executable)
    changes = {
        "threads=1": _run(sys.executable, "--threads", "1"),
        "fresh process (-n 2 worker)": _run(sys.executable),
        "oneDNN off": _run(sys.executable, "--no-mkldnn"),
    }
    for python in args.other_python:
        changes[f"torch of {Path(python).parent.parent.name}"] = _run(python)
    print(f"{'change':30} {'check':28} {'largest drift / tolerance':>26}  moved")
    for change, observed in changes.items():
        worst_all = 0.0
        for name, document in reference.items():
            verdict = compare(document, observed[name], Policy())  # type: ignore[arg-type]
            worst_all = max(worst_all, verdict.worst)
            where = ""
            if verdict.rows:
                top = max(
                    (r for r in verdict.rows if r.allowed), key=lambda r: r.excess, default=None
                )
                if top is not None and top.excess > 0:
                    where = f"{top.variant} {top.where} {top.stat}"
            print(
                f"{change:30} {name:28} {verdict.worst:26.3g}  {len(verdict.differences)} {where}"
            )
        print(f"{change:30} {'(largest)':28} {worst_all:26.3g}")


if __name__ == "__main__":
    main()
