"""Training-step checks (``shape_variant.check_training``) through whole sessions: recorded
then passing, reproducible with dropout (again, with another thread count and under ``-n 2``),
failing with the right cause when the training step changes (learning rate, weight decay,
momentum, the loss's reduction, a frozen layer), and bad calls failing with a message naming
test and variant.

The inner tests import torch, so each session runs in a subprocess. The module records once
(``TrainingRuns``: each session runs once, when a test first needs it); one session checks a
copy of the recording beside changed copies of the inner module (a knob written into each,
the recording's golden copied for it), and each test reads its inner test's outcome and
message apart. The README's ``-n 2 --dist loadfile`` runs the module on one worker, so each
session runs once.
"""

import json
import shutil
import textwrap

import pytest

from .helpers import SharedRuns, assert_clean_failure, run

pytest.importorskip("torch")

MODULE = textwrap.dedent(
    """
    import os

    import pytest
    import torch
    from torch import nn

    LR = float(os.environ.get("WS_LR", "0.01"))
    WD = float(os.environ.get("WS_WD", "0"))
    MOMENTUM = float(os.environ.get("WS_MOMENTUM", "0"))
    REDUCTION = os.environ.get("WS_REDUCTION", "mean")
    FROZEN = os.environ.get("WS_FROZEN") == "1"


    def build(hidden):
        model = nn.Sequential(
            nn.Linear(8, hidden), nn.ReLU(), nn.Dropout(0.3), nn.Linear(hidden, 3)
        )
        if FROZEN:
            model[3].requires_grad_(False)
        return model


    def squared_error(output, target):
        error = (output - target) ** 2
        return error.mean() if REDUCTION == "mean" else error.sum()


    def sgd(params):
        return torch.optim.SGD(params, lr=LR, weight_decay=WD, momentum=MOMENTUM)


    @pytest.mark.shape_variant(hidden=[10, 20])
    def test_training(shape_variant):
        result = shape_variant.check_training(
            build, (4, 8), (4, 3), loss=squared_error, optimizer=sgd, steps=3
        )
        assert result.name == "training"
        shape_variant.check(build, (4, 8))
    """
)


#: ``MODULE``'s forward check, and a ``check_training`` of its name in its place.
FORWARD = "shape_variant.check(build, (4, 8))"
SWAPPED = (
    "shape_variant.check_training(build, (4, 8), (4, 3), loss='mse', optimizer='sgd', "
    "name='default')"
)


def with_knob(knob, value):
    """``MODULE`` with the environment knob ``knob`` (as ``WS_LR``) set to ``value`` in it."""
    if knob == "WS_FROZEN":
        given = 'os.environ.get("WS_FROZEN") == "1"'
        assert given in MODULE
        return MODULE.replace(given, repr(value == "1"))
    default = {"WS_LR": "0.01", "WS_WD": "0", "WS_MOMENTUM": "0", "WS_REDUCTION": "mean"}[knob]
    given = f'os.environ.get("{knob}", "{default}")'
    assert given in MODULE, knob
    return MODULE.replace(given, repr(value))


#: The knobs of the changed training steps, by the inner module that sets each.
KNOBS = {
    "test_lr": ("WS_LR", "0.0101"),
    "test_weight_decay": ("WS_WD", "1e-4"),
    "test_momentum": ("WS_MOMENTUM", "0.9"),
    "test_reduction": ("WS_REDUCTION", "sum"),
    "test_frozen": ("WS_FROZEN", "1"),
}


class TrainingRuns(SharedRuns):
    """The module's inner sessions (see ``SharedRuns``)."""

    def recording(self):
        """``MODULE`` recorded: (project, result, outcomes)."""

        def make():
            project = self.project("training")
            project.write(test_training=MODULE)
            return (project, *project.run("--snapshot-update"))

        return self.once("recording", make)

    def copy(self, name):
        """A new project holding the recording."""
        project = self.project(name)
        self.recording()[0].copy(project.path)
        return project

    def changed(self):
        """One session over a copy of the recording: ``test_training`` as recorded (a rerun),
        a module per knob of ``KNOBS`` and ``test_swapped`` (the forward check replaced by a
        ``check_training`` of its name), each with the recording's golden: (project, result,
        outcomes)."""

        def make():
            project = self.copy("training-changed")
            modules = {module: with_knob(*knob) for module, knob in KNOBS.items()}
            modules["test_swapped"] = MODULE.replace(FORWARD, SWAPPED)
            assert modules["test_swapped"] != MODULE
            project.write(**modules)
            for module in modules:
                (project.path / "golden" / module).mkdir()
                shutil.copy(
                    project.golden("test_training", "test_training"),
                    project.golden(module, "test_training"),
                )
            return (project, *project.run())

        return self.once("changed", make)


@pytest.fixture(scope="module")
def training_runs(tmp_path_factory, inner_environ):
    return TrainingRuns(tmp_path_factory, inner_environ)


def failure(training_runs, module):
    """The failure message of ``module``'s test_training in the changed session (which failed
    it with our message alone, without a traceback)."""
    _, result, outcomes = training_runs.changed()
    status, message = outcomes[f"{module}::test_training"]
    assert status == "failed", result.stdout.str()
    assert "Traceback" not in message
    assert_clean_failure(result)
    return message


def test_recorded_then_passes_again_and_under_xdist(training_runs):
    recorded, result, _ = training_runs.recording()
    result.assert_outcomes(passed=1)
    checks = json.loads(recorded.golden("test_training", "test_training").read_text())["checks"]
    assert set(checks) == {"default", "training"}  # both default names, side by side
    training = checks["training"]
    assert training["kind"] == "training" and "kind" not in checks["default"]
    variant = training["variants"]["hidden=20"]
    section = variant["training"]
    assert section["optimizer"] == "custom:sgd" and section["loss"] == "custom:squared_error"
    assert section["steps"] == 3 and len(section["losses"]) == 3
    assert list(section["gradients"]) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert section["no_gradient"] == []
    assert set(variant["targets"]) == {"target"}
    assert set(variant["divergence"]["training"]) == {
        "loss_ratio",
        "gradient_norm_ratio",
        "update_norm_ratio",
    }
    before = recorded.golden("test_training", "test_training").read_bytes()
    _, result, outcomes = training_runs.changed()
    status, message = outcomes["test_training::test_training"]
    assert status == "passed", message or result.stdout.str()  # dropout: the same masks
    again = training_runs.copy("training-again")
    result, _ = again.run(OMP_NUM_THREADS="1")  # another thread count
    result.assert_outcomes(passed=1)
    pytest.importorskip("xdist")
    result, _ = again.run("-n", "2")
    result.assert_outcomes(passed=1)
    assert again.golden("test_training", "test_training").read_bytes() == before


STEP_CHANGED = (
    "likely cause: the training step changed (optimizer, learning rate, weight decay, "
    "momentum, or the loss and its reduction) while the forward pass at step 0 held"
)


@pytest.mark.parametrize("module", ["test_lr", "test_weight_decay", "test_momentum"])
def test_a_changed_training_step_fails_while_the_forward_held(training_runs, module):
    message = failure(training_runs, module)
    assert "check 'training' of test_training moved beyond tolerance" in message
    assert STEP_CHANGED in message
    assert "check of test_training moved" not in message  # the forward check still passes


def test_a_loss_reduction_change_names_the_loss(training_runs):
    message = failure(training_runs, "test_reduction")
    assert (
        "likely cause: the loss changed (its definition or its reduction, e.g. mean -> sum) "
        "while the forward pass at step 0 held"
    ) in message
    assert "training/step 0" in message


def test_a_frozen_layer_names_its_parameters(training_runs):
    message = failure(training_runs, "test_frozen")
    frozen = "likely cause: no gradient now: hidden=10: 3.weight, 3.bias; hidden=20: 3.weight"
    assert frozen in message


ERRORS = textwrap.dedent(
    """
    import pytest
    import torch
    from torch import nn

    from pytest_weightshape import integers


    def build(hidden):
        return nn.Linear(8, hidden)


    @pytest.mark.shape_variant(hidden=[4, 6])
    def test_unknown_loss(shape_variant):
        shape_variant.check_training(build, (2, 8), (2, 4), loss="hinge", optimizer="sgd")


    @pytest.mark.shape_variant(hidden=[4, 6])
    def test_unknown_optimizer(shape_variant):
        shape_variant.check_training(build, (2, 8), (2, 4), loss="mse", optimizer="rmsprop")


    @pytest.mark.shape_variant(hidden=[4, 6])
    def test_zero_steps(shape_variant):
        shape_variant.check_training(
            build, (2, 8), (2, 4), loss="mse", optimizer="sgd", steps=0
        )


    @pytest.mark.shape_variant(hidden=[4, 6])
    def test_target_shape(shape_variant):
        shape_variant.check_training(build, (2, 8), (2, 4), loss="mse", optimizer="adam")


    @pytest.mark.shape_variant(hidden=[4, 6])
    def test_float_class_targets(shape_variant):
        shape_variant.check_training(
            build, (2, 8), (2,), loss="cross_entropy", optimizer="sgd"
        )


    @pytest.mark.shape_variant(hidden=[4, 6])
    def test_no_parameters(shape_variant):
        shape_variant.check_training(
            lambda hidden: nn.ReLU(), (2, 8), (2, 8), loss="mse", optimizer="sgd"
        )


    @pytest.mark.shape_variant(hidden=[4, 6])
    def test_loss_not_scalar(shape_variant):
        shape_variant.check_training(
            build, (2, 8), integers((2,), high=4),
            loss=lambda output, target: output.sum(dim=1), optimizer="sgd",
        )
    """
)


def test_bad_calls_fail_with_messages_naming_test_variant_and_fix(pytester):
    pytester.makepyfile(test_errors=ERRORS)
    result = run(pytester, "--snapshot-update")
    result.assert_outcomes(failed=7)
    out = result.stdout.str()
    assert "Traceback" not in out and "internal error" not in out
    expected = {
        "test_unknown_loss": "check_training(loss='hinge'): unknown loss; use one of 'mse'",
        "test_unknown_optimizer": "check_training(optimizer='rmsprop'): unknown optimizer",
        "test_zero_steps": "check_training(steps=0): steps must be a positive integer",
        "test_target_shape": (
            "variant hidden=6: loss 'mse': the target's shape [2, 4] does not fit the model's "
            "first output [2, 6]"
        ),
        "test_float_class_targets": (
            "variant hidden=4: loss 'cross_entropy' takes integer class ids as targets, got "
            "torch.float32: give targets=integers((2,), high=4)"
        ),
        "test_no_parameters": (
            "variant hidden=4: the model (ReLU) has no parameters, so there is nothing to train"
        ),
        "test_loss_not_scalar": (
            "variant hidden=4: the loss custom:test_loss_not_scalar.<locals>.<lambda> returned "
            "a tensor of shape [2]; it must return a scalar"
        ),
    }
    for test, text in expected.items():
        assert f"test_errors.py::{test}: " in out, test
        assert text in out, (test, text)


def test_a_device_skip_is_reported_at_the_check_training_line(pytester):
    pytester.makepyfile(test_training=MODULE)
    result = run(pytester, "--weightshape-device=cuda:7", "-rs")
    result.assert_outcomes(skipped=1)
    source = (pytester.path / "test_training.py").read_text().splitlines()
    line = next(i for i, text in enumerate(source, 1) if "check_training(" in text)
    out = result.stdout.str()
    assert f"SKIPPED [1] test_training.py:{line}: weightshape: cuda:7 was requested" in out
    assert "fixture.py" not in out


def test_a_forward_golden_is_not_compared_with_a_training_call_of_its_name(training_runs):
    message = failure(training_runs, "test_swapped")
    assert (
        "likely cause: the golden holds a forward check (check()) under this name and this "
        "call is check_training(): they are not compared"
    ) in message
