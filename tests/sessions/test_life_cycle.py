"""The record / check / update cycle in inner pytest sessions: parametrized tests, named checks,
class-based tests and the commands the failure messages give."""

import importlib.util
import json
import textwrap

import pytest

from .helpers import (
    COUNTING,
    DENSE,
    TEST,
    assert_clean_failure,
    golden_of,
    load_for_inline,
    run,
    run_each,
    run_inline,
)

load_for_inline()  # the NumPy sessions here run in this process


def test_full_life_cycle(pytester):
    pytester.makepyfile(test_dense=TEST)
    path = golden_of(pytester)

    first = run_inline(pytester)
    first.assert_outcomes(failed=1)
    out = assert_clean_failure(first)
    assert "no golden for the check of test_dense" in out
    assert "golden/test_dense/test_dense.json" in out
    assert "pytest --snapshot-update test_dense.py::test_dense" in out
    assert not path.exists()

    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    recorded = path.read_bytes()
    document = json.loads(recorded)
    assert list(document["checks"]["default"]["variants"]) == ["units=10", "units=5"]

    run_inline(pytester).assert_outcomes(passed=1)
    mtime = path.stat().st_mtime_ns
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert path.read_bytes() == recorded and path.stat().st_mtime_ns == mtime  # not rewritten

    pytester.makepyfile(test_dense=TEST.replace("SCALE = 1.0", "SCALE = 1.001"))
    changed = run_inline(pytester)
    changed.assert_outcomes(failed=1)
    out = assert_clean_failure(changed)
    assert "check of test_dense moved beyond tolerance" in out
    assert "likely cause: initial weights changed" in out and "kernel std" in out
    assert "variant units=10 / output" in out and "allowed" in out
    assert path.read_bytes() == recorded  # a failing check never touches the golden

    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert path.read_bytes() != recorded
    run_inline(pytester).assert_outcomes(passed=1)


def test_noise_below_tolerance_passes_and_does_not_rewrite(pytester):
    pytester.makepyfile(test_dense=TEST)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    recorded = golden_of(pytester).read_bytes()
    noisy = TEST.replace(
        "return np.maximum(x @ self.kernel + self.bias, 0.0)",
        "return np.maximum(x @ (self.kernel * np.float32(1 + 2e-7)) + self.bias, 0.0)",
    )
    pytester.makepyfile(test_dense=noisy)
    run_inline(pytester).assert_outcomes(passed=1)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert golden_of(pytester).read_bytes() == recorded


def test_a_passing_run_takes_what_its_golden_sealed_and_an_edited_golden_still_fails(pytester):
    """Unchanged outputs are not measured again (their statistics are the golden's, sealed to
    their bytes); a statistic edited in the golden breaks its seal: measured, and it fails."""
    pytester.makepyfile(test_dense=TEST)
    pytester.makeconftest(COUNTING)
    log = pytester.path / "measured.txt"
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert log.read_text().split() == ["output"] * 6  # a recording measures (and sensitivity)
    path = golden_of(pytester)
    document = json.loads(path.read_text())
    for variant in document["checks"]["default"]["variants"].values():
        assert variant["outputs"]["output"]["digest"].startswith("crc32:")

    log.write_text("")
    run_inline(pytester).assert_outcomes(passed=1)
    assert log.read_text() == ""  # nothing measured: both outputs' bytes are the recorded ones

    stats = document["checks"]["default"]["variants"]["units=5"]["outputs"]["output"]["stats"]
    stats["mean"] *= 1.01
    path.write_text(json.dumps(document, indent=2))
    edited = run_inline(pytester)
    edited.assert_outcomes(failed=1)
    assert "variant units=5 / output" in assert_clean_failure(edited)
    assert log.read_text().split() == ["output"]  # the edited one only


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
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    golden = golden_of(pytester, "test_lstm", "test_lstm_hidden_size")
    recorded = golden.read_bytes()
    # one session: the recording again, the model without biases against its golden (copied
    # for test_lstm_bias), and the example under another module name (test_lstm_new): no golden
    pytester.makepyfile(
        test_lstm_bias=example.replace("batch_first=True)", "batch_first=True, bias=False)"),
        test_lstm_new=example,
    )
    copied = golden_of(pytester, "test_lstm_bias", "test_lstm_hidden_size")
    copied.parent.mkdir()
    copied.write_bytes(recorded)
    result, outcomes = run_each(pytester)
    result.assert_outcomes(passed=1, failed=2)
    assert_clean_failure(result)
    assert outcomes["test_lstm::test_lstm_hidden_size"][0] == "passed"
    status, out = outcomes["test_lstm_new::test_lstm_hidden_size"]
    assert status == "failed" and "no golden for the check of test_lstm_hidden_size" in out
    status, out = outcomes["test_lstm_bias::test_lstm_hidden_size"]
    assert status == "failed"
    assert "likely cause: shape or structure changed" in out
    assert "bias_ih_l0" in out and "present" in out and "absent" in out
    assert golden.read_bytes() == recorded and copied.read_bytes() == recorded


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
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=2)
    folder = pytester.path / "golden" / "test_dense"
    assert sorted(p.name for p in folder.iterdir()) == ["test_dense[4].json", "test_dense[8].json"]
    run_inline(pytester).assert_outcomes(passed=2)


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
    result = run_inline(pytester, "--snapshot-update")
    result.assert_outcomes(passed=1, failed=1)
    assert "two checks named 'same' in one test" in result.stdout.str()
    checks = json.loads(golden_of(pytester).read_text())["checks"]
    assert list(checks) == ["small_batch", "large_batch"]
    run_inline(pytester, "-k", "not duplicate").assert_outcomes(passed=1)


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
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert (pytester.path / "golden" / "test_dense" / "TestDense.test_units.json").exists()
    run_inline(pytester).assert_outcomes(passed=1)


def test_commands_in_messages_work_from_the_invocation_directory(pytester, monkeypatch):
    pytester.makepyfile(**{"sub/test_dense": TEST})
    monkeypatch.chdir(pytester.path / "sub")
    result = pytester.runpytest_subprocess("test_dense.py")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "pytest --snapshot-update test_dense.py::test_dense" in out
    assert "expected at: ../golden/sub/test_dense/test_dense.json" in out
