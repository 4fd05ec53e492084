"""Devices, environment records, device profiles, per-device goldens and determinism."""

import json
import textwrap

import pytest

from .helpers import DENSE, TEST, golden_of, load_for_inline, run, run_inline

# imported at collection, before pytester's sys.modules snapshots (torch cannot be re-imported)
torch = pytest.importorskip("torch")
load_for_inline()  # the NumPy sessions here run in this process, the torch ones in subprocesses

TORCH_TEST = textwrap.dedent(
    """
    import pytest
    import torch
    from torch import nn

    @pytest.mark.shape_variant(units=[10, 5])
    def test_linear(shape_variant):
        result = shape_variant.check(lambda units: nn.Linear(16, units), inputs=(8, 16))
        assert not torch.are_deterministic_algorithms_enabled()  # restored after the check
    """
)


def test_absent_device_skips_or_fails_when_strict(pytester):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    pytester.makepyfile(test_linear=TORCH_TEST)
    result = run(pytester, "--weightshape-device=cuda:1", "-rs")
    result.assert_outcomes(skipped=1)
    assert "cuda:1 was requested but this machine has no CUDA device" in result.stdout.str()
    strict = run(pytester, "--weightshape-device=cuda", "--weightshape-device-strict")
    strict.assert_outcomes(failed=1)
    assert "device unavailable: cuda was requested" in strict.stdout.str()
    run(pytester, "--weightshape-device=auto", "--snapshot-update").assert_outcomes(passed=1)
    bad = run(pytester, "--weightshape-device=tpu")
    assert "device= must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'tpu'" in bad.stderr.str()


def test_environment_block_records_numerics_switches_and_determinism(pytester):
    pytester.makepyfile(test_linear=TORCH_TEST)
    run(pytester, "--snapshot-update", "--weightshape-deterministic").assert_outcomes(passed=1)
    env = json.loads(golden_of(pytester, "test_linear", "test_linear").read_text())["checks"][
        "default"
    ]["environment"]
    for key in (
        "python",
        "platform",
        "cpu",
        "numpy",
        "torch",
        "threads",
        "device",
        "torch_tf32_matmul",
        "torch_tf32_cudnn",
        "torch_matmul_precision",
    ):
        assert key in env, key
    assert env["torch_deterministic"] is True and env["device"] == "cpu"
    # recorded deterministic, checked without: the environment differs, the values do not
    run(pytester).assert_outcomes(passed=1)


def test_thread_count_does_not_move_torch_results(pytester, monkeypatch):
    pytester.makepyfile(test_linear=TORCH_TEST)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    run(pytester).assert_outcomes(passed=1)


def _edit_golden(path, device, factor):
    document = json.loads(path.read_text())
    check = document["checks"]["default"]
    check["environment"]["device"] = device
    for variant in check["variants"].values():
        variant["outputs"]["output"]["stats"]["std"] *= factor
    path.write_text(json.dumps(document, indent=2))


def test_cross_device_profile_accepts_tf32_level_drift_and_names_the_device(pytester):
    pytester.makepyfile(test_dense=TEST)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    path = golden_of(pytester)
    original = path.read_text()

    _edit_golden(path, "cpu", 1 + 5e-4)  # same device kind: 5e-4 is far beyond float32 noise
    run_inline(pytester).assert_outcomes(failed=1)

    path.write_text(original)
    _edit_golden(path, "cuda:0", 1 + 5e-4)  # a golden recorded on CUDA (TF32): accepted here
    run_inline(pytester).assert_outcomes(passed=1)

    path.write_text(original)
    _edit_golden(path, "cuda:0", 1 + 5e-3)  # beyond TF32 level: fails and names the device
    result = run_inline(pytester)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "the device changed (cuda -> cpu); compared with the cross-device tolerance" in out
    assert "device cuda:0 -> cpu" in out
    run_inline(pytester, "--weightshape-device-rtol=cross=1e-2").assert_outcomes(passed=1)


def test_goldens_keyed_per_device_kind(pytester):
    pytester.makepyfile(test_dense=TEST)
    per_device = "--weightshape-golden-per-device"
    run_inline(pytester, "--snapshot-update", per_device).assert_outcomes(passed=1)
    path = golden_of(pytester)
    document = json.loads(path.read_text())
    assert list(document["checks"]) == ["default@cpu"]
    cuda = json.loads(json.dumps(document["checks"]["default@cpu"]))
    cuda["environment"]["device"] = "cuda:0"
    document["checks"]["default@cuda"] = cuda
    path.write_text(json.dumps(document, indent=2))
    result = run_inline(pytester, per_device)
    result.assert_outcomes(passed=1)
    assert "unused" not in result.stdout.str()
    run_inline(pytester, per_device, "--snapshot-update").assert_outcomes(passed=1)
    assert list(json.loads(path.read_text())["checks"]) == ["default@cpu", "default@cuda"]
    # without the mode, the per-device entries are not this check's golden
    run_inline(pytester).assert_outcomes(failed=1)


def test_marker_device_setting(pytester):
    pytester.makepyfile(
        test_dense=DENSE
        + textwrap.dedent(
            """
        @pytest.mark.shape_variant(units=[10, 5], device="cpu")
        def test_dense(shape_variant):
            shape_variant.check(Dense, inputs=(8, 16))

        @pytest.mark.shape_variant(units=[10, 5], device="gpu")
        def test_bad(shape_variant):
            shape_variant.check(Dense, inputs=(8, 16))
        """
        )
    )
    result = run_inline(pytester, "--snapshot-update")
    result.assert_outcomes(passed=1, errors=1)
    assert (
        "device= must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu'" in result.stdout.str()
    )


CANCELLING = DENSE + textwrap.dedent(
    """
    ORDER = "add-first"

    class Cancelling(Dense):
        def __call__(self, x):  # ill-conditioned on purpose: float32 loses ~3 digits here
            big = np.asarray(1e4, dtype=x.dtype)
            y = x @ self.kernel + self.bias
            if ORDER == "coarser":  # rounds to a grid twice as coarse: a benign reordering
                big = big * 2
            return (y + big) - big

    @pytest.mark.shape_variant(units=[10, 5])
    def test_dense(shape_variant):
        shape_variant.check(Cancelling, inputs=(64, 16))
    """
)


def test_calibrated_goldens_allow_a_statistics_own_rounding_noise(pytester):
    pytester.makepyfile(test_dense=CANCELLING)
    run_inline(pytester, "--snapshot-update", "--weightshape-calibrate").assert_outcomes(passed=1)
    outputs = json.loads(golden_of(pytester).read_text())["checks"]["default"]["variants"][
        "units=10"
    ]["outputs"]
    assert outputs["output"]["noise"]["max"] > 1e-5  # float32 near 1e4 rounds at ~1e-3
    reordered = CANCELLING.replace('ORDER = "add-first"', 'ORDER = "coarser"')
    pytester.makepyfile(test_dense=reordered)
    run_inline(pytester).assert_outcomes(passed=1)  # rounding moved, within its measured noise

    golden_of(pytester).unlink()  # the same golden recorded without calibration ...
    pytester.makepyfile(test_dense=CANCELLING)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    pytester.makepyfile(test_dense=reordered)
    run_inline(pytester).assert_outcomes(failed=1)  # ... judges the reordering by the policy alone
