"""Keras 3 models on every backend. Each inner session is a subprocess: KERAS_BACKEND is read
when keras is imported, and TensorFlow should not be imported into the outer test process."""

import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("keras") is None, reason="keras is not installed"
)

BACKENDS = [
    b
    for b, module in (("tensorflow", "tensorflow"), ("torch", "torch"), ("jax", "jax"))
    if importlib.util.find_spec(module) is not None
]

SEED_MODEL = textwrap.dedent(
    """
    import os

    import pytest
    import tensorflow as tf

    SCALE = float(os.environ.get("KERNEL_SCALE", "1"))
    WEIGHTS = os.environ.get("WEIGHTS", "framework")


    def build(units):
        layers = [tf.keras.Input((784,)), tf.keras.layers.Dense(units, activation="relu")]
        model = tf.keras.Sequential(layers)
        kernel = model.layers[0].kernel
        kernel.assign(kernel * SCALE)
        return model


    @pytest.mark.shape_variant(units=[10, 5], weights=WEIGHTS)
    def test_dense(shape_variant):
        shape_variant.check(build, inputs=(1, 784))
    """
)


def run(pytester, monkeypatch, *args, backend="tensorflow", **env):
    monkeypatch.setenv("KERAS_BACKEND", backend)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return pytester.runpytest_subprocess(*args)


def golden(pytester, module="test_keras_model", test="test_dense"):
    return pytester.path / "golden" / module / f"{test}.json"


@pytest.mark.skipif("tensorflow" not in BACKENDS, reason="tensorflow is not installed")
def test_keras_life_cycle_and_a_1e3_weight_change(pytester, monkeypatch):
    pytester.makepyfile(test_keras_model=SEED_MODEL)
    run(pytester, monkeypatch).assert_outcomes(failed=1)
    run(pytester, monkeypatch, "--snapshot-update").assert_outcomes(passed=1)
    recorded = golden(pytester).read_bytes()
    check = json.loads(recorded)["checks"]["default"]
    assert check["environment"]["keras_backend"] == "tensorflow"
    assert check["environment"]["onednn"] == "default"
    params = check["variants"]["units=5"]["parameters"]
    assert {k: v["shape"] for k, v in params.items()} == {
        "dense/kernel": [784, 5],
        "dense/bias": [5],
    }
    run(pytester, monkeypatch).assert_outcomes(passed=1)
    changed = run(pytester, monkeypatch, KERNEL_SCALE="1.001")
    changed.assert_outcomes(failed=1)
    assert "likely cause: initial weights changed" in changed.stdout.str()
    assert golden(pytester).read_bytes() == recorded


@pytest.mark.skipif("tensorflow" not in BACKENDS, reason="tensorflow is not installed")
def test_onednn_on_vs_off_passes_under_default_tolerance(pytester, monkeypatch):
    pytester.makepyfile(test_keras_model=SEED_MODEL)
    run(pytester, monkeypatch, "--snapshot-update", TF_ENABLE_ONEDNN_OPTS="0").assert_outcomes(
        passed=1
    )
    result = run(pytester, monkeypatch, TF_ENABLE_ONEDNN_OPTS="1")
    result.assert_outcomes(passed=1)


@pytest.mark.skipif(len(BACKENDS) < 2 or "tensorflow" not in BACKENDS, reason="needs two backends")
@pytest.mark.parametrize("other", [b for b in BACKENDS if b != "tensorflow"])
def test_backend_switch_fails_with_framework_init_passes_with_portable(
    pytester, monkeypatch, other
):
    pytester.makepyfile(test_keras_model=SEED_MODEL)
    run(pytester, monkeypatch, "--snapshot-update").assert_outcomes(passed=1)
    switched = run(pytester, monkeypatch, backend=other)
    switched.assert_outcomes(failed=1)
    out = switched.stdout.str()
    assert f"the Keras backend changed (tensorflow -> {other})" in out
    assert "weights='portable'" in out

    run(pytester, monkeypatch, "--snapshot-update", WEIGHTS="portable").assert_outcomes(passed=1)
    recorded = golden(pytester).read_bytes()
    run(pytester, monkeypatch, backend=other, WEIGHTS="portable").assert_outcomes(passed=1)
    assert golden(pytester).read_bytes() == recorded


MODEL_KINDS = textwrap.dedent(
    """
    import keras
    import numpy as np
    import pytest

    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])  # bump Keras's name counters


    def functional(units):
        inputs = keras.Input((4,))
        hidden = keras.layers.Dense(units, name="enc")(inputs)
        heads = {"a": keras.layers.Dense(2)(hidden), "b": keras.layers.Dense(3)(hidden)}
        return keras.Model(inputs, heads)


    class Subclassed(keras.Model):
        def __init__(self, units):
            super().__init__()
            self.first = keras.layers.Dense(units)
            self.second = keras.layers.Dense(units)

        def call(self, x):
            return self.second(self.first(x))


    @pytest.mark.shape_variant(units=[6, 8])
    def test_kinds(shape_variant):
        f = shape_variant.check(functional, inputs=(2, 4), name="functional")
        s = shape_variant.check(Subclassed, inputs=(2, 4), name="subclassed")
        layer = shape_variant.check(
            lambda units: keras.layers.LSTM(units, return_state=True),
            inputs=(2, 5, 4),
            name="layer",
        )
        named = shape_variant.check(
            lambda units: keras.Sequential([
                keras.Input((4,)),
                keras.layers.Dense(units, name="fc_1"),
                keras.layers.Dense(units, name="fc_2"),
                keras.layers.Dense(2, name="fc_1_1"),
            ]),
            inputs=(2, 4),
            name="user_named",
            weights="portable",
        )
        seq = shape_variant.check(
            lambda units: keras.Sequential([keras.Input((4,)), keras.layers.Dense(units),
                                            keras.layers.Dense(units)]),
            inputs=(2, 4), name="sequential",
        )
        print("NAMES", {
            "functional": list(f.variants["units=8"]["parameters"]),
            "functional_outputs": list(f.variants["units=8"]["outputs"]),
            "subclassed": list(s.variants["units=8"]["parameters"]),
            "layer": list(layer.variants["units=8"]["parameters"]),
            "layer_outputs": list(layer.variants["units=8"]["outputs"]),
            "sequential": list(seq.variants["units=8"]["parameters"]),
            "user_named": list(named.variants["units=8"]["parameters"]),
        })
    """
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_model_kinds_and_stable_weight_names(pytester, monkeypatch, backend):
    pytester.makepyfile(test_kinds=MODEL_KINDS)
    result = run(pytester, monkeypatch, "--snapshot-update", "-s", backend=backend)
    result.assert_outcomes(passed=1)
    line = next(x for x in result.stdout.lines if "NAMES " in x)
    names = eval(line.split("NAMES ", 1)[1])  # our own printed dict literal
    assert names == {
        "functional": [
            "enc/kernel",
            "enc/bias",
            "dense/kernel",
            "dense/bias",
            "dense_1/kernel",
            "dense_1/bias",
        ],
        "functional_outputs": ["a", "b"],
        "subclassed": ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"],
        "layer": [
            "lstm/lstm_cell/kernel",
            "lstm/lstm_cell/recurrent_kernel",
            "lstm/lstm_cell/bias",
        ],
        "layer_outputs": ["0", "1", "2"],
        "sequential": ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"],
        "user_named": [
            "fc_1/kernel",
            "fc_1/bias",
            "fc_2/kernel",
            "fc_2/bias",
            "fc_1_1/kernel",
            "fc_1_1/bias",
        ],
    }
    run(pytester, monkeypatch, backend=backend).assert_outcomes(passed=1)


RNG_SCRIPT = textwrap.dedent(
    """
    import random
    import numpy as np
    import keras
    from pytest_weightshape.frameworks import seeded

    def draws():
        out = [random.random(), float(np.random.random())]
        if keras.backend.backend() == "torch":
            import torch
            out.append(float(torch.rand(1)))
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf
            out.append(float(tf.random.uniform(())))
        return out

    keras.utils.set_random_seed(7)
    expected = draws() + draws()
    keras.utils.set_random_seed(7)
    first = draws()
    with seeded(0):
        keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert first + draws() == expected, (first, expected)
    print("RNG-OK")
    """
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_seeding_restores_every_generator(backend, tmp_path):
    script = tmp_path / "rng.py"
    script.write_text(RNG_SCRIPT)
    env = {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""}
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300
    )
    assert "RNG-OK" in result.stdout, result.stderr[-2000:]
