"""The Keras adapter's ``train`` (issue 17) on the tensorflow, torch and jax backends.

KERAS_BACKEND is read when keras is imported, so each backend trains in one subprocess
(``keras_training_probe.py``, run once per backend for the whole module) that prints what it
measured; the tests here assert on it. The outer process imports no framework.
"""

import functools
import importlib.util
import itertools
import json
import os
import pathlib
import subprocess
import sys

import pytest

from ..sessions.helpers import quick_xla_flags

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("keras") is None, reason="keras is not installed"
)

BACKENDS = [b for b in ("tensorflow", "torch", "jax") if importlib.util.find_spec(b) is not None]
PROBE = pathlib.Path(__file__).with_name("keras_training_probe.py")
ROOT = str(pathlib.Path(__file__).resolve().parents[2])


@functools.cache
def probe(backend, *args):
    env = {
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PATH": "",
        "PYTHONPATH": ROOT,
        "HOME": os.environ.get("HOME", "/tmp"),
        "XLA_FLAGS": quick_xla_flags(),  # jax compiles each eager op: see QUICK_XLA
    }
    result = subprocess.run(
        [sys.executable, str(PROBE), *args], capture_output=True, text=True, env=env, timeout=600
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULTS ")]
    assert lines, result.stderr[-3000:]
    found = json.loads(lines[0][len("RESULTS ") :])
    assert found["backend"] == backend
    return found


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    return request.param


def section(backend, name, *args):
    found = probe(backend, *args)[name]
    assert "failed" not in found, found.get("failed")
    return found


def test_losses_decrease_under_sgd_for_both_widths(backend):
    """A bare Dense layer (built by train) of 10 and 5 units learns its target under SGD."""
    for units, run in section(backend, "dense_sgd").items():
        losses = run["losses"]
        assert len(losses) == 5
        assert all(b < a for a, b in itertools.pairwise(losses)), (units, losses)
        assert list(run["gradients"]) == ["dense/kernel", "dense/bias"]
        assert run["no_gradient"] == []
        assert run["missing"] is None


def test_gradients_loss_and_update_match_a_hand_computed_dense_mse(backend):
    """Step 0's gradients and loss are the hand-derived ones (float64 reference), and SGD's
    update is exactly w - lr * g with the gradient ``train`` returned."""
    found = section(backend, "hand_gradient")
    for name, error in found["gradient_relative_error"].items():
        assert error < 1e-6, name
    assert found["loss_relative_error"] < 1e-6
    assert found["sgd_update_error"] == {"dense/kernel": 0.0, "dense/bias": 0.0}


def test_dropout_and_batchnorm_train_reproducibly_in_training_mode(backend):
    """Two runs from the same weights give bit-identical losses, gradients, forward and
    weights; another seed gives other dropout masks; step 0 ran in training mode (dropout
    active, BatchNorm's moving statistics updated); afterwards the model is in inference use
    and its seed generators have their states back."""
    found = section(backend, "dropout_batchnorm")
    assert found["identical_losses"]
    assert found["identical_gradients"]
    assert found["identical_forward"]
    assert found["identical_weights"]
    assert found["other_seed_differs"]
    assert found["training_forward_differs"]
    assert found["moving_mean_moved"]
    assert found["inference_after_is_deterministic"]
    assert found["seed_states_restored"]
    assert found["no_gradient"] == [
        "batch_normalization/moving_mean",
        "batch_normalization/moving_variance",
    ]
    assert found["gradients"] == [
        "dense/kernel",
        "dense/bias",
        "batch_normalization/gamma",
        "batch_normalization/beta",
        "dense_1/kernel",
        "dense_1/bias",
    ]


def test_dropout_masks_are_the_same_across_variants(backend):
    """Dropout before the layer whose width varies drops the same elements in both variants."""
    found = section(backend, "dropout_masks_across_variants")
    assert found["same_mask"]
    assert 0 < found["dropped"] < 48


def test_frozen_layer_and_head_off_the_loss_path_take_no_gradient(backend):
    """A frozen layer's weights and an unused head's weights are listed in no_gradient (jax
    too, where autodiff gives zeros: the jaxpr says they are off the path) and do not move,
    with SGD and with Adam; the trained ones do."""
    found = section(backend, "frozen_and_off_path")
    assert found["no_gradient"] == ["body/kernel", "body/bias"]
    assert found["gradients"] == ["head/kernel", "head/bias"]
    assert found["frozen_kept"]
    assert found["head_moved"]
    for kind, heads in found["two_heads"].items():
        assert heads["no_gradient"] == ["unused/kernel", "unused/bias"], kind
        assert heads["gradients"] == ["used/kernel", "used/bias"], kind
        assert heads["unused_kept"], kind
        assert heads["used_moved"], kind


def test_optimizer_instance_is_copied_for_every_training(backend):
    """The user's Keras optimizer is never stepped itself: every training gets a fresh copy
    (same losses twice, the instance unbuilt); a factory is called once per training; a
    factory returning one shared instance is copied too; lr= sets a custom one's rate."""
    found = section(backend, "optimizer_not_shared")
    assert found["instance_losses_equal"]
    assert found["instance_untouched"]
    assert found["factory_calls"] == 2
    assert found["factory_losses_equal"]
    assert found["shared_factory_losses_equal"]
    assert found["lr_overrides_custom"]


def test_model_losses_join_the_loss_and_cross_entropy_matches_by_hand(backend):
    found = section(backend, "model_losses_and_cross_entropy")
    assert found["regularized_loss_relative_error"] < 1e-6
    assert found["cross_entropy_relative_error"] < 1e-6
    assert found["cross_entropy_gradients"] == ["dense/kernel", "dense/bias"]


def test_keyword_inputs_train(backend):
    found = section(backend, "keywords")
    assert len(found["losses"]) == 2
    assert found["losses"][1] < found["losses"][0]
    assert found["gradients"] == ["dense/kernel", "dense/bias"]


ERRORS = {
    "first_of_several": ("target has shape (8, 2)", "output '0' has shape (8, 4)"),
    "mse_shape": ("target has shape (8, 2)", "output 'output' has shape (8, 3)", "targets=(8, 3)"),
    "cross_entropy_float": ("integer class targets", "float32", "targets=integers((8,), high=3)"),
    "cross_entropy_shape": ("target has shape (8, 3)", "classes on the last axis", "(8,)"),
    "cross_entropy_range": ("classes 7..7", "3 classes", "targets=integers((8,), high=3)"),
    "target_only": ("weight of the model (dense/kernel, dense/bias) took", "model's output"),
    "bool_output": ("output 'output' is bool", "takes no gradient", "floating-point"),
    "no_trainable": ("no trainable weights", "all frozen", "trainable=True"),
    "not_scalar": ("custom:square", "shape (8, 3), not a scalar", "keras.ops.mean"),
    "number": ("custom:number", "returned float", "keras.ops"),
    "raising": (
        "custom:raising raised",
        "keras_training_probe.py",
        "missing_attribute",
        "keras.ops",
    ),
    "not_optimizer": ("gave object, not a Keras optimizer", "a callable returning one"),
    "factory_not_optimizer": ("gave str, not a Keras optimizer", "keras.optimizers.Optimizer"),
    "schedule_with_lr": (
        "check_training(lr=0.1) cannot set the learning rate of SGD",
        "LearningRateSchedule",
        "Drop lr=",
    ),
    "callable_rate_with_lr": (
        "check_training(lr=0.05) cannot set the learning rate of SGD",
        "a LearningRateSchedule or a callable",
    ),
}


def test_a_loss_of_one_element_counts_as_a_scalar(backend):
    assert section(backend, "errors")["one_element"] == "no error"


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_bad_training_inputs_raise_a_model_error_saying_the_fix(backend, case):
    message = section(backend, "errors")[case]
    assert message.startswith("ModelError: "), message
    for part in ERRORS[case]:
        assert part in message, (part, message)


#: The largest relative difference (max |a - b| / max |a| over a tensor) allowed between two
#: backends training the same model from the same weights; measured: losses 6.5e-8,
#: gradients 2.5e-7, updates 5.8e-7 (SGD) and 5.5e-6 (Adam) on this machine.
CROSS_BACKEND = {"losses": 1e-6, "gradients": 2e-6, "updates": {"sgd": 1e-5, "adam": 1e-4}}


def _relative(a, b):
    scale = max(abs(x) for x in a)
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) / scale if scale else 0.0


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs two Keras backends")
def test_backends_agree_on_the_same_model_and_weights():
    """Dense -> BatchNorm -> Dense from the same weights: every backend's losses, gradients
    and updates (three SGD and three Adam steps) agree to float32 rounding."""
    runs = {b: section(b, "portable") for b in BACKENDS}
    for first, second in itertools.combinations(BACKENDS, 2):
        for kind in ("sgd", "adam"):
            a, b = runs[first][kind], runs[second][kind]
            where = (first, second, kind)
            assert _relative(a["losses"], b["losses"]) < CROSS_BACKEND["losses"], where
            assert a["no_gradient"] == b["no_gradient"], where
            assert list(a["gradients"]) == list(b["gradients"]), where
            for name, values in a["gradients"].items():
                error = _relative(values, b["gradients"][name])
                assert error < CROSS_BACKEND["gradients"], (*where, name)
            for name, values in a["updates"].items():
                error = _relative(values, b["updates"][name])
                assert error < CROSS_BACKEND["updates"][kind], (*where, name)


def test_a_backend_without_autodiff_says_which_backends_train():
    message = section("numpy", "no_autodiff", "no-autodiff")["error"]
    assert message.startswith("ModelError: Keras's numpy backend computes no gradients"), message
    assert "KERAS_BACKEND=tensorflow, torch or jax" in message


def test_a_subclassed_model_without_a_training_argument_trains_on_every_backend(backend):
    """``call(self, x)`` without ``training``: every backend trains it (jax passed
    ``training=True`` to ``call`` and raised), as Keras's ``fit`` does: its Dropout is not told
    it trains, on every backend alike."""
    found = section(backend, "subclassed_without_training")
    assert len(found["losses"]) == 2 and found["no_gradient"] == []
    assert set(found["gradients"]) == {"dense/kernel", "dense/bias"}
    assert found["dropped"] == 0
