"""The whole life cycle in inner pytest sessions (subprocesses: each gets fresh RNG and imports)."""

import importlib.util
import json
import subprocess
import sys
import textwrap
from xml.etree import ElementTree

# numpy is loaded before pytester's sys.modules snapshots: the check of an in-process session
# uses it, and it cannot be loaded twice in one process
import numpy  # noqa: F401
import pytest

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


def run(pytester, *args):
    return pytester.runpytest_subprocess(*args)


def golden_of(pytester, module="test_dense", test="test_dense"):
    return pytester.path / "golden" / module / f"{test}.json"


def assert_clean_failure(result):
    """Failed with our message, and no traceback through the plugin's code."""
    out = result.stdout.str()
    assert "pytest_weightshape/" not in out and "pytest_weightshape\\" not in out
    assert "Traceback" not in out
    return out


def test_full_life_cycle(pytester):
    pytester.makepyfile(test_dense=TEST)
    path = golden_of(pytester)

    first = run(pytester)
    first.assert_outcomes(failed=1)
    out = assert_clean_failure(first)
    assert "no golden for the check of test_dense" in out
    assert "golden/test_dense/test_dense.json" in out
    assert "pytest --snapshot-update test_dense.py::test_dense" in out
    assert not path.exists()

    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    recorded = path.read_bytes()
    document = json.loads(recorded)
    assert list(document["checks"]["default"]["variants"]) == ["units=10", "units=5"]

    run(pytester).assert_outcomes(passed=1)
    mtime = path.stat().st_mtime_ns
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert path.read_bytes() == recorded and path.stat().st_mtime_ns == mtime  # not rewritten

    pytester.makepyfile(test_dense=TEST.replace("SCALE = 1.0", "SCALE = 1.001"))
    changed = run(pytester)
    changed.assert_outcomes(failed=1)
    out = assert_clean_failure(changed)
    assert "check of test_dense moved beyond tolerance" in out
    assert "likely cause: initial weights changed" in out and "kernel std" in out
    assert "variant units=10 / output" in out and "allowed" in out
    assert path.read_bytes() == recorded  # a failing check never touches the golden

    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert path.read_bytes() != recorded
    run(pytester).assert_outcomes(passed=1)


def test_noise_below_tolerance_passes_and_does_not_rewrite(pytester):
    pytester.makepyfile(test_dense=TEST)
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    recorded = golden_of(pytester).read_bytes()
    noisy = TEST.replace(
        "return np.maximum(x @ self.kernel + self.bias, 0.0)",
        "return np.maximum(x @ (self.kernel * np.float32(1 + 2e-7)) + self.bias, 0.0)",
    )
    pytester.makepyfile(test_dense=noisy)
    run(pytester).assert_outcomes(passed=1)
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert golden_of(pytester).read_bytes() == recorded


# skipped by lookup, not import: torch imported during a pytester test is dropped from
# sys.modules when the test ends, and torch cannot be imported twice in one process
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
def test_torch_readme_example_life_cycle(pytester):
    example = textwrap.dedent(
        """
        import pytest
        import torch.nn as nn

        @pytest.mark.shape_variant(hidden_size=[10, 20])
        def test_lstm_hidden_size(shape_variant):
            shape_variant.check(
                lambda hidden_size: nn.LSTM(10, hidden_size, batch_first=True),
                inputs=(1, 10, 10),
            )
        """
    )
    pytester.makepyfile(test_lstm=example)
    run(pytester).assert_outcomes(failed=1)
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    run(pytester).assert_outcomes(passed=1)
    recorded = golden_of(pytester, "test_lstm", "test_lstm_hidden_size").read_bytes()
    pytester.makepyfile(
        test_lstm=example.replace("batch_first=True)", "batch_first=True, bias=False)")
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    out = assert_clean_failure(result)
    assert "likely cause: shape or structure changed" in out
    assert "bias_ih_l0" in out and "present" in out and "absent" in out
    assert golden_of(pytester, "test_lstm", "test_lstm_hidden_size").read_bytes() == recorded


def test_parametrize_gives_one_golden_per_parameter_set(pytester):
    pytester.makepyfile(
        test_dense=DENSE
        + textwrap.dedent(
            """
            @pytest.mark.parametrize("n", [4, 8])
            @pytest.mark.shape_variant(units=[10, 5])
            def test_dense(shape_variant, n):
                result = shape_variant.check(Dense, inputs=(n, 16))
                assert result.output("units=5")["shape"] == [n, 5]
            """
        )
    )
    run(pytester, "--snapshot-update").assert_outcomes(passed=2)
    folder = pytester.path / "golden" / "test_dense"
    assert sorted(p.name for p in folder.iterdir()) == ["test_dense[4].json", "test_dense[8].json"]
    run(pytester).assert_outcomes(passed=2)


def test_several_named_checks_share_the_test_golden(pytester):
    pytester.makepyfile(
        test_dense=DENSE
        + textwrap.dedent(
            """
            @pytest.mark.shape_variant(units=[10, 5])
            def test_dense(shape_variant):
                a = shape_variant.check(Dense, inputs=(8, 16), name="small_batch")
                b = shape_variant.check(Dense, inputs=(32, 16), name="large_batch")
                assert a.status == b.status

            @pytest.mark.shape_variant(units=[10, 5])
            def test_duplicate(shape_variant):
                shape_variant.check(Dense, inputs=(8, 16), name="same")
                shape_variant.check(Dense, inputs=(8, 16), name="same")
            """
        )
    )
    result = run(pytester, "--snapshot-update")
    result.assert_outcomes(passed=1, failed=1)
    assert "two checks named 'same' in one test" in result.stdout.str()
    checks = json.loads(golden_of(pytester).read_text())["checks"]
    assert list(checks) == ["small_batch", "large_batch"]
    run(pytester, "-k", "not duplicate").assert_outcomes(passed=1)


def test_xdist_records_and_checks(pytester):
    pytest.importorskip("xdist")
    body = "".join(
        textwrap.dedent(
            f"""
            @pytest.mark.shape_variant(units=[{u}, 5])
            def test_dense_{u}(shape_variant):
                shape_variant.check(Dense, inputs=(8, 16))
            """
        )
        for u in range(6, 14)
    )
    pytester.makepyfile(test_dense=DENSE + body)
    run(pytester, "-n", "2", "--snapshot-update").assert_outcomes(passed=8)
    files = sorted((pytester.path / "golden" / "test_dense").iterdir())
    assert len(files) == 8
    for f in files:
        json.loads(f.read_text())  # every golden whole and valid
    serial = {f.name: f.read_bytes() for f in files}
    run(pytester, "-n", "2").assert_outcomes(passed=8)
    run(pytester, "--snapshot-update").assert_outcomes(passed=8)
    assert {f.name: f.read_bytes() for f in files} == serial


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            "units=[10, 5], padding=[1]",
            "axes are zipped and must have equal length (units: 2, padding: 1)",
        ),
        ("units=10", "axis 'units' must be a list of values"),
        ("units=[]", "axis 'units' is empty"),
        ("units=[10, 10]", "same name 'units=10'"),
        ("", "needs at least one axis"),
        ("units=[10, 5], tolerance={'sdt': 1}", "unknown statistic 'sdt'"),
    ],
)
def test_marker_errors_are_clear(pytester, marker, message):
    pytester.makepyfile(
        test_dense=DENSE
        + textwrap.dedent(
            f"""
            @pytest.mark.shape_variant({marker})
            def test_dense(shape_variant):
                shape_variant.check(Dense, inputs=(8, 16))
            """
        )
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    out = assert_clean_failure(result)
    assert "test_dense.py::test_dense: invalid shape_variant marker" in out
    assert message in out


def test_fixture_without_marker_and_builder_errors(pytester):
    pytester.makepyfile(
        test_dense=DENSE
        + textwrap.dedent(
            """
            def test_no_marker(shape_variant):
                pass

            def broken(units):
                if units == 5:
                    raise RuntimeError("cannot build five")
                return Dense(units)

            @pytest.mark.shape_variant(units=[10, 5])
            def test_builder_raises(shape_variant):
                shape_variant.check(broken, inputs=(8, 16))

            @pytest.mark.shape_variant(units=[10, 5])
            def test_wrong_inputs(shape_variant):
                shape_variant.check(Dense, inputs=(8, 3))
            """
        )
    )
    result = run(pytester)
    result.assert_outcomes(errors=1, failed=2)
    out = assert_clean_failure(result)
    assert "the shape_variant fixture needs a marker" in out
    assert "variant units=5: the builder raised" in out and "RuntimeError: cannot build five" in out
    assert "variant units=10: the model rejected the inputs (input [8, 3] float32)" in out


def test_corrupt_golden_fails_that_test_only_and_is_left_untouched(pytester):
    pytester.makepyfile(
        test_dense=TEST + TEST.replace("def test_dense(", "def test_other(").split(DENSE)[1]
    )
    run(pytester, "--snapshot-update").assert_outcomes(passed=2)
    path = golden_of(pytester)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    corrupt = path.read_bytes()
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    out = assert_clean_failure(result)
    assert "golden/test_dense/test_dense.json is not valid JSON" in out
    assert "--snapshot-update" in out
    assert path.read_bytes() == corrupt
    run(pytester, "--snapshot-update").assert_outcomes(passed=2)
    assert json.loads(path.read_text())["checks"]["default"]


def test_tolerance_settings_from_ini_command_line_marker_and_check(pytester):
    pytester.makepyfile(test_dense=TEST)
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    pytester.makepyfile(test_dense=TEST.replace("SCALE = 1.0", "SCALE = 1.001"))
    run(pytester).assert_outcomes(failed=1)
    run(pytester, "--weightshape-rtol=0.01").assert_outcomes(passed=1)
    pytester.makeini(
        "[pytest]\naddopts = -p no:cacheprovider --snapshot-no-colors\nweightshape_rtol = 0.01\n"
    )
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert (
        "weightshape: goldens in golden/ (default); tolerance rtol=0.01 (ini)"
        in result.stdout.str()
    )
    # command line beats ini, marker beats command line, check beats marker
    run(pytester, "--weightshape-rtol=1e-6").assert_outcomes(failed=1)
    strict_marker = TEST.replace("SCALE = 1.0", "SCALE = 1.001").replace(
        "units=[10, 5])", "units=[10, 5], rtol=1e-6)"
    )
    pytester.makepyfile(test_dense=strict_marker)
    run(pytester, "--weightshape-rtol=0.01").assert_outcomes(failed=1)
    pytester.makepyfile(
        test_dense=strict_marker.replace("inputs=(8, 16))", "inputs=(8, 16), rtol=0.01)")
    )
    run(pytester).assert_outcomes(passed=1)


def test_golden_dir_option(pytester):
    pytester.makepyfile(test_dense=TEST)
    run(pytester, "--snapshot-update", "--weightshape-golden-dir=expectations").assert_outcomes(
        passed=1
    )
    assert (pytester.path / "expectations" / "test_dense" / "test_dense.json").exists()
    assert not (pytester.path / "golden").exists()


def test_plugin_can_be_disabled(pytester):
    pytester.makepyfile(test_dense=TEST)
    result = run(pytester, "-p", "no:weightshape")
    assert "fixture 'shape_variant' not found" in result.stdout.str()


#: Our modules a session that never uses the marker may load: the glue, and the environment
#: module for the versions in the report header (pytest asks for no header under -q).
GLUE = {
    "pytest_weightshape",
    "pytest_weightshape.errors",
    "pytest_weightshape.marker",
    "pytest_weightshape.plugin",
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
    from pytest_weightshape import plugin
    from pytest_weightshape.snapshot import WeightShapeExtension

    # an xdist controller recognises the extension by the name syrupy's workers report
    extension = WeightShapeExtension
    assert f"{extension.__module__}.{extension.__qualname__}" == plugin._EXTENSION
    before = (extension.rootdir, extension.golden_root, extension.only_device)
    pytester.makepyfile(test_dense=TEST)
    result = pytester.runpytest_inprocess("--snapshot-update", "--weightshape-golden-dir=exp")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "exp" / "test_dense" / "test_dense.json").exists()
    assert (extension.rootdir, extension.golden_root, extension.only_device) == before


def test_failing_tests_never_lose_or_write_goldens_on_update(pytester, monkeypatch):
    pytester.makepyfile(
        test_dense=DENSE
        + textwrap.dedent(
            """
            import os

            BROKEN = os.environ.get("BROKEN", "")

            @pytest.mark.shape_variant(units=[10, 5])
            def test_setup(shape_variant):
                shape_variant.check(Dense, inputs=(8, 16))

            @pytest.mark.shape_variant(units=[10, 5])
            def test_model(shape_variant):
                if BROKEN == "model":
                    shape_variant.check(lambda units: 1 / 0, inputs=(8, 16))
                shape_variant.check(Dense, inputs=(8, 16))

            @pytest.mark.shape_variant(units=[10, 5])
            def test_after(shape_variant):
                result = shape_variant.check(Dense, inputs=(8, 16))
                assert BROKEN != "after", "the test's own assertion fails after recording"
            """
        )
    )
    folder = pytester.path / "golden" / "test_dense"
    monkeypatch.setenv("BROKEN", "after")
    result = run(pytester, "--snapshot-update")
    result.assert_outcomes(passed=2, failed=1)
    assert sorted(p.name for p in folder.iterdir()) == ["test_model.json", "test_setup.json"]
    assert "3 checks: 1 not written, 2 recorded" in result.stdout.str()

    monkeypatch.setenv("BROKEN", "")
    run(pytester, "--snapshot-update").assert_outcomes(passed=3)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    source = (pytester.path / "test_dense.py").read_text()
    (pytester.path / "test_dense.py").write_text(
        source.replace(
            "def test_setup(shape_variant):", "def test_setup(shape_variant, missing_fixture):"
        )
    )
    monkeypatch.setenv("BROKEN", "model")
    result = run(pytester, "--snapshot-update")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    assert "Deleted" not in result.stdout.str() and "unused" not in result.stdout.str()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    result = run(pytester)  # a plain run does not call the goldens of failed tests unused
    result.assert_outcomes(passed=1, failed=1, errors=1)
    assert "unused" not in result.stdout.str()


def test_nested_module_folders_and_foreign_files_are_left_alone(pytester):
    pytester.makepyfile(**{"test_a": TEST, "test_a/test_c": TEST})
    run(pytester, "--snapshot-update").assert_outcomes(passed=2)
    nested = pytester.path / "golden" / "test_a" / "test_c" / "test_dense.json"
    notes = pytester.path / "golden" / "test_a" / "README.md"
    notes.write_text("notes kept beside the goldens\n")
    assert nested.exists()
    run(pytester, "--snapshot-update", "--ignore=test_a/test_c.py").assert_outcomes(passed=1)
    assert nested.exists() and notes.exists()
    run(pytester).assert_outcomes(passed=2)


def test_class_based_tests(pytester):
    pytester.makepyfile(
        test_dense=DENSE
        + textwrap.dedent(
            """
            class TestDense:
                @pytest.mark.shape_variant(units=[10, 5])
                def test_units(self, shape_variant):
                    shape_variant.check(Dense, inputs=(8, 16))
            """
        )
    )
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert (pytester.path / "golden" / "test_dense" / "TestDense.test_units.json").exists()
    run(pytester).assert_outcomes(passed=1)


def test_setups_that_check_nothing_warn(pytester):
    pytester.makepyfile(
        test_dense=DENSE
        + textwrap.dedent(
            """
            @pytest.mark.shape_variant(units=[10, 5])
            def test_marker_only():
                pass

            @pytest.mark.shape_variant(units=[10, 5])
            def test_no_check(shape_variant):
                pass
            """
        )
    )
    result = run(pytester)
    result.assert_outcomes(passed=2, warnings=2)
    out = result.stdout.str()
    assert "marked shape_variant but does not use the shape_variant fixture" in out
    assert "test_no_check uses the shape_variant fixture but ran no check" in out


def test_commands_in_messages_work_from_the_invocation_directory(pytester, monkeypatch):
    pytester.makepyfile(**{"sub/test_dense": TEST})
    monkeypatch.chdir(pytester.path / "sub")
    result = pytester.runpytest_subprocess("test_dense.py")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "pytest --snapshot-update test_dense.py::test_dense" in out
    assert "expected at: ../golden/sub/test_dense/test_dense.json" in out


def test_hostile_parametrize_ids_stay_inside_golden_and_never_share_a_file(pytester):
    ids = ["../../escape", "a/b", "a\\\\b", "c:d", "*", "ünïcode", "x" * 300, "x" * 301, "a_b"]
    pytester.makepyfile(
        test_dense=DENSE
        + textwrap.dedent(
            f"""
            @pytest.mark.parametrize("n", range({len(ids)}), ids={ids!r})
            @pytest.mark.shape_variant(units=[10, 5])
            def test_ids(shape_variant, n):
                shape_variant.check(Dense, inputs=(n + 1, 16))
            """
        )
    )
    run(pytester, "--snapshot-update").assert_outcomes(passed=len(ids))
    root = (pytester.path / "golden").resolve()
    files = [p for p in pytester.path.rglob("*.json")]
    assert len(files) == len(ids)
    assert all(root in p.resolve().parents for p in files)
    assert {p.parent for p in files} == {root / "test_dense"}
    run(pytester).assert_outcomes(passed=len(ids))


def test_updating_a_subset_never_deletes_other_goldens(pytester):
    pytester.makepyfile(
        test_one=TEST + TEST.split(DENSE)[1].replace("def test_dense(", "def test_second("),
        test_two=TEST,
    )
    run(pytester, "--snapshot-update").assert_outcomes(passed=3)
    files = sorted(pytester.path.rglob("*.json"))
    before = {p: p.read_bytes() for p in files}
    for args in (
        ["test_two.py"],
        ["test_one.py::test_second"],
        ["-k", "second"],
        ["--ignore=test_one.py"],
        ["--deselect=test_one.py::test_dense"],
    ):
        result = run(pytester, "--snapshot-update", *args)
        assert result.ret == 0, args
        assert {p: p.read_bytes() for p in sorted(pytester.path.rglob("*.json"))} == before, args
    # --lf after a failure: only the failed test runs, the others keep their goldens
    pytester.makepyfile(test_two=TEST.replace("SCALE = 1.0", "SCALE = 1.5"))
    pytester.makeini("[pytest]\naddopts = --snapshot-no-colors\n")  # with the cache, for --lf
    run(pytester).assert_outcomes(passed=2, failed=1)
    run(pytester, "--lf", "--snapshot-update").assert_outcomes(passed=1)
    after = {p: p.read_bytes() for p in sorted(pytester.path.rglob("*.json"))}
    assert set(after) == set(before)
    assert [p.name for p in after if after[p] != before[p]] == ["test_dense.json"]


def test_nan_and_inf_outputs_are_recorded_as_standard_json_and_match_on_rerun(pytester):
    pytester.makepyfile(
        test_dense=DENSE
        + textwrap.dedent(
            """
            @pytest.mark.shape_variant(units=[10, 5])
            def test_dense(shape_variant):
                def build(units):
                    dense = Dense(units)
                    return lambda x: np.where(dense(x) > 1.0, np.inf, np.log(dense(x) - 0.1))
                shape_variant.check(build, inputs=(8, 16))
            """
        )
    )
    pytester.makeini(
        "[pytest]\naddopts = -p no:cacheprovider --snapshot-no-colors\n"
        "filterwarnings = ignore::RuntimeWarning\n"
    )
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    text = golden_of(pytester).read_text()
    assert "NaN" not in text and "Infinity" not in text
    stats = json.loads(text)["checks"]["default"]["variants"]["units=10"]["outputs"]["output"][
        "stats"
    ]
    assert stats["nan_count"] > 0 and stats["inf_count"] > 0
    run(pytester).assert_outcomes(passed=1)
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert golden_of(pytester).read_text() == text


def test_two_processes_updating_one_golden_folder_corrupt_nothing(pytester):
    body = "".join(
        TEST.split(DENSE)[1].replace("def test_dense(", f"def test_{i}(") for i in range(12)
    )
    pytester.makepyfile(test_dense=DENSE + body)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pytest", "--snapshot-update", "-q", "-p", "no:cacheprovider"],
            cwd=pytester.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out.decode()[-2000:]
    files = sorted((pytester.path / "golden" / "test_dense").iterdir())
    assert len(files) == 12
    assert all(json.loads(f.read_text())["checks"]["default"] for f in files)
    run(pytester).assert_outcomes(passed=12)


def test_goldens_are_byte_identical_across_records_and_independent_of_order_and_rng_use(pytester):
    pytester.makepyfile(
        test_dense=DENSE
        + textwrap.dedent(
            """
            import random

            @pytest.mark.shape_variant(units=[10, 5])
            def test_a_noisy_neighbour(shape_variant):
                random.random(), np.random.random(), np.random.seed(99)
                shape_variant.check(Dense, inputs=(8, 16))
                np.random.random()

            @pytest.mark.shape_variant(units=[10, 5])
            def test_b(shape_variant):
                np.random.random()
                shape_variant.check(Dense, inputs=(8, 16))
            """
        )
    )
    run(pytester, "--snapshot-update").assert_outcomes(passed=2)
    folder = pytester.path / "golden" / "test_dense"
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    for p in folder.iterdir():
        p.unlink()
    run(pytester, "--snapshot-update", "test_dense.py::test_b").assert_outcomes(passed=1)
    run(pytester, "--snapshot-update", "test_dense.py::test_a_noisy_neighbour").assert_outcomes(
        passed=1
    )
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == first
    # and the checks themselves produce identical documents whichever test ran first
    a = json.loads(first["test_a_noisy_neighbour.json"])["checks"]["default"]["variants"]
    b = json.loads(first["test_b.json"])["checks"]["default"]["variants"]
    assert a == b


@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_summary_section_and_junit_properties(pytester, workers):
    if workers:
        pytest.importorskip("xdist")
    body = TEST.split(DENSE)[1]
    pytester.makepyfile(test_dense=TEST + body.replace("def test_dense(", "def test_other("))
    run(pytester, "--snapshot-update", *workers).assert_outcomes(passed=2)
    pytester.makepyfile(
        test_dense=TEST.replace("SCALE = 1.0", "SCALE = 1.001")
        + body.replace("def test_dense(", "def test_other(").replace("(8, 16)", "(8, 16), rtol=0.1")
    )
    result = run(pytester, *workers, "--junitxml=report.xml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*= weightshape =*", "2 checks: 1 drifted, 1 passed", "largest drift: * of its tolerance*"]
    )
    xml = (pytester.path / "report.xml").read_text()
    assert 'name="weightshape[default]"' in xml and "drifted" in xml


@pytest.mark.parametrize("stop", ["-x", "--maxfail=1", "interrupt", "-n 2 -x"])
def test_a_run_that_stops_early_keeps_the_goldens_of_tests_that_never_ran(
    pytester, monkeypatch, stop
):
    body = TEST.split(DENSE)[1]
    stopper = textwrap.dedent(
        """
        import os

        @pytest.mark.shape_variant(units=[10, 5])
        def test_b_stopper(shape_variant):
            shape_variant.check(Dense, inputs=(8, 16))
            if os.environ.get("STOP") == "fail":
                assert False, "stop here"
            if os.environ.get("STOP") == "interrupt":
                raise KeyboardInterrupt
        """
    )
    pytester.makepyfile(
        test_a=DENSE + body.replace("def test_dense(", "def test_a_first(") + stopper,
        test_z=TEST,
    )
    run(pytester, "--snapshot-update").assert_outcomes(passed=3)
    before = {p: p.read_bytes() for p in pytester.path.rglob("*.json")}
    monkeypatch.setenv("STOP", "interrupt" if stop == "interrupt" else "fail")
    args = [] if stop == "interrupt" else stop.split()
    result = run(pytester, "--snapshot-update", *args)
    assert result.ret != 0
    assert "Deleted" not in result.stdout.str()
    assert {p: p.read_bytes() for p in pytester.path.rglob("*.json")} == before


def test_a_golden_from_a_newer_version_is_never_overwritten(pytester):
    pytester.makepyfile(test_dense=TEST)
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    path = golden_of(pytester)
    document = json.loads(path.read_text())
    document["schema_version"] = 99
    document["future_field"] = {"kept": True}
    path.write_text(json.dumps(document))
    newer = path.read_bytes()
    for args in ([], ["--snapshot-update"]):
        result = run(pytester, *args)
        result.assert_outcomes(failed=1)
        assert "written by a newer pytest-weightshape" in result.stdout.str()
        assert path.read_bytes() == newer


def test_a_rerun_test_counts_reports_and_records_its_checks_once(pytester):
    """pytest-rerunfailures: the attempt that is run again is superseded, not added up."""
    pytest.importorskip("pytest_rerunfailures")
    pytester.makepyfile(
        test_dense=DENSE
        + textwrap.dedent(
            """
            @pytest.mark.shape_variant(units=[10, 5])
            def test_dense(shape_variant, request):
                shape_variant.check(Dense, inputs=(8, 16))
                flag = request.config.rootpath / "ran-once"
                if not flag.exists():
                    flag.write_text("")
                    raise RuntimeError("flaky, after its check")
            """
        )
    )
    first = run(pytester, "--snapshot-update", "--reruns=1", "--weightshape-report=r.json")
    assert first.parseoutcomes() == {"passed": 1, "rerun": 1}
    first.stdout.fnmatch_lines(["1 check: 1 recorded"])
    report = json.loads((pytester.path / "r.json").read_text())
    assert [c["status"] for c in report["checks"]] == ["recorded"]
    assert golden_of(pytester).is_file()
    (pytester.path / "ran-once").unlink()
    again = run(pytester, "--reruns=1", "--weightshape-report=r.json", "--junitxml=j.xml")
    assert again.parseoutcomes() == {"passed": 1, "rerun": 1}
    again.stdout.fnmatch_lines(["1 check: 1 passed"])
    assert len(json.loads((pytester.path / "r.json").read_text())["checks"]) == 1
    junit = ElementTree.parse(pytester.path / "j.xml")
    for case in junit.iter("testcase"):  # each attempt's case holds its own check, once
        assert len(case.findall("properties/property[@name='weightshape[default]']")) == 1
