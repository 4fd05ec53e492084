import os

import pytest

from .sessions.helpers import INNER_ADDOPTS, INNER_INI, INNER_UNSET

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def inner_pycache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One bytecode folder for every inner session of this run: a subprocess
    session compiles pytest, syrupy and the plugin once (with assertions rewritten, which
    ``PYTHONDONTWRITEBYTECODE`` would otherwise redo in every subprocess), outside the
    repository and the virtual environment."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # all workers'
    where = shared / "inner-pycache"
    where.mkdir(exist_ok=True)
    return str(where)


@pytest.fixture
def pytester(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_pycache: str
) -> pytest.Pytester:
    """Inner sessions get an ini of their own (no outer addopts), syrupy colours off, and an
    environment without the outer run's switches: ``CI`` makes the plugin strict, and an
    outer xdist worker's variables would make syrupy in the inner session act as a worker.
    Subprocess sessions keep their bytecode in one shared folder (``inner_pycache``) and load
    no plugin they do not use (``INNER_ADDOPTS``): both only save start-up time."""
    pytester.makeini(INNER_INI)
    for name in INNER_UNSET:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPYCACHEPREFIX", inner_pycache)
    monkeypatch.setenv("PYTEST_ADDOPTS", INNER_ADDOPTS)
    return pytester


@pytest.fixture(scope="session")
def inner_environ(inner_pycache: str) -> dict[str, str]:
    """What an inner session that a module-scoped fixture runs without pytester
    (``helpers.Project``) adds to the environment: the ``pytester`` fixture's settings."""
    return {
        "PYTHONPYCACHEPREFIX": inner_pycache,
        "PYTEST_ADDOPTS": INNER_ADDOPTS,
        "PY_COLORS": "0",
    }
