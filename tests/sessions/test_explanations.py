"""Explanations a user can trust (issue 16): degenerate goldens warn when recorded and ``show``
marks them; every golden states what it detects; an older golden says it does not."""

import json
import textwrap

from .helpers import DENSE, TEST, golden_of, load_for_inline, run_inline, run_module

load_for_inline()  # the NumPy sessions here run in this process

SATURATED = DENSE + textwrap.dedent(
    """
    class Softmax(Dense):
        def __call__(self, x):
            logits = (x @ self.kernel) * 1e-12  # a freshly initialised classifier's head
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            return {"probs": e / e.sum(axis=1, keepdims=True), "logits": logits * 1e12}

    @pytest.mark.shape_variant(units=[10, 5])
    def test_head(shape_variant):
        shape_variant.check(Softmax, inputs=(8, 16))
    """
)


def test_a_degenerate_output_warns_when_recorded_and_show_marks_it(pytester):
    pytester.makepyfile(test_head=SATURATED)
    result = run_inline(pytester, "--snapshot-update", "-W", "always")
    result.assert_outcomes(passed=1, warnings=2)
    out = result.stdout.str()
    for variant in ("units=10", "units=5"):
        assert (
            f"WeightShapeWarning: test_head.py::test_head [default]: {variant}, output 'probs' "
            "is degenerate (" in out
        )
    assert "cannot detect a change of the weights" in out
    # each warning points at the test's call of check(), not into the plugin
    assert out.count("test_head.py:24: WeightShapeWarning: test_head.py::test_head") == 2
    assert "fixture.py" not in out
    assert "output 'logits'" not in out  # the logits vary: not degenerate
    assert "1 golden with degenerate outputs" in out
    # comparing against it later does not warn again
    again = run_inline(pytester, "-W", "always")
    again.assert_outcomes(passed=1)
    assert "WeightShapeWarning" not in again.stdout.str()
    shown = run_module("show", "golden/test_head/test_head.json", cwd=pytester.path).stdout
    assert "output probs (units=10: [8, 10], units=5: [8, 5])  [DEGENERATE]" in shown
    assert "! degenerate (units=10): " in shown
    assert "output logits (units=10: [8, 10], units=5: [8, 5])\n" in shown


def test_goldens_state_their_sensitivity_and_older_ones_say_they_do_not(pytester):
    pytester.makepyfile(test_dense=TEST)
    recorded = run_inline(pytester, "--snapshot-update")
    recorded.assert_outcomes(passed=1)
    assert "sensitivity: every golden here fails at a relative change of every weight of " in (
        recorded.stdout.str()
    )
    shown = run_module("show", "golden/test_dense/test_dense.json", cwd=pytester.path).stdout
    assert "sensitivity: noise floor " in shown and " of the output scale; fails at a " in shown
    assert "(under the default tolerance)" in shown
    report = pytester.path / "run.json"
    run_inline(pytester, f"--weightshape-report={report}").assert_outcomes(passed=1)
    (check,) = json.loads(report.read_text())["checks"]
    stated = check["sensitivity"]
    assert stated["stated"] and 0 < stated["floor"] < stated["detects"] < 1e-4

    # an overridden tolerance far above the floor says so
    pytester.makepyfile(test_dense=TEST.replace("inputs=(8, 16))", "inputs=(8, 16), rtol=1e-2)"))
    loose = run_inline(pytester)
    loose.assert_outcomes(passed=1)
    assert "tolerance overridden to rtol 0.01" in loose.stdout.str()

    # a golden recorded before sensitivity was measured: "not stated; re-record"
    path = golden_of(pytester)
    data = json.loads(path.read_text())
    for check in data["checks"].values():
        for variant in check["variants"].values():
            for output in variant["outputs"].values():
                del output["response"], output["floor"]
    path.write_text(json.dumps(data, indent=1))
    pytester.makepyfile(test_dense=TEST)
    old = run_inline(pytester)
    old.assert_outcomes(passed=1)
    assert "1 golden does not state what it detects" in old.stdout.str()
    shown = run_module("show", str(path), cwd=pytester.path).stdout
    assert "sensitivity not stated" in shown and "--snapshot-update adds it" in shown
    # --snapshot-update adds what the older golden lacks and keeps every recorded value; once
    stats_before = {
        (c, v, o): out["stats"]
        for c, check in data["checks"].items()
        for v, variant in check["variants"].items()
        for o, out in variant["outputs"].items()
    }
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    filled = json.loads(path.read_text())
    for (c, v, o), stats in stats_before.items():
        out = filled["checks"][c]["variants"][v]["outputs"][o]
        assert out["stats"] == stats and "response" in out and "floor" in out
    written = path.read_bytes()
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert path.read_bytes() == written


def test_frameworks_the_check_did_not_use_are_not_reported_absent(pytester):
    """A golden recorded in a full session (every framework imported) against a subset run."""
    pytester.makepyfile(test_dense=TEST)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    path = golden_of(pytester)
    data = json.loads(path.read_text())
    (check,) = data["checks"].values()
    check["environment"].update(
        tensorflow="2.21.0", keras="3.15.1", tensorflow_gpus=0, jax="0.10.2", torch="2.13.0"
    )
    path.write_text(json.dumps(data, indent=1))
    result = run_inline(pytester)
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "(absent)" not in out and "recorded under another environment" not in out
    # and a real change says the environment did not change, rather than blaming kernels
    pytester.makepyfile(
        test_dense=TEST.replace("return np.maximum(x @", "return 1.001 * np.maximum(x @")
    )
    failed = run_inline(pytester)
    failed.assert_outcomes(failed=1)
    out = failed.stdout.str()
    assert (
        "likely cause: environment unchanged: the model's computation changed (its code or" in out
    )
    assert "(absent)" not in out and "kernels" not in out


def test_a_device_skip_is_reported_at_the_tests_line(pytester):
    pytester.makepyfile(test_dense=TEST)
    result = run_inline(pytester, "--weightshape-device=cuda:7", "-rs")
    result.assert_outcomes(skipped=1)
    out = result.stdout.str()
    source = (pytester.path / "test_dense.py").read_text().splitlines()
    line = source.index("    shape_variant.check(Dense, inputs=(8, 16))") + 1
    assert f"SKIPPED [1] test_dense.py:{line}: weightshape: cuda:7 was requested" in out
    assert "fixture.py" not in out


def test_weightshape_report_given_twice_writes_each(pytester):
    pytester.makepyfile(test_dense=TEST)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    result = run_inline(
        pytester,
        "--weightshape-report=out/run.json",
        "--weightshape-report=out/run.md",
        "--weightshape-report=out/run.json",  # the same file once
    )
    result.assert_outcomes(passed=1)
    assert json.loads((pytester.path / "out" / "run.json").read_text())["summary"] == {"passed": 1}
    markdown = (pytester.path / "out" / "run.md").read_text()
    assert "### weightshape: 1 check" in markdown
    assert "What each golden detects" in markdown and "sensitivity: noise floor" in markdown
    out = result.stdout.str()
    assert "report: out/run.json, out/run.md" in out
    assert "report out/run.json (command line), report out/run.md (command line)" in out
    bad = run_inline(pytester, "--weightshape-report=a.json", "--weightshape-report=b.txt")
    assert "'b.txt' has no known format" in bad.stderr.str()
