"""What the session tests share: a small NumPy model as test source, running inner sessions
(subprocesses: each gets fresh RNG and imports) and the CLI, and where goldens land."""

import os
import shutil
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET

import pytest

from . import warm

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
    """An inner session in a process of its own: fresh imports and RNG (what a test that
    imports a framework, or checks what a session imports, needs), as
    ``pytester.runpytest_subprocess`` gives, forked from a warm interpreter (``warm``) that
    has imported pytest and the frameworks the inner test files import."""
    pytester_runs = getattr(pytester, "_weightshape_runs", 0) + 1
    pytester._weightshape_runs = pytester_runs
    basetemp = pytester.path / f"runpytest-{pytester_runs}"
    environ = dict(os.environ)  # pytester's (its HOME; ``inner_environ`` added)
    output = pytester.path / f"output-{pytester_runs}"
    return _session([f"--basetemp={basetemp}", *args], pytester.path, environ, output)


def _session(args, cwd, environ, output):
    """``warm.pytest_session``'s run in ``cwd`` (first on ``PYTHONPATH``, as pytester puts
    it) as a ``RunResult``, printed as pytester prints its sessions (a failing outer test
    shows it)."""
    environ = dict(
        environ, PYTHONPATH=os.pathsep.join(filter(None, [str(cwd), environ.get("PYTHONPATH")]))
    )
    start = time.monotonic()
    code, out, err = warm.pytest_session(args, cwd, environ, output)
    print("running: python -m pytest", *args, "\n     in:", cwd)
    print(out, "\n", err, sep="")
    return pytest.RunResult(code, out.splitlines(), err.splitlines(), time.monotonic() - start)


def run_inline(pytester, *args):
    """An inner session in this process, for inner tests that import NumPy at most: no
    interpreter, pytest or NumPy start-up (~1-2 s of CPU per session). The calling test module
    calls ``load_for_inline()`` at its top, and the inner tests import no framework (torch
    and TensorFlow cannot be loaded twice in one process: use ``run``)."""
    return pytester.runpytest_inprocess(*args)


#: Plugins of the outer run that no inner session uses: hypothesis's plugin imports hypothesis
#: at every session end (~1 s of compiling in each subprocess), anyio's is imported for nothing.
INNER_ADDOPTS = "-p no:hypothesispytest -p no:anyio"
#: The outer run's switches an inner session must not see: ``CI`` makes the plugin strict, an
#: outer xdist worker's variables would make syrupy in the inner session act as a worker.
INNER_UNSET = (
    "CI",
    "GITHUB_STEP_SUMMARY",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_XDIST_TESTRUNUID",
    "PYTHONDONTWRITEBYTECODE",
    "PYTEST_ADDOPTS",
    "TOX_ENV_DIR",
)
#: XLA's CPU compiler with LLVM's optimisations off, for the Keras-on-jax processes the tests
#: start. Eager Keras on jax compiles each operation it runs (~320 compiles, ~18 s of a ~31 s
#: training probe), and the tests' models are tiny: optimising their code costs more than it
#: saves (the probe: 31.5 s -> 25.3 s; test_keras and test_training_keras on jax: 67 s -> 57
#: s). Records and checks of one test compile alike, and no test depends on XLA's code
#: generation. Added to whatever XLA_FLAGS the outer run has.
QUICK_XLA = "--xla_backend_optimization_level=0"


def quick_xla_flags() -> str:
    """XLA_FLAGS for a process the tests start: the outer run's flags, then ``QUICK_XLA``."""
    return f"{os.environ.get('XLA_FLAGS', '').strip()} {QUICK_XLA}".strip()


#: Every inner session's ini: no outer addopts, no cache, syrupy without colours.
INNER_INI = "[pytest]\naddopts = -p no:cacheprovider --snapshot-no-colors\n"

#: Where ``run_each`` has an inner session write its JUnit XML.
EACH = "each.xml"


class Outcomes(dict):
    """What each inner test did, by ``"module::test"``; asking for a test the session did not
    report fails with the session's output (a session that crashed wrote no JUnit XML)."""

    def __init__(self, found, output):
        super().__init__(found)
        self.output = output

    def __missing__(self, key):
        raise AssertionError(f"the inner session reported no {key}:\n{self.output[-4000:]}")


def outcomes_of(junit, output=""):
    """``{"module::test": (outcome, text)}`` from an inner session's JUnit XML: what each inner
    test did, and its failure, error or skip text, so that one session can assert several
    tests' outcomes and messages apart. ``output``: the session's, for a missing test."""
    found = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            outcome, text = "passed", ""
            for kind in ("failure", "error", "skipped"):
                element = case.find(kind)
                if element is not None:
                    outcome = {"failure": "failed", "error": "error"}.get(kind, kind)
                    text = (element.get("message") or "") + "\n" + (element.text or "")
                    break
            found[f"{case.get('classname')}::{case.get('name')}"] = (outcome, text)
    return Outcomes(found, output)


class SharedRuns:
    """A test module's inner sessions, each run once (``once``) when a test first needs it,
    each in a ``project`` folder of its own (so a recording that others copy stays as
    recorded). A module-scoped fixture holds one; its subclass names the sessions."""

    def __init__(self, tmp_path_factory, environ):
        self.factory = tmp_path_factory
        self.environ = environ
        self.done = {}

    def once(self, key, make):
        """``make()``'s value, made the first time ``key`` is asked for."""
        if key not in self.done:
            self.done[key] = make()
        return self.done[key]

    def project(self, name):
        """A new :class:`Project` in a fresh folder named after ``name``."""
        return Project(self.factory.mktemp(name), self.environ)


def run_each(pytester, *args, inline=False):
    """An inner session (``run``, or ``run_inline``) and what each of its tests did
    (``outcomes_of``)."""
    result = (run_inline if inline else run)(pytester, *args, f"--junitxml={EACH}")
    return result, outcomes_of(pytester.path / EACH, result.stdout.str() + result.stderr.str())


class Project:
    """A folder of inner tests that several outer tests share, for the inner sessions that
    a module-scoped fixture runs once (a recording several tests read, a framework's
    start-up paid once): ``write`` the files, ``run`` a session in a subprocess (in the
    ``pytester`` fixture's environment: ``INNER_UNSET`` removed, ``inner_environ`` added),
    ``copy`` it for a test that changes it."""

    def __init__(self, path, environ):
        self.path = path
        self.environ = dict(environ, HOME=str(path / "home"), USERPROFILE=str(path / "home"))
        (path / "home").mkdir(exist_ok=True)
        (path / "tox.ini").write_text(INNER_INI)
        self.sessions = 0

    def write(self, **files):
        for name, source in files.items():
            (self.path / f"{name}.py").write_text(source)

    def run(self, *args, **env):
        """A subprocess session with ``env`` added to the environment: its ``RunResult``
        and ``outcomes_of`` its tests."""
        self.sessions += 1
        basetemp = self.path / f"basetemp-{self.sessions}"
        junit = self.path / f"each-{self.sessions}.xml"
        environ = {k: v for k, v in os.environ.items() if k not in INNER_UNSET}
        environ.update(self.environ, **env)
        result = _session(
            [f"--basetemp={basetemp}", *args, f"--junitxml={junit}"],
            self.path,
            environ,
            self.path / f"output-{self.sessions}",
        )
        return result, outcomes_of(junit, result.stdout.str() + result.stderr.str())

    def copy(self, to):
        """The test files and goldens, into the folder ``to`` (a test's own)."""
        for path in self.path.glob("*.py"):
            shutil.copy(path, to / path.name)
        shutil.copytree(self.path / "golden", to / "golden", dirs_exist_ok=True)

    def golden(self, module, test):
        return self.path / "golden" / module / f"{test}.json"


def run_numpy(pytester, *args):
    """A NumPy-only inner session: in this process (``run_inline``), or a subprocess where it
    starts xdist workers (``-n``)."""
    return (run if "-n" in args else run_inline)(pytester, *args)


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


#: An inner conftest that logs the name of every output whose statistics a check measures
#: (to ``measured.txt`` in the inner rootdir): what a passing run takes from its golden instead.
COUNTING = """
import pytest
from pytest_weightshape import run

@pytest.fixture(autouse=True)
def counted(monkeypatch, pytestconfig):
    measure = run.summarize_output
    def summarize_output(output):
        with open(pytestconfig.rootpath / "measured.txt", "a") as log:
            log.write(output.name + "\\n")
        return measure(output)
    monkeypatch.setattr(run, "summarize_output", summarize_output)
"""
