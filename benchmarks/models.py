"""What a check costs beside the forward passes of real-sized models (issue 18, parts 1 and 2).

    PYTHONPATH=. python benchmarks/models.py           # every row; prints the Markdown section
    PYTHONPATH=. python benchmarks/models.py wide      # only the rows named (wide, bert, resnet50)
    PYTHONPATH=. python benchmarks/models.py --clean wide   # forwards and the passing check only
    PYTHONPATH=. python benchmarks/models.py --json out.json   # also writes the figures as JSON
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/models.py   # one thread: CPU time = work

Rows: ``Linear(1000, 10000)`` vs ``Linear(1000, 5000)`` on a (1000, 1000) input (1.5e7 weights
and 1.5e7 output values), a BERT-base-sized model built from ``transformers.BertConfig()``'s
defaults (110M parameters, nothing downloaded) and a ResNet-50 built by hand (25.6M parameters,
no torchvision). For each: the forward passes alone (draw the inputs, build and run every
variant: what a test pays anyway), a passing run's observation (``Observer.observe()``: all a
``.check`` does but the golden comparison) given its golden (``recorded=``: the outputs are the
recorded ones, byte for byte, so their sealed statistics and divergence are taken from it) and
given it with no output's seal (as when the outputs moved within tolerance: every output
measured, the weights' mean and std taken where their bytes are the recorded ones), and the
observation with every layer recorded (``layers=True``, what ``--snapshot-update`` adds for
localisation).

Runs alternate (forward, checks, check with layers, then the next round in another order), for
``REPEATS`` rounds (default 5). Each path's time is its median over the rounds, and its extra
is paired: the median over the rounds of (the path - the forward passes of the same round),
so a slow minute of a shared machine slows both sides of each difference. (The best of each
path, the figure before, read the extra of a check whose forward passes vary by 30% from one
run to the next as a difference of two lucky draws: 0.18x to 0.38x on the same code.) Both
wall time and CPU time (user + system of this process, every thread) are given; CPU time
does not count waiting for a core that other work holds.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from torch import nn

from pytest_weightshape import golden, integers
from pytest_weightshape.blocks import threads
from pytest_weightshape.frameworks import seeded
from pytest_weightshape.inputs import draw_inputs
from pytest_weightshape.run import Observer
from pytest_weightshape.spec import parse_marker

REPEATS = int(os.environ.get("REPEATS", "5"))


def bert_base(intermediate_size: int) -> nn.Module:
    """BERT-base (``BertConfig()``'s defaults: 12 layers, hidden 768, 12 heads, vocabulary
    30522), with the feed-forward width as the variant's axis."""
    import transformers

    return transformers.BertModel(transformers.BertConfig(intermediate_size=intermediate_size))


def resnet50(classes: int) -> nn.Module:
    from layers import resnet50 as build

    return build(classes)


def wide(width: int) -> nn.Module:
    return nn.Linear(1000, width)


#: (key, what the row shows, marker axes, builder, inputs)
CASES: list[tuple[str, str, dict[str, list[Any]], Callable[..., nn.Module], Any]] = [
    (
        "wide",
        "Linear(1000, 10000) vs Linear(1000, 5000), input (1000, 1000)",
        {"width": [10000, 5000]},
        wide,
        (1000, 1000),
    ),
    (
        "bert",
        "BERT-base (BertConfig defaults, 110M parameters), intermediate_size 3072 vs 1536, "
        "input_ids (1, 128)",
        {"intermediate_size": [3072, 1536]},
        bert_base,
        {"input_ids": integers((1, 128), high=30522)},
    ),
    (
        "resnet50",
        "ResNet-50 (25.6M parameters), classes 1000 vs 10, input (1, 3, 224, 224)",
        {"classes": [1000, 10]},
        resnet50,
        (1, 3, 224, 224),
    ),
]


def forward_only(marker: dict[str, list[Any]], build: Callable[..., Any], inputs: Any) -> None:
    """What a test pays anyway: draw the inputs, build and run every variant."""
    spec = parse_marker((), marker)
    drawn = draw_inputs(inputs, spec.seed)
    args = [torch.from_numpy(i.value) for i in drawn if i.keyword is None]
    keywords = {i.keyword: torch.from_numpy(i.value) for i in drawn if i.keyword is not None}
    for variant in spec.variants:
        with seeded(spec.seed):
            model = build(**variant.kwargs).eval()
        with seeded(spec.seed), torch.no_grad():
            model(*args, **keywords)
        del model


def observe(
    marker: dict[str, list[Any]],
    build: Callable[..., Any],
    inputs: Any,
    layers: bool,
    recorded: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec = parse_marker((), marker)
    return Observer(spec, build, inputs, layers=layers, recorded=recorded).observe()


def as_golden(document: dict[str, Any]) -> dict[str, Any]:
    """The document as a later run reads it from its golden file."""
    return golden.parse_file(golden.render_file("t", {"c": document}), "t.json")[1]["c"]


def unsealed(document: dict[str, Any]) -> dict[str, Any]:
    """The golden with no output's seal: as a run whose outputs moved reads it (every output
    measured; the weights, as recorded, lend their mean and std)."""
    out = json.loads(json.dumps(document))
    for variant in out["variants"].values():
        for record in variant["outputs"].values():
            record.pop("digest", None)
    return out


def measure(key: str, clean: bool = False) -> dict[str, Any]:
    """Each path's median wall and CPU time, and its paired extra (see the module's
    docstring) as a ratio to the forward passes' median (``extra``, ``extra_cpu``).
    ``clean``: only the forwards and the passing check with its golden (no CKA anywhere in
    the process: BLAS threads that spin after one would slow the forward that follows it and
    flatter the ratio)."""
    _, text, marker, build, inputs = next(c for c in CASES if c[0] == key)
    recorded = as_golden(observe(marker, build, inputs, False))
    runs: dict[str, Callable[[], object]] = {
        "forward": lambda: forward_only(marker, build, inputs),
        "reused": lambda: observe(marker, build, inputs, False, recorded),
    }
    if not clean:
        moved = unsealed(recorded)
        runs["check"] = lambda: observe(marker, build, inputs, False, moved)
        runs["layers"] = lambda: observe(marker, build, inputs, True)
    for run in runs.values():  # warm up every path
        run()
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for i in range(REPEATS):
        turn = i % len(names)
        for name in names[turn:] + names[:turn]:  # each path takes each place in turn
            start, start_cpu = time.perf_counter(), time.process_time()
            runs[name]()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    result: dict[str, Any] = {
        "text": text,
        "wall": {k: median(v) for k, v in wall.items()},
        "cpu": {k: median(v) for k, v in cpu.items()},
        "extra": paired(wall),
        "extra_cpu": paired(cpu),
    }
    if not clean:
        document = observe(marker, build, inputs, True)
        result["layers"] = len(
            next(iter(document["variants"].values()))["layers"].get("entries", {})
        )
    return result


#: Each path's extra and what it is counted beyond: the ``--json`` figures' ``extra`` (wall time).
EXTRAS = (("reused", "forward"), ("check", "forward"), ("layers", "check"))


def paired(times: dict[str, list[float]]) -> dict[str, float]:
    """Each path's extra beyond what it is counted beyond (``EXTRAS``), as a ratio to the
    forward passes: the median of the rounds' differences over the forwards' median."""
    forward = median(times["forward"])
    return {
        path: median([a - b for a, b in zip(times[path], times[base], strict=True)]) / forward
        for path, base in EXTRAS
        if path in times
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def main() -> None:
    torch.set_num_threads(int(os.environ.get("THREADS", torch.get_num_threads())))
    args = sys.argv[1:]
    clean = "--clean" in args
    dump = Path(args[args.index("--json") + 1]) if "--json" in args else None
    if dump is not None:
        del args[args.index("--json") : args.index("--json") + 2]
    keys = [a for a in args if a != "--clean"] or [c[0] for c in CASES]
    results: dict[str, Any] = {}
    if clean:
        for key in keys:
            r = results[key] = measure(key, clean=True)
            w, c = r["wall"], r["cpu"]
            print(
                f"{r['text']}: forward passes {ms(w['forward'])} ({ms(c['forward'])} CPU), "
                f"passing check, outputs unchanged {ms(w['reused'])} ({ms(c['reused'])} CPU): "
                f"extra / forward {r['extra']['reused']:.2f}x "
                f"({r['extra_cpu']['reused']:.2f}x of CPU time), no CKA in the process"
            )
    else:
        table(keys, results)
    if dump is not None:
        dump.write_text(json.dumps(results))


def table(keys: list[str], results: dict[str, Any]) -> None:
    """Every row of ``keys`` measured into ``results`` and printed as the Markdown section."""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    omp = (
        f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} "
        if os.environ.get("OMP_NUM_THREADS")
        else ""
    )
    print("## Real-sized models (issue 18)\n")
    print(
        f"`{omp}PYTHONPATH=. REPEATS={REPEATS} python benchmarks/models.py` wrote this section. "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads; the statistics' passes use {threads()}); load "
        f"average {load} at the start. Medians of {REPEATS} alternating rounds, extras paired "
        "within a round (see the script's docstring); wall time, and CPU time (every thread of "
        "the process) in brackets.\n"
    )
    print(
        "A passing check whose outputs are the recorded ones, byte for byte (the usual case: same "
        "machine, same versions), takes their statistics and divergence from the golden, which "
        "sealed them to those bytes; one whose outputs moved, however little, measures them all "
        "(as does any run without a golden).\n"
    )
    print(
        "| model | forward passes | passing check, outputs unchanged | extra / forward "
        "| passing check, outputs moved | extra / forward | with layer records "
        "| layer records' extra / forward | layer outputs / variant |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for key in keys:
        r = results[key] = measure(key)
        w, c, x, xc = r["wall"], r["cpu"], r["extra"], r["extra_cpu"]
        print(
            f"| {r['text']} | {ms(w['forward'])} ({ms(c['forward'])}) "
            f"| {ms(w['reused'])} ({ms(c['reused'])}) "
            f"| {x['reused']:.2f}x ({xc['reused']:.2f}x) "
            f"| {ms(w['check'])} ({ms(c['check'])}) "
            f"| {x['check']:.2f}x ({xc['check']:.2f}x) "
            f"| {ms(w['layers'])} ({ms(c['layers'])}) "
            f"| {x['layers']:.2f}x ({xc['layers']:.2f}x) "
            f"| {r['layers']} |",
            flush=True,
        )
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\nLoad average at the end: {load}. Goals: extra / forward <= 0.25x, layer records' ")
    print("extra / forward <= 0.5x.")


if __name__ == "__main__":
    main()
