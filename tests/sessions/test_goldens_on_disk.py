"""The golden files themselves: corrupt and newer goldens, hostile ids, nested folders,
concurrent and partial updates, failing tests during an update, byte-identical records and
NaN / Inf values."""

import json
import shutil
import subprocess
import sys
import textwrap

from .helpers import (
    DENSE,
    INNER_INI,
    TEST,
    assert_clean_failure,
    golden_of,
    load_for_inline,
    run_inline,
)

load_for_inline()  # the NumPy sessions here run in this process


def test_corrupt_golden_fails_that_test_only_and_is_left_untouched(pytester):
    pytester.makepyfile(
        test_dense=TEST + TEST.replace("def test_dense(", "def test_other(").split(DENSE)[1]
    )
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=2)
    path = golden_of(pytester)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    corrupt = path.read_bytes()
    result = run_inline(pytester)
    result.assert_outcomes(passed=1, failed=1)
    out = assert_clean_failure(result)
    assert "golden/test_dense/test_dense.json is not valid JSON" in out
    assert "--snapshot-update" in out
    assert path.read_bytes() == corrupt
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=2)
    assert json.loads(path.read_text())["checks"]["default"]


def test_a_golden_from_a_newer_version_is_never_overwritten(pytester):
    pytester.makepyfile(test_dense=TEST)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    path = golden_of(pytester)
    document = json.loads(path.read_text())
    document["schema_version"] = 99
    document["future_field"] = {"kept": True}
    path.write_text(json.dumps(document))
    newer = path.read_bytes()
    for args in ([], ["--snapshot-update"]):
        result = run_inline(pytester, *args)
        result.assert_outcomes(failed=1)
        assert "written by a newer pytest-weightshape" in result.stdout.str()
        assert path.read_bytes() == newer


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
    result = run_inline(pytester, "--snapshot-update")
    result.assert_outcomes(passed=2, failed=1)
    assert sorted(p.name for p in folder.iterdir()) == ["test_model.json", "test_setup.json"]
    assert "3 checks: 1 not written, 2 recorded" in result.stdout.str()

    monkeypatch.setenv("BROKEN", "")
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=3)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    source = (pytester.path / "test_dense.py").read_text()
    (pytester.path / "test_dense.py").write_text(
        source.replace(
            "def test_setup(shape_variant):", "def test_setup(shape_variant, missing_fixture):"
        )
    )
    monkeypatch.setenv("BROKEN", "model")
    result = run_inline(pytester, "--snapshot-update")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    assert "Deleted" not in result.stdout.str() and "unused" not in result.stdout.str()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    result = run_inline(pytester)  # a plain run does not call the goldens of failed tests unused
    result.assert_outcomes(passed=1, failed=1, errors=1)
    assert "unused" not in result.stdout.str()


def test_nested_module_folders_and_foreign_files_are_left_alone(pytester):
    pytester.makepyfile(**{"test_a": TEST, "test_a/test_c": TEST})
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=2)
    nested = pytester.path / "golden" / "test_a" / "test_c" / "test_dense.json"
    notes = pytester.path / "golden" / "test_a" / "README.md"
    notes.write_text("notes kept beside the goldens\n")
    assert nested.exists()
    run_inline(pytester, "--snapshot-update", "--ignore=test_a/test_c.py").assert_outcomes(passed=1)
    assert nested.exists() and notes.exists()
    run_inline(pytester).assert_outcomes(passed=2)


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
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=len(ids))
    root = (pytester.path / "golden").resolve()
    files = [p for p in pytester.path.rglob("*.json")]
    assert len(files) == len(ids)
    assert all(root in p.resolve().parents for p in files)
    assert {p.parent for p in files} == {root / "test_dense"}
    run_inline(pytester).assert_outcomes(passed=len(ids))


def test_updating_a_subset_never_deletes_other_goldens(pytester):
    pytester.makepyfile(
        test_one=TEST + TEST.split(DENSE)[1].replace("def test_dense(", "def test_second("),
        test_two=TEST,
    )
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=3)
    files = sorted(pytester.path.rglob("*.json"))
    before = {p: p.read_bytes() for p in files}
    for args in (
        ["test_two.py"],
        ["test_one.py::test_second"],
        ["-k", "second"],
        ["--ignore=test_one.py"],
        ["--deselect=test_one.py::test_dense"],
    ):
        result = run_inline(pytester, "--snapshot-update", *args)
        assert result.ret == 0, args
        assert {p: p.read_bytes() for p in sorted(pytester.path.rglob("*.json"))} == before, args
    # --lf after a failure: only the failed test runs, the others keep their goldens
    pytester.makepyfile(test_two=TEST.replace("SCALE = 1.0", "SCALE = 1.5"))
    pytester.makeini("[pytest]\naddopts = --snapshot-no-colors\n")  # with the cache, for --lf
    run_inline(pytester).assert_outcomes(passed=2, failed=1)
    run_inline(pytester, "--lf", "--snapshot-update").assert_outcomes(passed=1)
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
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    text = golden_of(pytester).read_text()
    assert "NaN" not in text and "Infinity" not in text
    stats = json.loads(text)["checks"]["default"]["variants"]["units=10"]["outputs"]["output"][
        "stats"
    ]
    assert stats["nan_count"] > 0 and stats["inf_count"] > 0
    run_inline(pytester).assert_outcomes(passed=1)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
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
    run_inline(pytester).assert_outcomes(passed=12)


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
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=2)
    folder = pytester.path / "golden" / "test_dense"
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    for p in folder.iterdir():
        p.unlink()
    run_inline(pytester, "--snapshot-update", "test_dense.py::test_b").assert_outcomes(passed=1)
    run_inline(
        pytester, "--snapshot-update", "test_dense.py::test_a_noisy_neighbour"
    ).assert_outcomes(passed=1)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == first
    # and the checks themselves produce identical documents whichever test ran first
    a = json.loads(first["test_a_noisy_neighbour.json"])["checks"]["default"]["variants"]
    b = json.loads(first["test_b.json"])["checks"]["default"]["variants"]
    assert a == b


def test_test_files_outside_rootdir_get_folders_that_no_machine_or_stem_clash_changes(pytester):
    """golden/_outside_rootdir/<module>, the module as pytest's default import mode names it.
    Under ``--import-mode=importlib`` a test file in no package is imported under a name built
    from its absolute path: its goldens went to a folder named after where the checkout lives.
    It is now named by its path from rootdir, so two such files with one stem (allowed under
    importlib) keep two folders and both pass."""
    project = pytester.mkdir("project")
    (project / "pytest.ini").write_text(INNER_INI)
    far = pytester.mkdir("elsewhere") / "test_far.py"
    far.write_text(TEST)
    ini = ["-c", str(project / "pytest.ini"), f"--rootdir={project}"]

    def recorded():
        return sorted(str(p.relative_to(project)) for p in (project / "golden").rglob("*.json"))

    run_inline(pytester, *ini, "--snapshot-update", far).assert_outcomes(passed=1)
    assert recorded() == ["golden/_outside_rootdir/test_far/test_dense.json"]
    shutil.rmtree(project / "golden")
    other = pytester.mkdir("other") / "test_far.py"
    other.write_text(TEST.replace("units=[10, 5]", "units=[10, 3]"))
    importlib = [*ini, "--import-mode=importlib", far, other]
    run_inline(pytester, *importlib, "--snapshot-update").assert_outcomes(passed=2)
    assert recorded() == [
        "golden/_outside_rootdir/_up.elsewhere.test_far/test_dense.json",
        "golden/_outside_rootdir/_up.other.test_far/test_dense.json",
    ]
    assert str(pytester.path).strip("/").split("/")[0] not in " ".join(recorded())
    run_inline(pytester, *importlib).assert_outcomes(passed=2)
