"""What an update may record: strict CI mode, ``--snapshot-update-new-only`` and
``--weightshape-update-failing``, in inner pytest sessions (subprocesses)."""

import json
import shutil

import pytest

from .helpers import (
    TEST,
    assert_clean_failure,
    drifted_suite,
    golden_of,
    load_for_inline,
    run_inline,
)

load_for_inline()  # the NumPy sessions here run in this process


def test_strict_ci_mode_never_records_a_missing_golden(pytester, monkeypatch):
    pytester.makepyfile(test_dense=TEST)
    path = golden_of(pytester)
    monkeypatch.setenv("CI", "true")
    for args in ([], ["--snapshot-update"], ["--snapshot-update-new-only"]):
        result = run_inline(pytester, *args)
        result.assert_outcomes(failed=1)
        out = assert_clean_failure(result)
        assert "Strict mode (the CI environment variable or --weightshape-strict)" in out
        assert "pytest --snapshot-update test_dense.py::test_dense" in out
        assert "generated" not in out  # syrupy is not asked to record it either
        assert not path.exists()
    header = run_inline(pytester, "-o", "weightshape_strict=false", "--snapshot-update")
    header.assert_outcomes(passed=1)  # a job meant to record can say so
    assert path.exists()
    result = run_inline(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["weightshape: *strict (CI environment variable)*"])
    # an explicit update of an existing golden is still honoured in CI
    pytester.makepyfile(test_dense=TEST.replace("SCALE = 1.0", "SCALE = 1.001"))
    run_inline(pytester).assert_outcomes(failed=1)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    run_inline(pytester).assert_outcomes(passed=1)

    monkeypatch.delenv("CI")
    path.unlink()
    result = run_inline(pytester, "--weightshape-strict", "--snapshot-update")
    result.assert_outcomes(failed=1)
    assert "Strict mode" in result.stdout.str() and not path.exists()
    pytester.makeini(
        "[pytest]\naddopts = -p no:cacheprovider --snapshot-no-colors\n"
        "weightshape_strict = sometimes\n"
    )
    bad = run_inline(pytester)
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*weightshape_strict (ini): expected auto, true or false*"])


def test_update_only_new_or_only_failing_goldens(pytester):
    drifted_suite(pytester, inline=True)
    path = golden_of(pytester)
    before = path.read_bytes()
    gone = pytester.path / "golden" / "test_dense" / "test_removed_long_ago.json"
    shutil.copy(path, gone)  # an unused golden: neither mode deletes it
    text = json.loads(gone.read_text())
    text["test"] = "test_removed_long_ago"
    gone.write_text(json.dumps(text))

    new_only = run_inline(pytester, "--snapshot-update-new-only")
    new_only.assert_outcomes(passed=2, failed=1)  # the drifted one still fails
    assert golden_of(pytester, test="test_new").exists()
    assert path.read_bytes() == before and gone.exists()

    golden_of(pytester, test="test_new").unlink()
    failing = run_inline(pytester, "--weightshape-update-failing")
    failing.assert_outcomes(passed=2, failed=1)  # the missing one fails, unrecorded
    out = assert_clean_failure(failing)
    assert "Not recorded: --weightshape-update-failing" in out and "generated" not in out
    assert path.read_bytes() != before  # the drifted golden was rewritten
    assert not golden_of(pytester, test="test_new").exists() and gone.exists()
    run_inline(pytester, "-k", "not new", "--snapshot-warn-unused").assert_outcomes(passed=2)
