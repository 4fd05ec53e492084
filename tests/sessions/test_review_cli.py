"""The review workflow: ``python -m pytest_weightshape diff`` and ``show`` after inner pytest
sessions (subprocesses)."""

import re

from .helpers import BODY, TEST, drifted_suite, load_for_inline, run_inline, run_module

load_for_inline()  # the NumPy sessions here run in this process


def test_diff_shows_what_an_update_would_change_and_show_prints_a_golden(pytester):
    pytester.makeini("[pytest]\naddopts = --snapshot-no-colors\n")  # with the cache provider
    drifted_suite(pytester, inline=True)
    run_inline(pytester).assert_outcomes(passed=1, failed=2)
    diff = run_module("diff", cwd=pytester.path)
    assert diff.returncode == 0, diff.stderr
    out = diff.stdout
    assert "~ test_dense.py::test_dense: would rewrite golden/test_dense/test_dense.json" in out
    assert re.search(r"units=10\s+output\s+\w+\s+\S+\s+\S+", out)  # a moved statistic row
    assert "likely cause: initial weights changed" in out
    assert "+ test_dense.py::test_new: would record golden/test_dense/test_new.json" in out
    assert "units=12  output  [8, 12]" in out
    assert "2 goldens would change with --snapshot-update; unchanged: 1 passed" in out
    assert run_module("diff", "--exit-code", cwd=pytester.path).returncode == 1
    listed = run_module("diff", "--all", cwd=pytester.path).stdout
    assert "= test_dense.py::test_other: holds" in listed

    # the golden changed after the run: diff does not pretend to know
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider --snapshot-no-colors\n")
    run_inline(pytester, "--snapshot-update", "test_dense.py::test_dense").assert_outcomes(passed=1)
    stale = run_module("diff", cwd=pytester.path).stdout
    assert "? test_dense.py::test_dense: the golden changed since the last run" in stale

    shown = run_module("show", "golden/test_dense/test_dense.json", cwd=pytester.path)
    assert shown.returncode == 0, shown.stderr
    for text in (
        "golden/test_dense/test_dense.json: golden of test_dense (1 check)",
        "parameters",
        "parameter count: units=10 170, units=5 85",
        "output output (units=10: [8, 10], units=5: [8, 5])",
        "divergence of output from the base (units=10)",
    ):
        assert text in shown.stdout
    assert re.search(r"\n  units=5\s+kernel\s+\[16, 5\]\s+float32\n", shown.stdout)
    assert re.search(r"\n  mean\s+-?\d", shown.stdout)
    missing = run_module("show", "golden/nope.json", cwd=pytester.path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_diff_without_a_last_run_says_what_to_do(tmp_path):
    result = run_module("diff", cwd=tmp_path)
    assert result.returncode == 2
    assert "no last run found" in result.stderr and "run pytest first" in result.stderr


def test_diff_finds_the_cache_dir_an_ini_file_sets(pytester):
    pytester.makeini("[pytest]\naddopts = --snapshot-no-colors\ncache_dir = build/cache\n")
    drifted_suite(pytester, inline=True)
    run_inline(pytester).assert_outcomes(passed=1, failed=2)
    assert not (pytester.path / ".pytest_cache").exists()
    (pytester.path / "sub").mkdir()
    diff = run_module("diff", cwd=pytester.path / "sub")  # found from below the ini's folder
    assert diff.returncode == 0, diff.stderr
    assert "2 goldens would change with --snapshot-update" in diff.stdout


def test_the_last_run_cache_keeps_other_tests_observations(pytester):
    pytester.makeini("[pytest]\naddopts = --snapshot-no-colors\n")
    pytester.makepyfile(test_dense=TEST + BODY.replace("def test_dense(", "def test_twin("))
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=2)
    pytester.makepyfile(
        test_dense=TEST.replace("SCALE = 1.0", "SCALE = 1.001")
        + BODY.replace("def test_dense(", "def test_twin(")
    )
    run_inline(pytester).assert_outcomes(failed=2)
    assert "2 goldens would change" in run_module("diff", cwd=pytester.path).stdout
    run_inline(pytester, "--snapshot-update", "test_dense.py::test_dense").assert_outcomes(passed=1)
    after = run_module("diff", cwd=pytester.path).stdout
    assert "~ test_dense.py::test_twin: would rewrite" in after  # still there to review
    assert "1 golden would change" in after and "observations of 2 checks" in after


def test_show_takes_folders_and_names_a_missing_check(pytester):
    pytester.makepyfile(test_dense=TEST + BODY.replace("def test_dense(", "def test_twin("))
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=2)
    both = run_module("show", "golden", cwd=pytester.path)
    assert both.returncode == 0 and both.stdout.count(": golden of test_") == 2
    wrong = run_module(
        "show", "golden/test_dense/test_dense.json", "--check", "nope", cwd=pytester.path
    )
    assert wrong.returncode == 2 and "has no check 'nope' (it has: default)" in wrong.stderr
