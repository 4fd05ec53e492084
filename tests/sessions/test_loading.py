"""Loading the plugin: what a plain session imports, ``-p no:weightshape``, and an in-process
session that points the syrupy extension at its goldens and back."""

import textwrap

# numpy is loaded before pytester's sys.modules snapshots: the check of an in-process session
# uses it, and it cannot be loaded twice in one process
import numpy  # noqa: F401
import pytest

from .helpers import TEST, run


def test_plugin_can_be_disabled(pytester):
    pytester.makepyfile(test_dense=TEST)
    result = run(pytester, "-p", "no:weightshape")
    assert "fixture 'shape_variant' not found" in result.stdout.str()


#: Our modules a session that never uses the marker may load: the glue (the hooks, options,
#: session state and the syrupy bridge), the package's errors, marker signature and old-path
#: hook, and the environment module for the versions in the report header (pytest asks for no
#: header under -q).
GLUE = {
    "pytest_weightshape",
    "pytest_weightshape.errors",
    "pytest_weightshape.marker",
    "pytest_weightshape.moved",
    "pytest_weightshape.plugin",
    "pytest_weightshape.plugin.options",
    "pytest_weightshape.plugin.session",
    "pytest_weightshape.plugin.syrupy_bridge",
}


@pytest.mark.parametrize("quiet", [False, True])
def test_loading_the_plugin_imports_no_framework(pytester, quiet):
    """A plain session pays for the glue only: no framework, no numpy, none of our measuring
    code, syrupy extension or session-end reporting."""
    pytester.makeconftest(
        textwrap.dedent(
            """
            import sys
            import pytest

            @pytest.hookimpl(trylast=True)  # after every other hook of the session
            def pytest_unconfigure(config):
                heavy = sorted(m for m in ("numpy", "torch", "tensorflow", "keras", "jax")
                               if m in sys.modules)
                print("HEAVY-MODULES:", heavy)
                ours = sorted(m for m in sys.modules if m.startswith("pytest_weightshape"))
                print("OUR-MODULES:", " ".join(ours))
            """
        )
    )
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = run(pytester, "-s", *(["-q"] if quiet else []))
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert ("weightshape: goldens in golden/" in out) is not quiet
    assert "HEAVY-MODULES: []" in out
    (line,) = (line for line in out.splitlines() if line.startswith("OUR-MODULES:"))
    ours = set(line.split()[1:])
    allowed = GLUE if quiet else GLUE | {"pytest_weightshape.environment"}
    assert ours <= allowed, sorted(ours - allowed)
    assert "pytest_weightshape.plugin" in ours


def test_an_in_process_session_points_the_extension_at_its_goldens_and_back(pytester):
    """The golden location reaches the syrupy extension (a class attribute) before the first
    check, and an in-process session puts back the location of the session around it."""
    from pytest_weightshape.plugin.extension import WeightShapeExtension
    from pytest_weightshape.plugin.session import EXTENSION_CLASS

    # an xdist controller recognises the extension by the name syrupy's workers report
    extension = WeightShapeExtension
    assert f"{extension.__module__}.{extension.__qualname__}" == EXTENSION_CLASS
    before = (extension.rootdir, extension.golden_root, extension.only_device)
    pytester.makepyfile(test_dense=TEST)
    result = pytester.runpytest_inprocess("--snapshot-update", "--weightshape-golden-dir=exp")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "exp" / "test_dense" / "test_dense.json").exists()
    assert (extension.rootdir, extension.golden_root, extension.only_device) == before
