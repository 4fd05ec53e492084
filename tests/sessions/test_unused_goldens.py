"""Goldens no test uses any more (deleted files, renamed tests): reported, removed by an update,
and never cleaned from a folder another project shares."""

import sys

import pytest

from .helpers import BODY, TEST, golden_of, load_for_inline, run_inline, run_numpy

load_for_inline()  # the NumPy sessions here run in this process


def _orphan_setup(pytester):
    sub = pytester.path / "tests" / "sub"
    sub.mkdir(parents=True)
    (sub / "test_gone.py").write_text(TEST)
    (pytester.path / "tests" / "test_kept.py").write_text(TEST)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=2)
    orphan = pytester.path / "golden" / "tests" / "sub" / "test_gone" / "test_dense.json"
    assert orphan.exists()
    (sub / "test_gone.py").unlink()
    return orphan


def test_goldens_of_deleted_test_files_are_reported_and_removed_by_update(pytester):
    orphan = _orphan_setup(pytester)
    kept = pytester.path / "golden" / "tests" / "test_kept" / "test_dense.json"
    unreadable = orphan.parent.parent / "test_broken" / "test_x.json"
    unreadable.parent.mkdir()
    unreadable.write_text("{ not json")

    result = run_inline(pytester)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # like syrupy's unused snapshots
    result.stdout.fnmatch_lines(
        [
            "1 golden file of deleted test files unused (--snapshot-update removes them):",
            "  golden/tests/sub/test_gone/test_dense.json",
        ]
    )
    warned = run_inline(pytester, "--snapshot-warn-unused")
    assert warned.ret == pytest.ExitCode.OK and "test_gone" in warned.stdout.str()
    for narrowed in (["tests/test_kept.py"], ["tests/test_kept.py::test_dense"], ["golden"]):
        quiet = run_inline(pytester, *narrowed)  # files, node ids, other folders: not in scope
        assert "test_gone" not in quiet.stdout.str()
        assert quiet.ret == (pytest.ExitCode.NO_TESTS_COLLECTED if narrowed == ["golden"] else 0)
    for scoped in (["tests/sub"], ["-k", "dense"], ["-m", "shape_variant"]):
        assert (
            "test_gone" in run_inline(pytester, *scoped).stdout.str()
        )  # the file is gone either way

    updated = run_inline(pytester, "--snapshot-update")
    assert updated.ret == pytest.ExitCode.OK
    updated.stdout.fnmatch_lines(["1 golden file of deleted test files removed:"])
    assert not orphan.exists() and not orphan.parent.exists()  # and its empty folder
    assert kept.exists() and unreadable.exists()  # never delete what we cannot read
    assert run_inline(pytester).ret == pytest.ExitCode.OK


def test_goldens_of_a_renamed_test_are_unused_and_removed_by_update(pytester):
    pytester.makepyfile(test_dense=TEST)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    old = golden_of(pytester)
    pytester.makepyfile(test_dense=TEST.replace("def test_dense(", "def test_wide("))
    plain = run_inline(pytester)
    plain.assert_outcomes(failed=1)  # the renamed test has no golden yet
    plain.stdout.fnmatch_lines(["*1 snapshot unused*"])
    assert old.exists()
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert not old.exists() and golden_of(pytester, test="test_wide").exists()
    assert run_inline(pytester).ret == pytest.ExitCode.OK


def test_a_golden_folder_shared_by_two_projects_is_never_cleaned_from_one(pytester):
    shared = pytester.path / "shared_golden"
    for project in ("a", "b"):
        folder = pytester.path / project
        (folder / "tests").mkdir(parents=True)
        (folder / "tests" / f"test_{project}.py").write_text(TEST)
        (folder / "pytest.ini").write_text(
            "[pytest]\naddopts = -p no:cacheprovider\nweightshape_golden_dir = ../shared_golden\n"
        )
    for project in ("a", "b", "a"):
        result = pytester.run(
            sys.executable, "-m", "pytest", "--snapshot-update", str(pytester.path / project)
        )
        assert result.ret == 0
    assert sorted(p.parent.name for p in shared.rglob("*.json")) == ["test_a", "test_b"]


def test_disabling_unused_detection_also_skips_deleted_files(pytester):
    orphan = _orphan_setup(pytester)
    result = run_inline(pytester, "--snapshot-disable-unused")
    assert result.ret == pytest.ExitCode.OK and "test_gone" not in result.stdout.str()
    assert orphan.exists()


def test_with_syrupy_disabled_no_golden_is_called_unused(pytester):
    """-p no:syrupy: nothing manages goldens in this run, so none is judged (the options the
    message would suggest do not exist then)."""
    _orphan_setup(pytester)
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")  # no syrupy options
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = run_inline(pytester, "-p", "no:syrupy", "test_plain.py", "tests/sub")
    out = result.stdout.str()
    assert result.ret == 0, out
    assert "of deleted test files" not in out and "Traceback" not in out


def test_goldens_of_a_renamed_test_are_unused_with_path_arguments_too(pytester):
    """``pytest tests``, ``pytest tests/``, ``pytest tests/test_a.py`` collect the whole file:
    the golden of a test it no longer has is unused, and an update removes it; a node id or a
    ``-k`` subset never judges (nor deletes) another test's golden."""
    tests = pytester.path / "tests"
    tests.mkdir()
    (tests / "test_a.py").write_text(TEST + BODY.replace("def test_dense(", "def test_kept("))
    run_inline(pytester, "--snapshot-update", "tests").assert_outcomes(passed=2)
    old = pytester.path / "golden" / "tests" / "test_a" / "test_dense.json"
    kept = old.with_name("test_kept.json")
    assert old.exists() and kept.exists()
    (tests / "test_a.py").write_text(
        TEST.replace("def test_dense(", "def test_wide(")
        + BODY.replace("def test_dense(", "def test_kept(")
    )
    run_inline(pytester, "--snapshot-update", "tests/test_a.py::test_wide").assert_outcomes(
        passed=1
    )
    for subset in (["tests/test_a.py::test_kept"], ["tests", "-k", "kept"]):
        quiet = run_inline(pytester, *subset)
        assert quiet.ret == pytest.ExitCode.OK, quiet.stdout.str()
        assert "no longer exist" not in quiet.stdout.str()
    for given in (["tests"], ["tests/"], ["tests/test_a.py"], ["tests", "-n", "2"]):
        result = run_numpy(pytester, *given)
        result.assert_outcomes(passed=2)
        assert result.ret == pytest.ExitCode.TESTS_FAILED, given
        result.stdout.fnmatch_lines(
            [
                "1 golden file of tests that no longer exist unused (--snapshot-update "
                "removes them):",
                "  golden/tests/test_a/test_dense.json",
            ]
        )
    assert old.exists()
    warned = run_inline(pytester, "tests", "--snapshot-warn-unused")
    assert warned.ret == pytest.ExitCode.OK and "test_dense.json" in warned.stdout.str()
    updated = run_inline(pytester, "tests", "--snapshot-update")
    assert updated.ret == pytest.ExitCode.OK
    updated.stdout.fnmatch_lines(["1 golden file of tests that no longer exist removed:"])
    assert not old.exists() and kept.exists() and old.with_name("test_wide.json").exists()
    assert run_inline(pytester, "tests").ret == pytest.ExitCode.OK


CLASS = """
class TestC:
    @pytest.mark.shape_variant(units=[10, 5])
    def test_c(self, shape_variant):
        shape_variant.check(Dense, inputs=(8, 16))
"""
#: A method whose parametrization is broken: its class fails to collect, the module's other
#: tests still do.
BROKEN = CLASS.replace(
    "class TestC:\n",
    "class TestC:\n    @pytest.mark.parametrize('x', [1], ids=['a', 'b'])\n"
    "    def test_bad(self, x):\n        pass\n\n",
)


def test_a_class_that_fails_to_collect_keeps_its_goldens(pytester):
    """``pytest tests --snapshot-update`` while one class of a file fails to collect: its
    tests did not run, so their goldens are not unused (never deleted); the file's other tests
    still pass."""
    tests = pytester.path / "tests"
    tests.mkdir()
    (tests / "test_a.py").write_text(TEST + CLASS)
    run_inline(pytester, "--snapshot-update", "tests").assert_outcomes(passed=2)
    golden = pytester.path / "golden" / "tests" / "test_a" / "TestC.test_c.json"
    assert golden.exists()
    (tests / "test_a.py").write_text(TEST + BROKEN)
    for args in ([], ["--continue-on-collection-errors"], ["-n", "2"]):
        result = run_numpy(pytester, "--snapshot-update", "tests", *args)
        out = result.stdout.str()
        assert "no longer exist" not in out, (args, out)
        assert golden.exists(), args


def test_tests_deselected_by_a_conftest_keep_their_goldens(pytester):
    """A conftest (or plugin) that deselects tests, as ``-k`` does: their goldens are not
    unused, with or without xdist."""
    tests = pytester.path / "tests"
    tests.mkdir()
    (tests / "test_a.py").write_text(TEST + BODY.replace("def test_dense(", "def test_kept("))
    run_inline(pytester, "--snapshot-update", "tests").assert_outcomes(passed=2)
    kept = pytester.path / "golden" / "tests" / "test_a" / "test_kept.json"
    (tests / "conftest.py").write_text(
        "def pytest_collection_modifyitems(config, items):\n"
        "    out = [i for i in items if 'kept' in i.name]\n"
        "    config.hook.pytest_deselected(items=out)\n"
        "    items[:] = [i for i in items if i not in out]\n"
    )
    for args in ([], ["-n", "2"]):
        result = run_numpy(pytester, "--snapshot-update", "tests", *args)
        assert result.ret == pytest.ExitCode.OK and result.parseoutcomes()["passed"] == 1
        assert "no longer exist" not in result.stdout.str(), args
        assert kept.exists(), args


def test_tests_a_conftest_drops_without_deselecting_keep_their_goldens(pytester):
    """The "--runslow" recipe drops tests with ``items[:] = [...]`` and never calls
    ``pytest_deselected``: their goldens are still not unused, whether the run is given paths
    or not, with or without xdist, and a plain run does not call them unused either."""
    tests = pytester.path / "tests"
    tests.mkdir()
    (tests / "test_a.py").write_text(TEST + BODY.replace("def test_dense(", "def test_slow("))
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=2)
    slow = pytester.path / "golden" / "tests" / "test_a" / "test_slow.json"
    (tests / "conftest.py").write_text(
        "def pytest_collection_modifyitems(config, items):\n"
        "    items[:] = [i for i in items if 'slow' not in i.name]\n"
    )
    for args in ([], ["tests"], ["-n", "2"], ["tests", "-n", "2"]):
        result = run_numpy(pytester, "--snapshot-update", *args)
        assert result.ret == pytest.ExitCode.OK and result.parseoutcomes()["passed"] == 1, args
        out = result.stdout.str()
        assert "no longer exist" not in out and "Deleted" not in out, (args, out)
        assert slow.exists(), args
    result = run_inline(pytester)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert "unused" not in result.stdout.str()
