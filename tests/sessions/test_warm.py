"""The warm interpreters the session tests fork their inner sessions from (``warm``): each
session is a process of its own that starts as ``python -m pytest`` would, whatever the
sessions before it did."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from . import warm
from .helpers import run

#: An inner test that reports its process and leaves marks a later session must not see.
PROBE = textwrap.dedent(
    """
    import os
    import sys

    import helper_module


    def test_probe():
        print("PROBE", os.getpid(), os.getppid(), os.getcwd(), os.environ.get("SCALE"),
              "left" in sys.modules or "LEFT" in os.environ, helper_module.COUNT,
              sys.argv[0].endswith("pytest/__main__.py"))
        sys.modules["left"] = sys
        helper_module.COUNT += 1
        os.environ["LEFT"] = "1"
    """
)


def probe_line(result):
    line = next(x for x in result.stdout.lines if "PROBE " in x)
    pid, ppid, cwd, scale, left, count, argv = line.split("PROBE ")[1].split()
    return int(pid), int(ppid), cwd, scale, left, int(count), argv


def test_sessions_of_one_warm_interpreter_share_nothing_they_did(pytester, monkeypatch):
    pytester.makepyfile(test_probe=PROBE, helper_module="COUNT = 0\n")
    first = run(pytester, "-s", "-p", "no:weightshape")
    first.assert_outcomes(passed=1)
    monkeypatch.setenv("SCALE", "1.001")  # not read at import: the same warm interpreter
    second = run(pytester, "-s", "-p", "no:weightshape")
    second.assert_outcomes(passed=1)
    pid1, ppid1, cwd, scale1, left1, count1, argv = probe_line(first)
    pid2, ppid2, _, scale2, left2, count2, _ = probe_line(second)
    assert pid1 != pid2 and ppid1 == ppid2 != os.getpid()  # two children of one interpreter
    assert cwd == str(pytester.path) and argv == "True"
    assert (scale1, scale2) == ("None", "1.001")
    assert (left1, left2, count1, count2) == ("False", "False", 0, 0)  # nothing carried over
    assert "LEFT" not in os.environ


def test_sessions_of_one_warm_interpreter_draw_their_own_random_numbers(pytester):
    """As new processes do, from Python's, NumPy's and torch's global generators."""
    pytester.makepyfile(
        test_draw="import random\n\nimport numpy\nimport torch\n\n\ndef test_draw():\n"
        "    print('DRAW', random.random(), numpy.random.random(), torch.rand(1).item())\n"
    )
    first, second = (
        next(x for x in run(pytester, "-s", "-p", "no:weightshape").stdout.lines if "DRAW " in x)
        for _ in range(2)
    )
    draws = zip(first.split("DRAW ")[1].split(), second.split("DRAW ")[1].split(), strict=True)
    assert all(one != other for one, other in draws), (first, second)


def test_a_variable_read_at_import_gets_an_interpreter_of_its_own(pytester, monkeypatch):
    pytester.makepyfile(test_probe=PROBE, helper_module="COUNT = 0\n")
    first = run(pytester, "-s", "-p", "no:weightshape")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # read when OpenMP loads: not after a fork
    second = run(pytester, "-s", "-p", "no:weightshape")
    assert probe_line(first)[1] != probe_line(second)[1]


@pytest.mark.parametrize(
    ("name", "value", "imports", "expression"),
    [
        ("LC_ALL", "C", "", "sys.flags.utf8_mode"),  # the interpreter's start-up
        ("TZ", "EST5EDT", "", "time.tzname"),  # the time module's import
        (  # NumPy's import, preloaded with a framework (JAX: the cheapest)
            "NUMPY_MADVISE_HUGEPAGE",
            "0",
            "import jax\n",
            "numpy._core.multiarray._get_madvise_hugepage()",
        ),
    ],
)
def test_a_session_reads_what_a_new_interpreter_reads_at_start_up(
    pytester, monkeypatch, name, value, imports, expression
):
    pytester.makepyfile(
        test_read=f"{imports}import sys\nimport time\n\nimport numpy\n\n\ndef test_read():\n"
        f"    open('read.txt', 'w').write(repr({expression}))\n"
    )
    run(pytester, "-p", "no:weightshape").assert_outcomes(passed=1)  # warm without the variable
    monkeypatch.setenv(name, value)
    run(pytester, "-p", "no:weightshape").assert_outcomes(passed=1)
    forked = (pytester.path / "read.txt").read_text()
    command = [sys.executable, "-c", "import test_read; test_read.test_read()"]
    subprocess.run(command, cwd=pytester.path, check=True)
    assert forked == (pytester.path / "read.txt").read_text()


def test_a_session_has_the_variables_its_frameworks_set_when_imported(pytester):
    """For themselves or another framework to read later, as Keras off TensorFlow sets
    TF_FORCE_GPU_ALLOW_GROWTH (JAX off a TPU sets TPU_SKIP_MDS_QUERY: cheaper)."""
    pytester.makepyfile(
        test_env="import os\n\nimport jax\n\n\ndef test_env():\n"
        "    assert os.environ.get('TPU_SKIP_MDS_QUERY') == '1'\n"
    )
    run(pytester, "-p", "no:weightshape").assert_outcomes(passed=1)


def test_exit_codes_and_output_are_the_sessions(pytester):
    pytester.makepyfile(test_fail="def test_fail():\n    print('OUT'); assert 0\n")
    result = run(pytester, "-s")
    assert result.ret == 1 and "OUT" in result.stdout.str()
    result.assert_outcomes(failed=1)
    assert run(pytester, "-k", "nothing_matches").ret == 5


def test_a_session_starts_as_python_m_pytest(pytester):
    """``sys.argv[0]`` and ``__main__`` are pytest's ``__main__``, as pytest names itself in
    its usage."""
    pytester.makepyfile(
        test_main="import sys\n\ndef test_main():\n"
        "    print('MAIN', sys.argv[0], sys.modules['__main__'].__spec__.name)\n"
    )
    out = run(pytester, "-s", "-p", "no:weightshape").stdout.str()
    assert f"MAIN {Path(pytest.__file__).with_name('__main__.py')} pytest.__main__" in out
    assert "python -m pytest: error: unrecognized" in run(pytester, "--no-such-option").stderr.str()


def test_a_session_ends_as_python_ends(pytester):
    """``sys.exit`` anywhere (here in a conftest) exits as the interpreter does, after the
    session's threads and exit functions."""
    ending = (
        "import atexit, sys, threading, time\n\n"
        "atexit.register(print, 'EXIT FUNCTION')\n"
        "threading.Thread(target=lambda: (time.sleep(1), print('THREAD', flush=True))).start()\n"
        "sys.exit({})\n"
    )
    pytester.makeconftest(ending.format(""))
    result = run(pytester)
    assert result.ret == 0  # SystemExit(None)
    assert result.stdout.lines == ["THREAD", "EXIT FUNCTION"]
    pytester.makeconftest(ending.format("'bye'"))
    result = run(pytester)
    assert result.ret == 1 and result.stderr.lines == ["bye"]


def test_a_session_past_its_timeout_is_killed(pytester):
    pytester.makepyfile(test_slow="import time\n\ndef test_slow():\n    time.sleep(600)\n")
    code, out, _ = warm.pytest_session(
        ["-p", "no:weightshape"], pytester.path, dict(os.environ), pytester.path / "o", timeout=3
    )
    assert code == -9, out


def test_an_interrupted_session_is_killed_and_its_interpreter_serves_on(pytester):
    """A session has a process group of its own, which no Ctrl-C in a terminal reaches: when
    the outer run is interrupted (here by SIGUSR1) while it waits, it kills the session, and
    the warm interpreter answers the next session with that session's replies."""
    pytester.makepyfile(
        test_slow="import os, time\n\ndef test_slow():\n"
        "    open('pid', 'w').write(str(os.getpid()))\n    time.sleep(600)\n"
    )
    pid_file, main = pytester.path / "pid", threading.get_ident()

    def interrupt_when_running():
        while not (pid_file.exists() and pid_file.read_text()):
            time.sleep(0.05)
        signal.pthread_kill(main, signal.SIGUSR1)

    class Interrupted(Exception):
        pass

    def interrupted(*_):
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, interrupted)
    watcher = threading.Thread(target=interrupt_when_running)
    watcher.start()
    try:
        with pytest.raises(Interrupted):
            run(pytester, "-p", "no:weightshape")
    finally:
        watcher.join()
        signal.signal(signal.SIGUSR1, previous)
    pid = int(pid_file.read_text())
    try:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    code, _, _ = warm.pytest_session(
        ["-k", "nothing_matches"], pytester.path, dict(os.environ), pytester.path / "o", timeout=30
    )
    assert code == 5


def test_a_framework_that_fails_to_import_fails_the_session_as_in_a_new_process(
    pytester, monkeypatch
):
    """The session, not the warm interpreter, reports the error (Keras checks its backend
    before it imports one: cheap)."""
    monkeypatch.setenv("KERAS_BACKEND", "nonsense")
    pytester.makepyfile(test_keras="import keras\n\ndef test_keras():\n    pass\n")
    result = run(pytester, "-p", "no:weightshape")
    assert result.ret == 2
    result.stdout.fnmatch_lines(["*ERROR collecting test_keras.py*", "*Unable to import backend*"])


def test_the_warning_filters_a_preload_adds_are_not_the_sessions(pytester):
    """A session imports its frameworks while collecting, under pytest's ``catch_warnings``,
    so the filters they add end with the collection: NumPy's (imported by JAX, the cheapest
    framework) hides "numpy.ndarray size changed" from no test."""
    pytester.makepyfile(
        test_warns="import warnings\n\nimport jax\n\n\ndef test_warns():\n"
        "    warnings.warn('numpy.ndarray size changed')\n"
    )
    run(pytester, "-p", "no:weightshape").assert_outcomes(passed=1, warnings=1)


def test_the_frameworks_a_session_preloads_are_those_its_files_import(tmp_path):
    (tmp_path / "test_a.py").write_text("import numpy\nfrom keras import layers\n# import jax\n")
    (tmp_path / "test_b.py").write_text("def f():\n    import tensorflow  # when called\n")
    (tmp_path / "conftest.py").write_text("import torch.nn as nn\n")
    assert warm.preloads(tmp_path) == ("torch", "keras")
    (tmp_path / "torch").mkdir()  # a folder that shadows torch: never the installed one
    assert warm.preloads(tmp_path) == ("keras",)
    (tmp_path / "keras.py").write_text("")  # a module shadows as a package does
    assert warm.preloads(tmp_path) == ()
