import pytest

from .sessions.helpers import INNER_ADDOPTS, INNER_INI, INNER_UNSET

pytest_plugins = ["pytester"]


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
