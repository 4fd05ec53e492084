"""Reports of a session (JSON, Markdown and the GitHub step summary, HTML), in inner pytest
sessions (NumPy only: in this process, but for xdist's)."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ..browser import chromium, near, screenshot
from .helpers import (
    BODY,
    DENSE,
    TEST,
    drifted_suite,
    golden_of,
    load_for_inline,
    run_module,
    run_numpy,
)

load_for_inline()  # the NumPy sessions here run in this process (xdist ones in a subprocess)


def strict_json(text):
    def reject(token):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=reject)


def test_json_report_holds_every_statistic_the_divergence_and_both_environments(pytester):
    drifted_suite(pytester, inline=True)
    result = run_numpy(pytester, "--weightshape-report=out/report.json")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["report: out/report.json"])
    report = strict_json((pytester.path / "out" / "report.json").read_text())
    assert report["summary"] == {"drifted": 1, "missing": 1, "passed": 1}
    checks = report["checks"]
    assert [(c["nodeid"], c["status"]) for c in checks] == [  # failing checks first
        ("test_dense.py::test_dense", "drifted"),
        ("test_dense.py::test_new", "missing"),
        ("test_dense.py::test_other", "passed"),
    ]
    drifted, missing, passed = checks
    assert drifted["golden_path"] == "golden/test_dense/test_dense.json"
    assert drifted["worst"] > 1 and drifted["moved"] > 0
    assert any("initial weights changed" in c for c in drifted["causes"])
    moved = [s for s in drifted["statistics"] if not s["ok"]]
    held = [s for s in passed["statistics"] if s["allowed"] is not None]
    assert len(moved) == drifted["moved"] and held and all(s["ok"] for s in held)
    for s in moved + held:
        assert set(s) >= {"variant", "where", "stat", "golden", "current", "difference", "allowed"}
    for s in moved:
        if s["allowed"] is not None:
            assert abs(s["current"] - s["golden"] - s["difference"]) < 1e-12
            assert abs(s["difference"]) > s["allowed"] and s["ratio"] > 1
    assert len(passed["statistics"]) == passed["compared"] or passed["compared"] > 0
    assert set(passed["divergence"]) == {"units=5"}
    assert "cka" in passed["divergence"]["units=5"]["outputs"]["output"]
    for c in (drifted, passed):
        assert c["environment"]["golden"]["numpy"] == c["environment"]["run"]["numpy"]
    assert missing["environment"]["golden"] is None and missing["statistics"] == []
    assert "no golden for the check of test_new" in missing["message"]
    dist = missing["distributions"]["current"]
    assert set(dist) == {"units=12", "units=6", "units=3"}
    assert set(dist["units=6"]["output"]["quantiles"]) == {
        "0.0", "0.01", "0.05", "0.25", "0.5", "0.75", "0.95", "0.99", "1.0"
    }  # fmt: skip

    # the per-statistic drift table the README's drift figures come from
    script = Path(__file__).resolve().parents[2] / "scripts" / "drift_by_statistic.py"
    table = subprocess.run(
        [sys.executable, str(script), str(pytester.path / "out" / "report.json")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in table.splitlines()[3:]}
    assert float(rows["std"][3].rstrip(" |")) > 1  # the drifted check moved std beyond tolerance
    assert float(rows["div.cka"][2]) >= 0 and "div.cka" in rows


def test_markdown_report_and_github_step_summary(pytester, monkeypatch):
    drifted_suite(pytester, inline=True)
    summary = pytester.path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run_numpy(pytester, "--weightshape-report", "report.md").assert_outcomes(passed=1, failed=2)
    markdown = (pytester.path / "report.md").read_text()
    assert markdown.startswith("### weightshape: 3 checks (1 drifted, 1 missing, 1 passed)")
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert rows[1].startswith("| ❌ | `test_dense.py::test_dense` | drifted |")
    assert "| ❌ | `test_dense.py::test_new` | missing |" in markdown
    assert "| ✅ | `test_dense.py::test_other` | passed |" in markdown
    assert "initial weights changed" in markdown
    assert "<summary><code>test_dense.py::test_dense</code>:" in markdown
    step = summary.read_text()
    assert step.startswith("earlier step\n") and markdown in step  # appended, kept earlier steps


def test_html_report_is_self_contained_with_pictures_failing_first(pytester):
    drifted_suite(pytester, inline=True)
    run_numpy(pytester, "--weightshape-report=report.html").assert_outcomes(passed=1, failed=2)
    page = (pytester.path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"<(script|link|img|iframe)\b", page)  # no assets to fetch
    assert not re.search(r"\b(src|href)=\"(?!#)", page)
    sections = page.split('<section class="check"')[1:]
    assert [re.search(r"<code>(.*?)</code>", s).group(1) for s in sections] == [
        "test_dense.py::test_dense",
        "test_dense.py::test_new",
        "test_dense.py::test_other",
    ]
    drifted, missing, passed = sections
    # a quantile plot of the output and a drift chart with the tolerance line
    assert drifted.count("<svg") == 2 and "tolerance</text>" in drifted
    assert 'stroke-dasharray="5,4"' in drifted  # the golden's quantiles, dashed
    red_bar = re.compile(r'<rect[^>]*fill="#d62728"')  # a statistic beyond its tolerance
    assert red_bar.search(drifted) and not red_bar.search(passed)
    assert "<summary>pictures</summary>" in passed  # passing checks: pictures one click away
    assert "<summary>pictures</summary>" not in drifted
    assert missing.count("<svg") == 1  # nothing to compare with: the distributions only
    assert passed.count("<svg") == 2


def test_one_merged_report_and_summary_under_xdist(pytester):
    pytest.importorskip("xdist")
    body = "".join(BODY.replace("def test_dense(", f"def test_dense_{u}(") for u in range(6))
    pytester.makepyfile(test_dense=DENSE + body)
    run_numpy(pytester, "-n", "2", "--snapshot-update").assert_outcomes(passed=6)
    result = run_numpy(pytester, "-n", "2", "--weightshape-report=report.json")
    result.assert_outcomes(passed=6)
    assert result.stdout.str().count("= weightshape =") == 1
    result.stdout.fnmatch_lines(["6 checks: 6 passed"])
    report = strict_json((pytester.path / "report.json").read_text())
    assert report["summary"] == {"passed": 6}
    assert sorted(c["nodeid"] for c in report["checks"]) == [
        f"test_dense.py::test_dense_{u}" for u in range(6)
    ]


def test_a_report_name_without_a_known_format_is_a_usage_error(pytester):
    pytester.makepyfile(test_dense=TEST)
    result = run_numpy(pytester, "--weightshape-report=report.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--weightshape-report (command line): 'report.txt'*.json*"])


def test_html_pictures_show_in_a_real_browser(pytester, tmp_path):
    """Render the report headless in Chromium and look at the screenshot's pixels."""
    browser = chromium()
    drifted_suite(pytester, inline=True)
    run_numpy(pytester, "--weightshape-report=report.html").assert_outcomes(passed=1, failed=2)
    url = (pytester.path / "report.html").as_uri()
    counts = screenshot(browser, url, tmp_path / "report.png", "1280,1600")
    # the drifted check's drift bars (red), the base variant's quantile line (blue), the
    # second variant's (orange): each a real area of pixels on screen
    assert near(counts, (0xD6, 0x27, 0x28)) > 2000
    assert near(counts, (0x1F, 0x77, 0xB4)) > 300
    assert near(counts, (0xFF, 0x7F, 0x0E)) > 300
    assert len(counts) > 50  # not a blank or error page


def test_exact_tolerance_reports_and_diffs_without_infinities(pytester):
    """rtol=0, atol=0: equal values have ratio 0, moved ones an infinite one, and neither
    breaks the report, the JUnit property or ``diff``."""
    pytester.makeini("[pytest]\naddopts = --snapshot-no-colors\n")  # with the cache provider
    exact = TEST.replace("(8, 16))", "(8, 16), rtol=0, atol=0)")
    pytester.makepyfile(test_dense=exact)
    run_numpy(pytester, "--snapshot-update").assert_outcomes(passed=1)
    run_numpy(pytester, "--weightshape-report=same.json").assert_outcomes(passed=1)
    same = strict_json((pytester.path / "same.json").read_text())["checks"][0]
    ratios = {s["ratio"] for s in same["statistics"] if s["allowed"] is not None}
    assert ratios == {0.0} and same["worst"] == 0.0

    pytester.makepyfile(test_dense=exact.replace("SCALE = 1.0", "SCALE = 1.0000001"))
    result = run_numpy(pytester, "--weightshape-report=moved.json", "--junitxml=junit.xml")
    result.assert_outcomes(failed=1)
    moved = strict_json((pytester.path / "moved.json").read_text())["checks"][0]
    assert moved["worst"] == "inf" and "Infinity" not in (pytester.path / "junit.xml").read_text()
    diff = run_module("diff", cwd=pytester.path)
    assert diff.returncode == 0, diff.stderr
    assert "~ test_dense.py::test_dense: would rewrite" in diff.stdout


def test_a_check_whose_test_fails_in_teardown_is_reported_not_written(pytester):
    pytester.makepyfile(
        test_dense=TEST.replace(
            "def test_dense(shape_variant)", "def test_dense(shape_variant, broken)"
        )
        + textwrap.dedent(
            """
            @pytest.fixture
            def broken():
                yield
                raise RuntimeError("teardown fails")
            """
        )
    )
    named = [
        "1 golden not written (fix the cause, then run pytest --snapshot-update again):",
        "  golden/test_dense/test_dense.json (test_dense.py::test_dense): the test failed "
        "after its check (in its teardown)",
    ]
    for args in ([], ["-n", "2"]):  # an xdist controller collects nothing itself
        result = run_numpy(pytester, "--snapshot-update", "--weightshape-report=r.json", *args)
        result.assert_outcomes(passed=1, errors=1)
        result.stdout.fnmatch_lines(["1 check: 1 not written", *named])
        report = strict_json((pytester.path / "r.json").read_text())
        assert report["summary"] == {"not written": 1}, args
        assert "failed after its check (in its teardown)" in report["checks"][0]["message"]
        assert not golden_of(pytester).exists()
    # a golden already there is left as it was, and the summary does not call it updated
    test = pytester.path / "test_dense.py"
    source = test.read_text()
    test.write_text(source.replace(", broken)", ")"))
    run_numpy(pytester, "--snapshot-update").assert_outcomes(passed=1)
    recorded = golden_of(pytester).read_bytes()
    test.write_text(source.replace("units=[10, 5]", "units=[10, 6]"))
    for args in ([], ["-n", "2"]):
        result = run_numpy(pytester, "--snapshot-update", *args)
        result.stdout.fnmatch_lines(["1 check: 1 not written", *named])
        assert golden_of(pytester).read_bytes() == recorded, args


def test_errors_are_reported_with_their_golden_and_a_run_without_checks_still_reports(pytester):
    pytester.makepyfile(
        test_dense=TEST.replace(
            "shape_variant.check(Dense,", "shape_variant.check(lambda units: 1 / 0,"
        )
    )
    result = run_numpy(pytester, "--weightshape-report=r.json")
    result.assert_outcomes(failed=1)
    error = strict_json((pytester.path / "r.json").read_text())["checks"][0]
    assert (
        error["status"] == "error" and error["golden_path"] == "golden/test_dense/test_dense.json"
    )
    assert "ZeroDivisionError" in error["message"]

    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    empty = run_numpy(pytester, "test_plain.py", "--weightshape-report=empty.md")
    empty.assert_outcomes(passed=1)
    assert "No shape_variant checks ran." in (pytester.path / "empty.md").read_text()
    empty.stdout.fnmatch_lines(["weightshape: no checks ran; report: empty.md"])


def test_an_unwritable_report_is_a_message_not_a_traceback(pytester):
    pytester.makepyfile(test_dense=TEST)
    (pytester.path / "taken").write_text("a file, not a folder")
    result = run_numpy(pytester, "--snapshot-update", "--weightshape-report=taken/r.html")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 check: 1 recorded", "weightshape: report not written: *"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert golden_of(pytester).exists()  # the run's own work is done
