"""What the session tests share: a small NumPy model as test source, running inner sessions
(subprocesses: each gets fresh RNG and imports) and the CLI, and where goldens land."""

import os
import subprocess
import sys
import textwrap

DENSE = textwrap.dedent(
    """
    import numpy as np
    import pytest

    SCALE = 1.0

    class Dense:
        def __init__(self, units, in_features=16):
            limit = np.sqrt(6.0 / (in_features + units))
            kernel = np.random.uniform(-limit, limit, (in_features, units)) * SCALE
            self.kernel = kernel.astype(np.float32)
            self.bias = np.zeros(units, dtype=np.float32)

        def __call__(self, x):
            return np.maximum(x @ self.kernel + self.bias, 0.0)
    """
)


TEST = DENSE + textwrap.dedent(
    """
    @pytest.mark.shape_variant(units=[10, 5])
    def test_dense(shape_variant):
        shape_variant.check(Dense, inputs=(8, 16))
    """
)


BODY = TEST.split(DENSE)[1]
OTHER = BODY.replace("def test_dense(", "def test_other(").replace("(8, 16)", "(8, 16), rtol=0.1")
NEW = BODY.replace("def test_dense(", "def test_new(").replace("[10, 5]", "[12, 6, 3]")


def run(pytester, *args):
    """An inner session in a subprocess: fresh imports and RNG (what a test that imports a
    framework, or checks what a session imports, needs)."""
    return pytester.runpytest_subprocess(*args)


def run_inline(pytester, *args):
    """An inner session in this process, for inner tests that import NumPy at most: no
    interpreter, pytest or NumPy start-up (~1-2 s of CPU per session). The calling test module
    calls ``load_for_inline()`` at its top, and the inner tests import no framework (torch
    and TensorFlow cannot be loaded twice in one process: use ``run``)."""
    return pytester.runpytest_inprocess(*args)


def load_for_inline():
    """Load numpy and every module of the plugin but the framework adapters, as a test module
    that uses ``run_inline`` must at its top: pytester's in-process sessions unload what they
    imported, and a module loaded again would hold classes of another identity than the
    plugin's session state (and numpy cannot be loaded twice in one process)."""
    import importlib
    import pkgutil

    import numpy  # noqa: F401

    import pytest_weightshape

    for module in pkgutil.walk_packages(pytest_weightshape.__path__, "pytest_weightshape."):
        name = module.name
        if name.endswith("__main__") or (
            ".frameworks." in name and not name.endswith("numpy_adapter")
        ):
            continue
        importlib.import_module(name)


def golden_of(pytester, module="test_dense", test="test_dense"):
    return pytester.path / "golden" / module / f"{test}.json"


def assert_clean_failure(result):
    """Failed with our message, and no traceback through the plugin's code."""
    out = result.stdout.str()
    assert "pytest_weightshape/" not in out and "pytest_weightshape\\" not in out
    assert "Traceback" not in out
    return out


def drifted_suite(pytester, *args, inline=False):
    """test_dense drifts, test_other holds (a loose tolerance), test_new has no golden;
    ``inline`` records in this process (see ``run_inline``)."""
    pytester.makepyfile(test_dense=TEST + OTHER)
    (run_inline if inline else run)(pytester, "--snapshot-update", *args).assert_outcomes(passed=2)
    pytester.makepyfile(test_dense=TEST.replace("SCALE = 1.0", "SCALE = 1.001") + OTHER + NEW)


def run_module(*args, cwd):
    """``python -m pytest_weightshape ARGS`` in ``cwd``, outside CI."""
    return subprocess.run(
        [sys.executable, "-m", "pytest_weightshape", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "CI"},
    )
