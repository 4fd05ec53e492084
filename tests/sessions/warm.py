"""Inner pytest sessions forked from warm interpreters.

Most of the suite's time went to starting inner sessions rather than to what they test: a new
Python, pytest, and the framework the inner tests import (torch ~1-3 s of CPU, Keras on
TensorFlow ~6 s, as it imports JAX too). A *warm interpreter* is a process that has imported
pytest and those frameworks once, under the session's environment; each inner session is a
child forked from it, which sets its own working directory, environment, ``sys.path``,
standard streams and RNG seeds, then runs pytest as ``python -m`` does. So each session is
still a process of its own: what it imports and changes after the fork (the plugin, the test
modules, RNG state, the frameworks' settings) dies with it, and the next session starts from
the same untouched interpreter, as a new ``python -m pytest`` would.

What makes two sessions share a warm interpreter: the same frameworks preloaded (the ones the
inner test files import at their top, ``preloads``) and the same values of every environment
variable a framework or the interpreter may read while importing (``KEYED``). Variables
outside those (``SCALE``, ``CI``, ``HOME``, ``PYTHONPATH``) are set in the child only.

Not for sessions whose point is a fresh process's start-up (what the plugin imports, a
module hidden from ``sys.path``): those files import no framework, so their interpreter has
preloaded pytest alone, never the plugin or NumPy. Nor for what no fork can give: the
sessions of one warm interpreter share its ``str`` hash seed (sets of strings iterate alike:
a test of order independence runs interpreters of its own, as tests/unit/test_spec.py does),
and Keras read its ``keras.json`` in the warm interpreter's ``HOME``. Run as a script, this
file is the warm interpreter: ``python warm.py torch,keras`` reads one JSON request a line
from stdin.
"""

import atexit
import contextlib
import json
import os
import re
import runpy
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

#: What a warm interpreter may preload, in this order (Keras imports its backend).
FRAMEWORKS = ("torch", "tensorflow", "jax", "keras", "transformers", "torch_pruning")
IMPORTS = re.compile(r"^(?:import|from)\s+(" + "|".join(FRAMEWORKS) + r")\b", flags=re.MULTILINE)
#: Environment variables read at start-up or import (the interpreter and its locale, the time
#: zone, BLAS and OpenMP thread pools, NumPy's and the frameworks' flags): sessions that differ
#: in any of them never share a warm one.
KEYED = re.compile(
    r"^(PYTHON(?!PATH$)|LC_|LANG|TZ|NPY_|NUMPY_|KERAS_|TF_|JAX_|XLA_|OMP_|MKL_|OPENBLAS_|GOTO|"
    r"KMP_|CUDA_|NVIDIA_|TORCH|PYTORCH_|HIP_|ROCR_|LD_|MALLOC_|HF_|TRANSFORMERS_|TOKENIZERS_)"
)
#: Warm interpreters kept per outer process (each holds its frameworks' memory).
KEEP = 3


def preloads(cwd):
    """The frameworks the ``*.py`` files in ``cwd`` import at their top level (not inside a
    function: a framework a session may never import is not worth its start-up), in
    ``FRAMEWORKS`` order; none that a folder or module in ``cwd`` would shadow."""
    found = set()
    for path in Path(cwd).glob("*.py"):
        found.update(IMPORTS.findall(path.read_text(errors="replace")))
    shadowed = {path.stem for path in Path(cwd).iterdir()}
    return tuple(f for f in FRAMEWORKS if f in found and f not in shadowed)


class _Warm:
    """One warm interpreter: a child process serving sessions one at a time."""

    def __init__(self, frameworks, environ, folder):
        self.log = folder / "warm.log"
        home = folder / "home"
        home.mkdir()
        environ = dict(environ, HOME=str(home), USERPROFILE=str(home))
        environ.pop("PYTHONPATH", None)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, __file__, ",".join(frameworks)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=folder,
                env=environ,
            )

    def session(self, request, timeout):
        """Run one session; its exit code (negative: the signal that ended it). A session past
        ``timeout``, or one whose caller is interrupted (Ctrl-C), is killed with the processes
        it started; a warm interpreter whose replies may be out of step serves no more."""
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
            pid = self._reply(timeout)["pid"]
        except BaseException:
            self.process.kill()
            raise
        try:
            return self._reply(timeout)["code"]
        except BaseException as stop:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # the session and the xdist workers it started
            try:
                code = self._reply(30)["code"]  # its end, reaped by the warm interpreter
            except Exception:
                self.process.kill()
                raise stop from None
            if not isinstance(stop, TimeoutError):
                raise
            return code

    def _reply(self, timeout):
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            raise RuntimeError(f"warm interpreter ended:\n{self.log.read_text()[-4000:]}")
        return json.loads(line)

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


class _Pool:
    """This process's warm interpreters, the most recently used last."""

    def __init__(self):
        self.warm = {}
        self.folder = None

    def get(self, frameworks, environ):
        key = (frameworks, tuple(sorted((k, v) for k, v in environ.items() if KEYED.match(k))))
        warm = self.warm.pop(key, None)
        if warm is not None and warm.process.poll() is not None:
            warm.close()
            warm = None
        if warm is None:
            if self.folder is None:
                self.folder = Path(tempfile.mkdtemp(prefix="weightshape-warm-"))
                atexit.register(self.close)
            while len(self.warm) >= KEEP:
                self.warm.pop(next(iter(self.warm))).close()
            warm = _Warm(frameworks, environ, Path(tempfile.mkdtemp(dir=self.folder)))
        self.warm[key] = warm
        return warm

    def close(self):
        for warm in self.warm.values():
            warm.close()
        self.warm.clear()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


_POOL = _Pool()


def pytest_session(args, cwd, environ, output, timeout=600):
    """``python -m pytest ARGS`` in ``cwd`` with ``environ``, forked from a warm interpreter
    that preloaded ``preloads(cwd)``: its exit code, stdout and stderr (kept in the files
    ``output``-out.txt and ``output``-err.txt)."""
    out, err = Path(f"{output}-out.txt"), Path(f"{output}-err.txt")
    request = {
        "args": [str(a) for a in args],
        "cwd": str(cwd),
        "env": dict(environ),
        "out": str(out),
        "err": str(err),
    }
    code = _POOL.get(preloads(cwd), environ).session(request, timeout)
    read = lambda path: path.read_text(errors="replace") if path.exists() else ""  # noqa: E731
    return code, read(out), read(err)


def _child(request, imported):
    """In the forked child: become the session ``request`` describes (with the environment
    variables ``imported`` that the preloads set), run ``python -m pytest`` and exit as the
    interpreter would (after the session's threads and exit functions)."""
    code = 1
    try:
        os.setpgid(0, 0)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update({**request["env"], **imported})
        path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:0] = [os.getcwd(), *path]  # as ``python -m`` starts
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, name in ((1, request["out"]), (2, request["err"])):
            os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        if "numpy" in sys.modules:  # a new process seeds the global generators afresh
            sys.modules["numpy"].random.seed()
        if "torch" in sys.modules:  # its CPU one (a device's starts from a fixed seed)
            sys.modules["torch"].default_generator.seed()
        sys.argv[1:] = request["args"]
        runpy.run_module("pytest", run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        code = 0 if stop.code is None else stop.code
        if not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            threading._shutdown()  # waits for the non-daemon threads, as Python exiting does
            atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _serve(frameworks):
    """The warm interpreter: preload, then fork one child per request line."""
    import importlib
    import traceback
    import warnings

    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything printed here goes to the log, never into a reply
    import pytest  # noqa: F401

    environ = dict(os.environ)
    with warnings.catch_warnings():  # as a session's collection imports them
        for name in frameworks:
            try:
                importlib.import_module(name)
            except Exception:  # the session imports it again and fails as a new process would
                traceback.print_exc()
                break
    imported = {k: v for k, v in os.environ.items() if environ.get(k) != v}
    for line in sys.stdin:
        request = json.loads(line)
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            replies.close()
            _child(request, imported)
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


if __name__ == "__main__":
    sys.path.pop(0)  # this file's folder: the tests' package is no module of a session
    _serve([f for f in sys.argv[1].split(",") if f])
