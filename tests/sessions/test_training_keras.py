"""Training-step checks of Keras models through whole sessions, on every Keras backend:
recorded, then passing again with dropout and BatchNorm in training mode; on jax, a frozen
layer fails naming its weights (checked beside the recording, against its golden). Each session
is a subprocess (KERAS_BACKEND is read when keras is imported); the outer process imports no
framework."""

import importlib.util
import json
import shutil
import textwrap

import pytest

from .helpers import golden_of, run_each

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("keras") is None, reason="keras is not installed"
)

BACKENDS = [b for b in ("tensorflow", "torch", "jax") if importlib.util.find_spec(b) is not None]

MODULE = textwrap.dedent(
    """
    import os

    import keras
    import pytest

    from pytest_weightshape import integers

    FROZEN = os.environ.get("WS_FROZEN") == "1"


    def build(units):
        body = keras.layers.Dense(units, activation="relu", name="body")
        model = keras.Sequential(
            [
                keras.Input((6,)),
                body,
                keras.layers.Dropout(0.3),
                keras.layers.BatchNormalization(),
                keras.layers.Dense(3, name="head"),
            ]
        )
        body.trainable = not FROZEN
        return model


    @pytest.mark.shape_variant(units=[16, 8])
    def test_training(shape_variant):
        shape_variant.check_training(
            build,
            inputs=(8, 6),
            targets=integers((8,), high=3),
            loss="cross_entropy",
            optimizer="sgd",
            steps=3,
        )
    """
)


def _session(pytester, monkeypatch, backend, *args):
    monkeypatch.setenv("KERAS_BACKEND", backend)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    return run_each(pytester, *args)


#: ``MODULE`` with its first layer frozen, checked (on jax) against ``MODULE``'s golden in the
#: session that checks the recording again.
FROZEN = MODULE.replace('os.environ.get("WS_FROZEN") == "1"', "True")


@pytest.mark.parametrize("backend", BACKENDS)
def test_keras_training_is_recorded_then_passes(pytester, monkeypatch, backend):
    pytester.makepyfile(test_keras_training=MODULE)
    recorded, _ = _session(pytester, monkeypatch, backend, "--snapshot-update")
    recorded.assert_outcomes(passed=1)
    path = golden_of(pytester, "test_keras_training", "test_training")
    golden = json.loads(path.read_text())
    check = golden["checks"]["training"]
    assert check["kind"] == "training"
    assert check["environment"]["keras_backend"] == backend
    for name, variant in check["variants"].items():
        training = variant["training"]
        assert len(training["losses"]) == 3, name
        assert list(training["gradients"]) == [
            "body/kernel",
            "body/bias",
            "batch_normalization/gamma",
            "batch_normalization/beta",
            "head/kernel",
            "head/bias",
        ], name
        assert training["no_gradient"] == [
            "batch_normalization/moving_mean",
            "batch_normalization/moving_variance",
        ], name
        assert "gradients_missing" not in training, name
    if backend == "jax":  # checked in the next session, beside the recording
        assert FROZEN != MODULE
        pytester.makepyfile(test_frozen=FROZEN)
        golden_of(pytester, "test_frozen", "test_training").parent.mkdir()
        shutil.copy(path, golden_of(pytester, "test_frozen", "test_training"))
    again, outcomes = _session(pytester, monkeypatch, backend)
    # dropout masks and BatchNorm batch statistics repeat
    status, message = outcomes["test_keras_training::test_training"]
    assert status == "passed", message or again.stdout.str()
    if backend == "jax":
        again.assert_outcomes(passed=1, failed=1)
        status, message = outcomes["test_frozen::test_training"]
        assert status == "failed", again.stdout.str()
        assert "no gradient now: units=16: body/kernel, body/bias" in message
    else:
        again.assert_outcomes(passed=1)
