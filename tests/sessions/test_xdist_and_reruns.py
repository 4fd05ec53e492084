"""Sessions in pieces: pytest-xdist workers, pytest-rerunfailures, runs that stop early, and
the summary and JUnit properties the session ends with."""

import json
import textwrap
from xml.etree import ElementTree

import pytest

from .helpers import DENSE, TEST, golden_of, run


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


def test_goldens_of_an_xdist_worker_that_crashed_are_not_written_and_say_so(pytester, monkeypatch):
    """A worker that dies (an OOM kill, ``os._exit``) never flushes the goldens of the tests it
    ran before: their checks are ``not written``, each named with why, and the summary's
    counts are what is on disk (it said "updated" for every check)."""
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_dense=DENSE
        + textwrap.dedent(
            """
            import os

            SCALE = float(os.environ.get("SCALE", "1"))

            @pytest.mark.parametrize("k", range(12))
            @pytest.mark.shape_variant(units=[10, 5])
            def test_p(shape_variant, k):
                if os.environ.get("CRASH") == str(k) and not os.path.exists("crashed"):
                    if os.environ.get("ONCE"):  # a rerun of this test then passes
                        open("crashed", "w").close()
                    os._exit(1)
                shape_variant.check(Dense, inputs=(8, 16))
            """
        )
    )
    run(pytester, "-n", "2", "--snapshot-update").assert_outcomes(passed=12)
    folder = pytester.path / "golden" / "test_dense"
    before = {f.name: f.read_bytes() for f in folder.iterdir()}
    monkeypatch.setenv("CRASH", "9")
    monkeypatch.setenv("SCALE", "1.001")  # every golden must be rewritten
    result = run(pytester, "-n", "2", "--snapshot-update", "--weightshape-report=r.json")
    assert result.ret != 0
    after = {f.name: f.read_bytes() for f in folder.iterdir()}
    unchanged = {name[:-5] for name in after if after[name] == before[name]}
    checks = json.loads((pytester.path / "r.json").read_text())["checks"]
    status = {c["nodeid"].split("::")[1]: c["status"] for c in checks}
    assert "test_p[9]" not in status and "test_p[9]" in unchanged  # it died in its test
    assert {t for t, s in status.items() if s == "not written"} == unchanged - {"test_p[9]"}
    assert all(s in ("updated", "not written") for s in status.values()), status
    lost = sorted(t for t, s in status.items() if s == "not written")
    assert lost, "the crashed worker ran no test before test_p[9]"
    out = result.stdout.str()
    assert f"{len(lost)} golden{'s' if len(lost) != 1 else ''} not written" in out
    for test in lost:
        assert f"golden/test_dense/{test}.json (test_dense.py::{test}): its xdist worker" in out

    # with reruns, the crashed test passes when run again: the lost goldens still fail the run
    monkeypatch.setenv("ONCE", "1")
    monkeypatch.setenv("SCALE", "1.002")
    result = run(pytester, "-n", "2", "--snapshot-update", "--reruns=1")
    out = result.stdout.str()
    assert result.parseoutcomes().get("failed", 0) == 0 and "rerun" in out, out
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    assert "not written (fix the cause" in out and "its xdist worker" in out
