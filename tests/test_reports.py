"""Reports, CI gating and the review workflow, in inner pytest sessions (subprocesses)."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.test_lifecycle import DENSE, TEST, assert_clean_failure, golden_of, run

BODY = TEST.split(DENSE)[1]
OTHER = BODY.replace("def test_dense(", "def test_other(").replace("(8, 16)", "(8, 16), rtol=0.1")
NEW = BODY.replace("def test_dense(", "def test_new(").replace("[10, 5]", "[12, 6, 3]")


def drifted_suite(pytester, *args):
    """test_dense drifts, test_other holds (a loose tolerance), test_new has no golden."""
    pytester.makepyfile(test_dense=TEST + OTHER)
    run(pytester, "--snapshot-update", *args).assert_outcomes(passed=2)
    pytester.makepyfile(test_dense=TEST.replace("SCALE = 1.0", "SCALE = 1.001") + OTHER + NEW)


def strict_json(text):
    def reject(token):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=reject)


def test_json_report_holds_every_statistic_the_divergence_and_both_environments(pytester):
    drifted_suite(pytester)
    result = run(pytester, "--weightshape-report=out/report.json")
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
    script = Path(__file__).resolve().parent.parent / "scripts" / "drift_by_statistic.py"
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
    drifted_suite(pytester)
    summary = pytester.path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run(pytester, "--weightshape-report", "report.md").assert_outcomes(passed=1, failed=2)
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
    drifted_suite(pytester)
    run(pytester, "--weightshape-report=report.html").assert_outcomes(passed=1, failed=2)
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
    run(pytester, "-n", "2", "--snapshot-update").assert_outcomes(passed=6)
    result = run(pytester, "-n", "2", "--weightshape-report=report.json")
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
    result = run(pytester, "--weightshape-report=report.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--weightshape-report (command line): 'report.txt'*.json*"])


def test_strict_ci_mode_never_records_a_missing_golden(pytester, monkeypatch):
    pytester.makepyfile(test_dense=TEST)
    path = golden_of(pytester)
    monkeypatch.setenv("CI", "true")
    for args in ([], ["--snapshot-update"], ["--snapshot-update-new-only"]):
        result = run(pytester, *args)
        result.assert_outcomes(failed=1)
        out = assert_clean_failure(result)
        assert "Strict mode (the CI environment variable or --weightshape-strict)" in out
        assert "pytest --snapshot-update test_dense.py::test_dense" in out
        assert "generated" not in out  # syrupy is not asked to record it either
        assert not path.exists()
    header = run(pytester, "-o", "weightshape_strict=false", "--snapshot-update")
    header.assert_outcomes(passed=1)  # a job meant to record can say so
    assert path.exists()
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["weightshape: *strict (CI environment variable)*"])
    # an explicit update of an existing golden is still honoured in CI
    pytester.makepyfile(test_dense=TEST.replace("SCALE = 1.0", "SCALE = 1.001"))
    run(pytester).assert_outcomes(failed=1)
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    run(pytester).assert_outcomes(passed=1)

    monkeypatch.delenv("CI")
    path.unlink()
    result = run(pytester, "--weightshape-strict", "--snapshot-update")
    result.assert_outcomes(failed=1)
    assert "Strict mode" in result.stdout.str() and not path.exists()
    pytester.makeini(
        "[pytest]\naddopts = -p no:cacheprovider --snapshot-no-colors\n"
        "weightshape_strict = sometimes\n"
    )
    bad = run(pytester)
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*weightshape_strict (ini): expected auto, true or false*"])


def test_update_only_new_or_only_failing_goldens(pytester):
    drifted_suite(pytester)
    path = golden_of(pytester)
    before = path.read_bytes()
    gone = pytester.path / "golden" / "test_dense" / "test_removed_long_ago.json"
    shutil.copy(path, gone)  # an unused golden: neither mode deletes it
    text = json.loads(gone.read_text())
    text["test"] = "test_removed_long_ago"
    gone.write_text(json.dumps(text))

    new_only = run(pytester, "--snapshot-update-new-only")
    new_only.assert_outcomes(passed=2, failed=1)  # the drifted one still fails
    assert golden_of(pytester, test="test_new").exists()
    assert path.read_bytes() == before and gone.exists()

    golden_of(pytester, test="test_new").unlink()
    failing = run(pytester, "--weightshape-update-failing")
    failing.assert_outcomes(passed=2, failed=1)  # the missing one fails, unrecorded
    out = assert_clean_failure(failing)
    assert "Not recorded: --weightshape-update-failing" in out and "generated" not in out
    assert path.read_bytes() != before  # the drifted golden was rewritten
    assert not golden_of(pytester, test="test_new").exists() and gone.exists()
    run(pytester, "-k", "not new", "--snapshot-warn-unused").assert_outcomes(passed=2)


def _orphan_setup(pytester):
    sub = pytester.path / "tests" / "sub"
    sub.mkdir(parents=True)
    (sub / "test_gone.py").write_text(TEST)
    (pytester.path / "tests" / "test_kept.py").write_text(TEST)
    run(pytester, "--snapshot-update").assert_outcomes(passed=2)
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

    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # like syrupy's unused snapshots
    result.stdout.fnmatch_lines(
        [
            "1 golden file of deleted test files unused (--snapshot-update removes them):",
            "  golden/tests/sub/test_gone/test_dense.json",
        ]
    )
    warned = run(pytester, "--snapshot-warn-unused")
    assert warned.ret == pytest.ExitCode.OK and "test_gone" in warned.stdout.str()
    for narrowed in (["tests/test_kept.py"], ["tests/test_kept.py::test_dense"], ["golden"]):
        quiet = run(pytester, *narrowed)  # files, node ids, other folders: not in scope
        assert "test_gone" not in quiet.stdout.str()
        assert quiet.ret == (pytest.ExitCode.NO_TESTS_COLLECTED if narrowed == ["golden"] else 0)
    for scoped in (["tests/sub"], ["-k", "dense"], ["-m", "shape_variant"]):
        assert "test_gone" in run(pytester, *scoped).stdout.str()  # the file is gone either way

    updated = run(pytester, "--snapshot-update")
    assert updated.ret == pytest.ExitCode.OK
    updated.stdout.fnmatch_lines(["1 golden file of deleted test files removed:"])
    assert not orphan.exists() and not orphan.parent.exists()  # and its empty folder
    assert kept.exists() and unreadable.exists()  # never delete what we cannot read
    assert run(pytester).ret == pytest.ExitCode.OK


def _module(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "pytest_weightshape", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "CI"},
    )


def test_diff_shows_what_an_update_would_change_and_show_prints_a_golden(pytester):
    pytester.makeini("[pytest]\naddopts = --snapshot-no-colors\n")  # with the cache provider
    drifted_suite(pytester)
    run(pytester).assert_outcomes(passed=1, failed=2)
    diff = _module("diff", cwd=pytester.path)
    assert diff.returncode == 0, diff.stderr
    out = diff.stdout
    assert "~ test_dense.py::test_dense: would rewrite golden/test_dense/test_dense.json" in out
    assert re.search(r"units=10\s+output\s+\w+\s+\S+\s+\S+", out)  # a moved statistic row
    assert "likely cause: initial weights changed" in out
    assert "+ test_dense.py::test_new: would record golden/test_dense/test_new.json" in out
    assert "units=12  output  [8, 12]" in out
    assert "2 goldens would change with --snapshot-update; unchanged: 1 passed" in out
    assert _module("diff", "--exit-code", cwd=pytester.path).returncode == 1
    listed = _module("diff", "--all", cwd=pytester.path).stdout
    assert "= test_dense.py::test_other: holds" in listed

    # the golden changed after the run: diff does not pretend to know
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider --snapshot-no-colors\n")
    run(pytester, "--snapshot-update", "test_dense.py::test_dense").assert_outcomes(passed=1)
    stale = _module("diff", cwd=pytester.path).stdout
    assert "? test_dense.py::test_dense: the golden changed since the last run" in stale

    shown = _module("show", "golden/test_dense/test_dense.json", cwd=pytester.path)
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
    missing = _module("show", "golden/nope.json", cwd=pytester.path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_diff_without_a_last_run_says_what_to_do(tmp_path):
    result = _module("diff", cwd=tmp_path)
    assert result.returncode == 2
    assert "no last run found" in result.stderr and "run pytest first" in result.stderr


def test_diff_finds_the_cache_dir_an_ini_file_sets(pytester):
    pytester.makeini("[pytest]\naddopts = --snapshot-no-colors\ncache_dir = build/cache\n")
    drifted_suite(pytester)
    run(pytester).assert_outcomes(passed=1, failed=2)
    assert not (pytester.path / ".pytest_cache").exists()
    (pytester.path / "sub").mkdir()
    diff = _module("diff", cwd=pytester.path / "sub")  # found from below the ini's folder
    assert diff.returncode == 0, diff.stderr
    assert "2 goldens would change with --snapshot-update" in diff.stdout


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pytest.toml", '[pytest]\ncache_dir = "$CACHE_ROOT/c"\n'),
        ("pytest.ini", "[pytest]\ncache_dir = $CACHE_ROOT/c\n"),
        ("pyproject.toml", '[tool.pytest.ini_options]\ncache_dir = "$CACHE_ROOT/c"\n'),
        ("pyproject.toml", '[tool.pytest]\ncache_dir = "$CACHE_ROOT/c"\n'),
        ("tox.ini", "[pytest]\ncache_dir = $CACHE_ROOT/c\n"),
        ("setup.cfg", "[tool:pytest]\ncache_dir = $CACHE_ROOT/c\n"),
    ],
)
def test_diff_reads_cache_dir_from_every_pytest_configuration_file(
    tmp_path, monkeypatch, name, text
):
    from pytest_weightshape.cli import configured_cache_dir

    monkeypatch.setenv("CACHE_ROOT", "out")
    (tmp_path / name).write_text(text)
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert configured_cache_dir(tmp_path / "a" / "b") == tmp_path / "out" / "c"


def test_diff_takes_the_configuration_file_pytest_would_take(tmp_path):
    from pytest_weightshape.cli import configured_cache_dir

    (tmp_path / "tox.ini").write_text("[pytest]\ncache_dir = outer\n")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "pyproject.toml").write_text("[project]\nname = 'x'\n")  # no pytest table
    (inner / "setup.cfg").write_text("[metadata]\nname = x\n")  # no [tool:pytest]
    assert configured_cache_dir(inner) == tmp_path / "outer"
    (inner / "pytest.ini").write_text("[pytest]\naddopts = -q\n")  # counts, sets nothing
    assert configured_cache_dir(inner) is None


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def test_html_pictures_show_in_a_real_browser(pytester, tmp_path):
    """Render the report headless in Chromium and look at the screenshot's pixels."""
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    image = pytest.importorskip("PIL.Image")
    drifted_suite(pytester)
    run(pytester, "--weightshape-report=report.html").assert_outcomes(passed=1, failed=2)
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,1600",
            f"--screenshot={shot}",
            (pytester.path / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixels = image.open(shot).convert("RGB")
    colors = pixels.getcolors(maxcolors=1 << 20)
    counts = {rgb: n for n, rgb in colors}

    def near(target, tol=12):
        return sum(
            n
            for rgb, n in counts.items()
            if all(abs(a - b) <= tol for a, b in zip(rgb, target, strict=True))
        )

    # the drifted check's drift bars (red), the base variant's quantile line (blue), the
    # second variant's (orange): each a real area of pixels on screen
    assert near((0xD6, 0x27, 0x28)) > 2000
    assert near((0x1F, 0x77, 0xB4)) > 300
    assert near((0xFF, 0x7F, 0x0E)) > 300
    assert len(counts) > 50  # not a blank or error page


def test_goldens_of_a_renamed_test_are_unused_and_removed_by_update(pytester):
    pytester.makepyfile(test_dense=TEST)
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    old = golden_of(pytester)
    pytester.makepyfile(test_dense=TEST.replace("def test_dense(", "def test_wide("))
    plain = run(pytester)
    plain.assert_outcomes(failed=1)  # the renamed test has no golden yet
    plain.stdout.fnmatch_lines(["*1 snapshot unused*"])
    assert old.exists()
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert not old.exists() and golden_of(pytester, test="test_wide").exists()
    assert run(pytester).ret == pytest.ExitCode.OK


def test_exact_tolerance_reports_and_diffs_without_infinities(pytester):
    """rtol=0, atol=0: equal values have ratio 0, moved ones an infinite one, and neither
    breaks the report, the JUnit property or ``diff``."""
    pytester.makeini("[pytest]\naddopts = --snapshot-no-colors\n")  # with the cache provider
    exact = TEST.replace("(8, 16))", "(8, 16), rtol=0, atol=0)")
    pytester.makepyfile(test_dense=exact)
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    run(pytester, "--weightshape-report=same.json").assert_outcomes(passed=1)
    same = strict_json((pytester.path / "same.json").read_text())["checks"][0]
    ratios = {s["ratio"] for s in same["statistics"] if s["allowed"] is not None}
    assert ratios == {0.0} and same["worst"] == 0.0

    pytester.makepyfile(test_dense=exact.replace("SCALE = 1.0", "SCALE = 1.0000001"))
    result = run(pytester, "--weightshape-report=moved.json", "--junitxml=junit.xml")
    result.assert_outcomes(failed=1)
    moved = strict_json((pytester.path / "moved.json").read_text())["checks"][0]
    assert moved["worst"] == "inf" and "Infinity" not in (pytester.path / "junit.xml").read_text()
    diff = _module("diff", cwd=pytester.path)
    assert diff.returncode == 0, diff.stderr
    assert "~ test_dense.py::test_dense: would rewrite" in diff.stdout


def test_the_last_run_cache_keeps_other_tests_observations(pytester):
    pytester.makeini("[pytest]\naddopts = --snapshot-no-colors\n")
    pytester.makepyfile(test_dense=TEST + BODY.replace("def test_dense(", "def test_twin("))
    run(pytester, "--snapshot-update").assert_outcomes(passed=2)
    pytester.makepyfile(
        test_dense=TEST.replace("SCALE = 1.0", "SCALE = 1.001")
        + BODY.replace("def test_dense(", "def test_twin(")
    )
    run(pytester).assert_outcomes(failed=2)
    assert "2 goldens would change" in _module("diff", cwd=pytester.path).stdout
    run(pytester, "--snapshot-update", "test_dense.py::test_dense").assert_outcomes(passed=1)
    after = _module("diff", cwd=pytester.path).stdout
    assert "~ test_dense.py::test_twin: would rewrite" in after  # still there to review
    assert "1 golden would change" in after and "observations of 2 checks" in after


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
    result = run(pytester, "--snapshot-update", "--weightshape-report=r.json")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["1 check: 1 not written"])
    report = strict_json((pytester.path / "r.json").read_text())
    assert report["summary"] == {"not written": 1}
    assert not golden_of(pytester).exists()


def test_errors_are_reported_with_their_golden_and_a_run_without_checks_still_reports(pytester):
    pytester.makepyfile(
        test_dense=TEST.replace(
            "shape_variant.check(Dense,", "shape_variant.check(lambda units: 1 / 0,"
        )
    )
    result = run(pytester, "--weightshape-report=r.json")
    result.assert_outcomes(failed=1)
    error = strict_json((pytester.path / "r.json").read_text())["checks"][0]
    assert (
        error["status"] == "error" and error["golden_path"] == "golden/test_dense/test_dense.json"
    )
    assert "ZeroDivisionError" in error["message"]

    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    empty = run(pytester, "test_plain.py", "--weightshape-report=empty.md")
    empty.assert_outcomes(passed=1)
    assert "No shape_variant checks ran." in (pytester.path / "empty.md").read_text()
    empty.stdout.fnmatch_lines(["weightshape: no checks ran; report: empty.md"])


def test_an_unwritable_report_is_a_message_not_a_traceback(pytester):
    pytester.makepyfile(test_dense=TEST)
    (pytester.path / "taken").write_text("a file, not a folder")
    result = run(pytester, "--snapshot-update", "--weightshape-report=taken/r.html")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 check: 1 recorded", "weightshape: report not written: *"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert golden_of(pytester).exists()  # the run's own work is done


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
    result = run(pytester, "--snapshot-disable-unused")
    assert result.ret == pytest.ExitCode.OK and "test_gone" not in result.stdout.str()
    assert orphan.exists()


def test_show_takes_folders_and_names_a_missing_check(pytester):
    pytester.makepyfile(test_dense=TEST + BODY.replace("def test_dense(", "def test_twin("))
    run(pytester, "--snapshot-update").assert_outcomes(passed=2)
    both = _module("show", "golden", cwd=pytester.path)
    assert both.returncode == 0 and both.stdout.count(": golden of test_") == 2
    wrong = _module(
        "show", "golden/test_dense/test_dense.json", "--check", "nope", cwd=pytester.path
    )
    assert wrong.returncode == 2 and "has no check 'nope' (it has: default)" in wrong.stderr
