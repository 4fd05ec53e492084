"""A hostile pass on the seals in inner sessions: what ``--snapshot-update`` does with a
damaged seal, and what a passing run then measures."""

import json

from .helpers import COUNTING, TEST, golden_of, load_for_inline, run_inline

load_for_inline()  # the NumPy sessions here run in this process


def test_an_update_repairs_a_damaged_seal_once_and_a_passing_run_then_measures_nothing(pytester):
    pytester.makepyfile(test_dense=TEST)
    pytester.makeconftest(COUNTING)
    log = pytester.path / "measured.txt"
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    path = golden_of(pytester)
    recorded = path.read_text()
    document = json.loads(recorded)
    record = document["checks"]["default"]["variants"]["units=5"]["outputs"]["output"]
    record["digest"] = "crc32:00000000"  # as a bad merge leaves it
    path.write_text(json.dumps(document, indent=2))

    log.write_text("")
    run_inline(pytester).assert_outcomes(passed=1)
    assert log.read_text().split() == ["output"]  # the damaged seal's output is measured

    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert path.read_text() == recorded  # this run's seal is back, nothing else moved
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert path.read_text() == recorded  # and a second update writes nothing

    log.write_text("")
    run_inline(pytester).assert_outcomes(passed=1)
    assert log.read_text() == ""
