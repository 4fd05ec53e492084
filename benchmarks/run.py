"""pytest-weightshape benchmarks: one run, every measurement side by side -> BENCHMARKS.md.

    python benchmarks/run.py            # writes BENCHMARKS.md (needs: pip install -e ".[bench]")
    python benchmarks/run.py --quick    # fewer repeats, smaller sizes, prints only

Medians of repeated runs. Timings depend on the machine (and on what else it runs); the
ratios are what the targets are about.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
QUANTILES = [0.01, 0.05, 0.25, 0.50, 0.75, 0.95, 0.99]


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


# -- (a) the cost of .check beyond the forward passes ---------------------------------------


def check_overhead(sizes: list[int], repeats: int) -> list[list[str]]:
    import torch
    from torch import nn

    from pytest_weightshape.frameworks import seeded
    from pytest_weightshape.run import Observer, make_inputs
    from pytest_weightshape.spec import parse_marker

    rows = []
    for n in sizes:
        width = 1000 if n >= 1000 else n
        batch = n // width
        spec = parse_marker((), {"width": [width, width // 2]})

        def build(width: int) -> nn.Module:
            return nn.Linear(64, width)

        def forward_only(spec: Any = spec, batch: int = batch) -> None:
            # what the user pays anyway: build and run each variant
            (x,) = make_inputs((batch, 64), 0)
            for variant in spec.variants:
                with seeded(0):
                    model = build(**variant.kwargs).eval()
                with torch.no_grad():
                    model(torch.from_numpy(x))

        def full_check(spec: Any = spec, batch: int = batch) -> None:
            Observer(spec, build, (batch, 64)).observe()

        forward = median_time(forward_only, repeats)
        check = median_time(full_check, repeats)
        extra = check - forward
        rows.append(
            [
                f"{n:.0e}",
                ms(forward),
                ms(check),
                f"{ms(extra / len(spec.variants))} per variant",
                f"{extra / forward:.2f}x",
            ]
        )
    return rows


# -- (b) the same golden work with the alternatives ------------------------------------------


ALTERNATIVES = {
    "pytest-weightshape": """
        import numpy as np, pytest, time
        ARRAY = np.load({path!r})

        @pytest.mark.shape_variant(scale=[1.0, 0.5])
        def test_it(shape_variant):
            start = time.perf_counter()
            shape_variant.check(lambda scale: (lambda x: x * np.float32(scale)), inputs=ARRAY)
            print("ELAPSED", time.perf_counter() - start)
        """,
    "pytest-regressions ndarrays_regression": """
        import numpy as np, time
        ARRAY = np.load({path!r})

        def test_it(ndarrays_regression):
            start = time.perf_counter()
            ndarrays_regression.check({{"base": ARRAY, "variant": ARRAY * np.float32(0.5)}})
            print("ELAPSED", time.perf_counter() - start)
        """,
    "syrupy JSON of tolist()": """
        import numpy as np, time
        from syrupy.extensions.json import JSONSnapshotExtension
        ARRAY = np.load({path!r})

        def test_it(snapshot):
            start = time.perf_counter()
            data = {{"base": ARRAY.tolist(), "variant": (ARRAY * np.float32(0.5)).tolist()}}
            assert snapshot.use_extension(JSONSnapshotExtension) == data
            print("ELAPSED", time.perf_counter() - start)
        """,
}


def _golden_bytes(folder: Path) -> int:
    skip = {"test_it.py", "array.npy", "pytest.ini"}
    return sum(
        p.stat().st_size
        for p in folder.rglob("*")
        if p.is_file() and p.name not in skip and ".pytest_cache" not in p.parts
    )


def alternatives(n: int, repeats: int) -> list[list[str]]:
    rows = []
    array = np.random.default_rng(0).standard_normal(n, dtype=np.float32).reshape(-1, 1000)
    for name, source in ALTERNATIVES.items():
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            np.save(folder / "array.npy", array)
            (folder / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
            test = textwrap.dedent(source.format(path=str(folder / "array.npy")))
            (folder / "test_it.py").write_text(test)
            base = [sys.executable, "-m", "pytest", "-q", "-s", "test_it.py"]
            record = subprocess.run(
                [*base, "--snapshot-update", "--force-regen"],
                cwd=folder,
                capture_output=True,
                text=True,
                check=False,
            )
            if "ELAPSED" not in record.stdout:  # pytest-regressions fails the recording run
                pass
            times = []
            for _ in range(repeats):
                result = subprocess.run(
                    base, cwd=folder, capture_output=True, text=True, check=False
                )
                line = next((x for x in result.stdout.splitlines() if "ELAPSED" in x), None)
                if line is None or result.returncode != 0:
                    raise RuntimeError(f"{name} failed:\n{result.stdout[-2000:]}")
                times.append(float(line.split()[-1]))
            rows.append([name, ms(statistics.median(times)), f"{_golden_bytes(folder):,} B"])
    return rows


# -- (c) statistics of one large output -------------------------------------------------------


def statistics_cost(n: int, repeats: int) -> tuple[list[list[str]], dict[str, float]]:
    from pytest_weightshape.stats import summarize

    x = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    floor = median_time(lambda: x.sum(), repeats)
    quantile = median_time(lambda: np.quantile(x, QUANTILES), repeats)
    ours = median_time(lambda: summarize(x), repeats)
    rows = [
        ["x.sum() (one pass, the memory-bandwidth floor)", ms(floor), f"{floor / quantile:.0%}"],
        ["np.quantile, 7 quantiles", ms(quantile), "100%"],
        ["pytest-weightshape: all statistics, exact quantiles", ms(ours), f"{ours / quantile:.0%}"],
    ]
    return rows, {"ours": ours, "quantile": quantile}


def large_memory(n: int) -> list[str]:
    from pytest_weightshape.stats import summarize

    x = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    tracemalloc.start()
    start = time.perf_counter()
    summarize(x)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return [f"{n:.0e}", ms(elapsed), f"{peak / 2**20:.1f} MiB", f"{peak / x.nbytes:.3f}x"]


# -- (d) start-up and collection, (e) xdist ---------------------------------------------------


def _suite(folder: Path, tests: int, body: str) -> None:
    (folder / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (folder / "test_suite.py").write_text(
        "import numpy as np\nimport pytest\n\n" + "".join(body.format(i=i) for i in range(tests))
    )


def _session(folder: Path, args: list[str], repeats: int) -> float:
    def once() -> None:
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", *args],
            cwd=folder,
            capture_output=True,
            check=False,
        )

    return median_time(once, repeats)


def startup(repeats: int) -> list[list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _suite(folder, 300, "def test_{i}():\n    assert {i} >= 0\n\n")
        without = _session(folder, ["-p", "no:weightshape"], repeats)
        with_plugin = _session(folder, [], repeats)
        collect_without = _session(folder, ["--co", "-p", "no:weightshape"], repeats)
        collect_with = _session(folder, ["--co"], repeats)
    return [
        ["run 300 plain tests", ms(without), ms(with_plugin), f"{with_plugin / without - 1:+.1%}"],
        [
            "collect only",
            ms(collect_without),
            ms(collect_with),
            f"{collect_with / collect_without - 1:+.1%}",
        ],
    ]


CHECK_TEST = """
@pytest.mark.shape_variant(units=[10, 5])
def test_{i}(shape_variant):
    rng = np.random.default_rng({i})
    def build(units):
        kernel = np.random.standard_normal((4096, units)).astype(np.float32)
        return lambda x: np.tanh(x @ kernel)
    shape_variant.check(build, inputs=(512, 4096))

"""


def xdist(repeats: int) -> list[list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _suite(folder, 100, CHECK_TEST)
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "--snapshot-update"],
            cwd=folder,
            capture_output=True,
            check=True,
        )
        serial = _session(folder, [], repeats)
        parallel = _session(folder, ["-n", "2"], repeats)
    return [["100 checks", ms(serial), ms(parallel), f"{serial / parallel:.2f}x"]]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    sizes = [1_000, 1_000_000] if args.quick else [1_000, 1_000_000, 10_000_000]
    big = 10_000_000 if args.quick else 100_000_000
    sections = []
    from pytest_weightshape.environment import cpu_name

    cpu = cpu_name()
    import torch

    sections.append(
        f"Machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, torch {torch.__version__}. Medians of {repeats} runs."
    )
    sections.append(
        "## (a) `.check` beyond the forward passes\n\nA `Linear(64, w)` base and a half-width "
        "variant; forward = building and running both (what a test pays anyway).\n\n"
        + table(
            ["output elements", "forward", "check", "extra", "extra / forward"],
            check_overhead(sizes, repeats),
        )
    )
    sections.append(
        "## (b) The same golden work with the alternatives (1e6 float32, base and variant)\n\n"
        + table(
            ["approach", "time in the test", "golden on disk"], alternatives(1_000_000, repeats)
        )
    )
    rows, _ = statistics_cost(10_000_000, repeats)
    sections.append(
        "## (c) Statistics of 1e7 float32 values\n\n"
        + table(["what", "time", "vs np.quantile"], rows)
        + "\n\nPeak extra memory (tracemalloc) for one large output:\n\n"
        + table(["elements", "time", "peak extra", "of the output"], [large_memory(big)])
    )
    sections.append(
        "## (d) Start-up and collection of a 300-test plain suite\n\n"
        + table(["", "-p no:weightshape", "with the plugin", "extra"], startup(repeats))
    )
    sections.append(
        "## (e) 100 checks, serial vs `-n 2`\n\n"
        + table(["", "serial", "-n 2", "speed-up"], xdist(max(3, repeats // 2)))
    )
    text = (
        "# Benchmarks\n\n`python benchmarks/run.py` wrote this file.\n\n"
        + "\n\n".join(sections)
        + "\n"
    )
    print(text)
    if not args.quick:
        (ROOT / "BENCHMARKS.md").write_text(text)


if __name__ == "__main__":
    main()
