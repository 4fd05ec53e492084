import os
import sys
from pathlib import Path

import pytest

from .sessions.helpers import INNER_ADDOPTS, INNER_INI, INNER_UNSET, quick_xla_flags

# This suite writes bytecode even where PYTHONDONTWRITEBYTECODE is set (many container images
# set it; the project's development machines do). The test command installs the frameworks
# without compiling them (`pip install --no-compile`, a minute saved), so each module is compiled
# on its first import; with the variable set, the xdist workers and every subprocess started
# with their environment wrote nothing they compiled, and compiled it again in each process
# (`import tensorflow` 23 s of CPU from source against 8 s from bytecode, torch 9 s against 4 s;
# inner sessions already dropped the variable). Dropped here, in the process that starts the
# workers, before any of them and before any test starts a process.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

pytest_plugins = ["pytester"]

#: The slowest test files, slowest first (CPU seconds of each alone, measured on the 2-core CI
#: machine, in BENCHMARKS.md "The project's test loop"): they start first. Under the README's
#: ``-n 2 --dist loadfile`` a file runs on one worker, and xdist would otherwise start the
#: files with the most tests first, leaving these few-test, long files (inner sessions that
#: start TensorFlow, torch or JAX) to the end, one worker running them while the other idles.
#: A file missing here only runs later; a stale order costs wall time, never a test.
SLOWEST_FIRST = (
    "sessions/test_keras.py",
    "sessions/test_layers.py",
    "sessions/test_training_keras.py",
    "unit/test_training_keras.py",
    "sessions/test_real_models.py",
    "sessions/test_training.py",
    "sessions/test_devices.py",
    "unit/test_properties.py",
    "sessions/test_faults.py",
    "sessions/test_xdist_and_reruns.py",
    "sessions/test_life_cycle.py",
)
HERE = Path(__file__).parent


def _rank(item: pytest.Item) -> int:
    try:
        name = item.path.relative_to(HERE).as_posix()
    except ValueError:
        return len(SLOWEST_FIRST)
    return SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of ``SLOWEST_FIRST`` first, in its order; the others after them, as
    collected. A stable sort: the tests of a file keep their order."""
    items.sort(key=_rank)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``--dist loadfile`` hands out the files in the collected order (``SLOWEST_FIRST``
    first): xdist's reordering by number of tests is turned off."""
    if config.getoption("dist", None) == "loadfile":
        config.option.loadscopereorder = False
    return None  # xdist's own scheduler


@pytest.fixture(scope="session")
def inner_environ(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What every inner session adds to its environment (the ``pytester`` fixture's
    sessions, and those a module-scoped fixture runs without pytester: ``helpers.Project``).

    Only start-up and compile time is saved here; no session runs otherwise:

    - no ``PYTHONPYCACHEPREFIX``: a subprocess reads the bytecode that pip compiled into the
      virtual environment at install time (with a prefix of its own, the first session of a
      run compiled TensorFlow, Keras, torch and JAX again: ~20 s of CPU per worker);
    - one JAX compilation cache for this worker's sessions (a session runs after another, so
      no two processes write it at once): a Keras session on the jax backend compiles each
      operation it runs (~0.05 s each, ~150 in a training check), and the sessions of a module
      run the same models again (recorded, then checked);
    - XLA's quick compiles (``quick_xla_flags``): Keras on jax compiles every eager op;
    - ``INNER_ADDOPTS``: no plugin that no inner session uses;
    - ``PY_COLORS=0``: plain output to assert on."""
    jax_cache = tmp_path_factory.getbasetemp() / "inner-jax-cache"  # this worker's
    jax_cache.mkdir(exist_ok=True)
    return {
        "PYTEST_ADDOPTS": INNER_ADDOPTS,
        "PY_COLORS": "0",
        "JAX_COMPILATION_CACHE_DIR": str(jax_cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
        "XLA_FLAGS": quick_xla_flags(),
    }


@pytest.fixture
def pytester(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_environ: dict[str, str]
) -> pytest.Pytester:
    """Inner sessions get an ini of their own (no outer addopts), syrupy colours off, and an
    environment without the outer run's switches: ``CI`` makes the plugin strict, and an
    outer xdist worker's variables would make syrupy in the inner session act as a worker;
    ``inner_environ`` is added (start-up time only)."""
    pytester.makeini(INNER_INI)
    for name in INNER_UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in inner_environ.items():
        monkeypatch.setenv(name, value)
    return pytester
