"""Passes over large arrays in fixed blocks, spread over a few threads, with results that are
the same bit for bit whatever the number of threads.

Each block is reduced on its own and the blocks' results are combined in block order; NumPy
releases the GIL in its loops over large arrays, so spans of blocks proceed side by side.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

#: Elements per block for the streaming passes: temporaries stay a few MB whatever the size.
BLOCK = 1 << 18
#: Most threads one array's passes use: they are memory-bound, and gain little beyond a few.
MAX_THREADS = 4
#: Fewest blocks per thread worth a thread (below, starting it costs more than it saves).
MIN_BLOCKS_PER_THREAD = 2

T = TypeVar("T")
U = TypeVar("U")


def blocks(flat: np.ndarray) -> Iterator[np.ndarray]:
    """Consecutive views of a 1-D array, ``BLOCK`` elements each (a fixed order: results are
    deterministic)."""
    for start in range(0, flat.size, BLOCK):
        yield flat[start : start + BLOCK]


def threads() -> int:
    """Threads for the passes over one large array: the cores this process may use (its CPU
    affinity, and a container's CPU quota), at most ``MAX_THREADS``, and no more than
    ``OMP_NUM_THREADS`` when set (the setting that NumPy's BLAS and torch honour, and that
    the README advises for ``pytest -n``)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpus()
    if quota is not None:
        cores = min(cores, quota)
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if limit.isdigit() and int(limit) > 0:
        cores = min(cores, int(limit))
    return max(1, min(cores, MAX_THREADS))


@functools.lru_cache(maxsize=1)
def cgroup_cpus(root: str = "/sys/fs/cgroup") -> int | None:
    """The CPUs a cgroup quota grants this process (cgroup v2 ``cpu.max``, or v1
    ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``), rounded up; ``None`` without a quota."""
    base = Path(root)
    try:
        entries = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        entries = []
    own = next((line[3:] for line in entries if line.startswith("0::")), "/")
    for where in dict.fromkeys([base / own.lstrip("/"), base]):  # v2: own group, or the root
        try:
            quota, period = (where / "cpu.max").read_text().split()[:2]
        except (OSError, ValueError):
            continue
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    try:
        quota_us = int((base / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((base / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return max(1, math.ceil(quota_us / period_us)) if quota_us > 0 and period_us > 0 else None


def spare_threads(size: int) -> int:
    """Threads beside the calling one worth giving to passes over ``size`` elements while the
    calling thread does other work (0: not worth a thread)."""
    return threads() - 1 if size >= MIN_BLOCKS_PER_THREAD * BLOCK else 0


def in_parallel(run: Callable[[slice], T], size: int, most: int = 0) -> list[T]:
    """``run`` on consecutive spans of whole blocks of ``size`` elements, one span per thread
    (the first on the calling thread); the results in block order.

    Callers reduce each block on its own and combine the blocks' results in that order, so the
    result is the same, bit for bit, whatever the number of threads. NumPy releases the GIL in
    its loops over large arrays, so the spans proceed side by side. ``most`` caps the threads
    (default ``threads()``).
    """
    count = -(-size // BLOCK)
    if count < 2 * MIN_BLOCKS_PER_THREAD:  # one thread whatever ``threads()`` says
        return [run(slice(0, size))]
    parts = max(1, min(most or threads(), count // MIN_BLOCKS_PER_THREAD))
    if parts == 1:
        return [run(slice(0, size))]
    step = -(-count // parts) * BLOCK
    spans = [slice(start, min(start + step, size)) for start in range(0, size, step)]
    with ThreadPoolExecutor(len(spans) - 1, thread_name_prefix="weightshape") as pool:
        later: list[Future[T] | None] = []
        for span in spans[1:]:
            try:
                later.append(pool.submit(run, span))
            except RuntimeError:  # no thread could start (a process limit): run it here
                later.append(None)
        first = run(spans[0])
        return [
            first,
            *(
                run(span) if f is None else f.result()
                for f, span in zip(later, spans[1:], strict=True)
            ),
        ]


def beside(task: Callable[[], T], here: Callable[[], U]) -> tuple[T, U]:
    """``task`` on a second thread (or after ``here``, if no thread can start) while ``here``
    runs on this one."""
    with ThreadPoolExecutor(1, thread_name_prefix="weightshape") as pool:
        try:
            future: Future[T] | None = pool.submit(task)
        except RuntimeError:  # no thread could start (a process limit)
            future = None
        mine = here()
        return (task() if future is None else future.result()), mine
