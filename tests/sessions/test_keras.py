"""Keras 3 models on every backend. Each inner session is a subprocess: KERAS_BACKEND is read
when keras is imported, and TensorFlow should not be imported into the outer test process.

Starting Keras costs seconds of CPU in every subprocess, so the module runs few sessions and
every test reads the ones it needs (``KerasRuns``: each session runs once, when a test first
asks for it): one TensorFlow session records every inner test, one checks them again beside
a changed copy and a test without a golden, one checks them with oneDNN off; on each other
backend, one session records the model kinds and one checks them beside the TensorFlow
goldens. The README's ``-n 2 --dist loadfile`` runs the module on one worker, so each session
runs once (under another distribution, each worker runs the sessions its tests need)."""

import importlib.util
import json
import shutil
import textwrap

import pytest

from .helpers import SharedRuns, assert_clean_failure

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("keras") is None, reason="keras is not installed"
)

BACKENDS = [
    b
    for b, module in (("tensorflow", "tensorflow"), ("torch", "torch"), ("jax", "jax"))
    if importlib.util.find_spec(module) is not None
]

#: A Dense model; ``SCALE`` multiplies its kernel after the build (a 1e-3 change of every
#: initial weight in test_keras_scaled). Written with ``keras`` (not ``tf.keras``): checked on
#: the torch and jax backends, it does not import TensorFlow there (seconds of CPU each).
SEED_HEAD = textwrap.dedent(
    """
    import keras
    import pytest

    SCALE = 1.0


    def build(units):
        layers = [keras.Input((784,)), keras.layers.Dense(units, activation="relu")]
        model = keras.Sequential(layers)
        kernel = model.layers[0].kernel
        kernel.assign(kernel * SCALE)
        return model


    @pytest.mark.shape_variant(units=[10, 5])
    def test_dense(shape_variant):
        shape_variant.check(build, inputs=(1, 784))
    """
)
#: The same model with its weights drawn by the plugin (framework-independent).
SEED_MODEL = SEED_HEAD + textwrap.dedent(
    """

    @pytest.mark.shape_variant(units=[10, 5], weights="portable")
    def test_dense_portable(shape_variant):
        shape_variant.check(build, inputs=(1, 784))
    """
)

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


#: ``seeded`` restores every generator it draws from (Python's, NumPy's, the backend's): an
#: inner test run in each backend's recording session.
RNG_TEST = textwrap.dedent(
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

    def test_rng():
        keras.utils.set_random_seed(7)
        expected = draws() + draws()
        keras.utils.set_random_seed(7)
        first = draws()
        with seeded(0):
            keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        assert first + draws() == expected, (first, expected)
    """
)


#: A Keras layer shared by a nested model and its outer one, or held by two attributes of a
#: subclassed model, gets one layer entry per call (not one per path it is tracked under); a
#: subclassed model built by its first call (the torch backend runs ``call`` to build it, then
#: again) records its forward's calls only. An inner test of the TensorFlow and the torch
#: recording sessions (localisation, issue 15).
SHARED_LAYERS = textwrap.dedent(
    """
    import numpy as np
    import keras
    from pytest_weightshape.frameworks.keras_adapter import ADAPTER

    x = np.random.rand(3, 4).astype("float32")
    shared = keras.layers.Dense(4, name="shared")
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, shared(inner_in), name="inner")
    outer_in = keras.Input((4,))
    functional = keras.Model(outer_in, shared(inner(outer_in)))


    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.a = keras.layers.Dense(4, name="a")
            self.chain = [self.a, keras.layers.Dense(3, name="b")]  # ``a`` tracked twice

        def call(self, x, training=False):
            return self.chain[1](self.a(self.a(x)))


    subclassed = Sub()  # not built: its first call builds it


    def test_shared_layers():
        names = []
        for model in (functional, subclassed):
            _, record = ADAPTER.observe_layers(model, lambda: model(x, training=False))
            names.append(list(record["entries"]))
        assert names == [["inner.shared", "inner.shared#2"], ["a", "a#2", "b"]], names
    """
)


#: Outputs a golden cannot hold (text, a sparse tensor): an inner test module of the
#: TensorFlow check session (moved here from test_faults.py to share its start-up).
KERAS_OUTPUTS = textwrap.dedent(
    """
    import pytest
    import tensorflow as tf

    @pytest.mark.shape_variant(units=[4, 2])
    def test_strings(shape_variant):
        def build(units):
            inputs = tf.keras.Input((3,))
            dense = tf.keras.layers.Dense(units)(inputs)
            text = tf.keras.layers.Lambda(lambda x: tf.strings.as_string(x))(dense)
            return tf.keras.Model(inputs, text)
        shape_variant.check(build, inputs=(2, 3))

    class Sparse(tf.keras.Model):
        def __init__(self, units):
            super().__init__()
            self.dense = tf.keras.layers.Dense(units)

        def call(self, x):
            return tf.sparse.from_dense(self.dense(x))

    @pytest.mark.shape_variant(units=[4, 2])
    def test_sparse(shape_variant):
        shape_variant.check(Sparse, inputs=(2, 3))
    """
)


def tensorflow_env():
    return {"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}


class KerasRuns(SharedRuns):
    """The module's inner sessions (see ``SharedRuns``)."""

    def tensorflow(self):
        """test_keras_model (framework and portable weights), test_kinds, test_rng and
        test_shared_layers, recorded on TensorFlow: (project, result, outcomes)."""

        def make():
            project = self.project("keras-tensorflow")
            project.write(test_keras_model=SEED_MODEL, test_kinds=MODEL_KINDS, test_rng=RNG_TEST)
            project.write(test_shared_layers=SHARED_LAYERS)
            return (project, *project.run("--snapshot-update", "-s", **tensorflow_env()))

        return self.once("tensorflow", make)

    def tensorflow_again(self):
        """The recording checked again on TensorFlow, beside test_keras_scaled (the model with
        every kernel weight scaled by 1 + 1e-3, against test_keras_model's golden),
        test_keras_new (no golden) and test_outputs (outputs a golden cannot hold): (project,
        result, outcomes)."""

        def make():
            recorded = self.tensorflow()[0]
            project = self.project("keras-tensorflow-again")
            recorded.copy(project.path)
            project.write(
                test_keras_scaled=SEED_HEAD.replace("SCALE = 1.0", "SCALE = 1.001"),
                test_keras_new=SEED_HEAD.replace("units=[10, 5]", "units=[10, 6]"),
                test_outputs=KERAS_OUTPUTS,
            )
            (project.path / "golden" / "test_keras_scaled").mkdir()
            shutil.copy(
                recorded.golden("test_keras_model", "test_dense"),
                project.golden("test_keras_scaled", "test_dense"),
            )
            return (project, *project.run(**tensorflow_env()))

        return self.once("tensorflow-again", make)

    def onednn_off(self):
        """test_keras_model, recorded with oneDNN at TensorFlow's default (on, on x86 Linux),
        checked with it off: (result, outcomes)."""

        def make():
            project = self.project("keras-onednn")
            self.tensorflow()[0].copy(project.path)
            env = dict(tensorflow_env(), TF_ENABLE_ONEDNN_OPTS="0")
            return project.run("test_keras_model.py", **env)

        return self.once("onednn", make)

    def other(self, backend):
        """test_kinds and test_rng (and on torch test_shared_layers) recorded on ``backend``
        (not TensorFlow), then checked there again beside test_keras_model with its
        TensorFlow goldens: (project, recording (result, outcomes), check (result,
        outcomes))."""

        def make():
            project = self.project(f"keras-{backend}")
            project.write(test_kinds=MODEL_KINDS, test_rng=RNG_TEST)
            if backend == "torch":
                project.write(test_shared_layers=SHARED_LAYERS)
            env = {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
            recording = project.run("--snapshot-update", "-s", **env)
            tensorflow = self.tensorflow()[0]
            shutil.copy(tensorflow.path / "test_keras_model.py", project.path)
            shutil.copytree(
                tensorflow.path / "golden" / "test_keras_model",
                project.path / "golden" / "test_keras_model",
            )
            return project, recording, project.run(**env)

        return self.once(backend, make)


@pytest.fixture(scope="module")
def keras_runs(tmp_path_factory, inner_environ):
    return KerasRuns(tmp_path_factory, inner_environ)


def outcome(outcomes, test):
    return outcomes[test][0]


@pytest.mark.skipif("tensorflow" not in BACKENDS, reason="tensorflow is not installed")
def test_keras_life_cycle_and_a_1e3_weight_change(keras_runs):
    project, result, outcomes = keras_runs.tensorflow()
    assert outcome(outcomes, "test_keras_model::test_dense") == "passed", result.stdout.str()
    recorded = project.golden("test_keras_model", "test_dense").read_bytes()
    check = json.loads(recorded)["checks"]["default"]
    assert check["environment"]["keras_backend"] == "tensorflow"
    assert check["environment"]["onednn"] == "default"
    params = check["variants"]["units=5"]["parameters"]
    assert {k: v["shape"] for k, v in params.items()} == {
        "dense/kernel": [784, 5],
        "dense/bias": [5],
    }

    again, result, outcomes = keras_runs.tensorflow_again()
    out = result.stdout.str()
    assert outcome(outcomes, "test_keras_model::test_dense") == "passed", out  # a rerun
    status, message = outcomes["test_keras_scaled::test_dense"]  # every weight x (1 + 1e-3)
    assert status == "failed", out
    assert "likely cause: initial weights changed" in message
    status, message = outcomes["test_keras_new::test_dense"]
    assert status == "failed" and "no golden for the check of test_dense" in message
    assert again.golden("test_keras_model", "test_dense").read_bytes() == recorded
    assert again.golden("test_keras_scaled", "test_dense").read_bytes() == recorded
    assert not again.golden("test_keras_new", "test_dense").exists()


@pytest.mark.skipif("tensorflow" not in BACKENDS, reason="tensorflow is not installed")
def test_onednn_on_vs_off_passes_under_default_tolerance(keras_runs):
    result, outcomes = keras_runs.onednn_off()
    assert outcome(outcomes, "test_keras_model::test_dense") == "passed", result.stdout.str()
    result.assert_outcomes(passed=2)


@pytest.mark.skipif(len(BACKENDS) < 2 or "tensorflow" not in BACKENDS, reason="needs two backends")
@pytest.mark.parametrize("other", [b for b in BACKENDS if b != "tensorflow"])
def test_backend_switch_fails_with_framework_init_passes_with_portable(keras_runs, other):
    tensorflow, recording, recorded = keras_runs.tensorflow()
    for test in ("test_dense", "test_dense_portable"):
        assert outcome(recorded, f"test_keras_model::{test}") == "passed", recording.stdout.str()
    project, _, (result, outcomes) = keras_runs.other(other)
    status, message = outcomes["test_keras_model::test_dense"]  # framework weights
    assert status == "failed", result.stdout.str()
    assert f"the Keras backend changed (tensorflow -> {other})" in message
    assert "weights='portable'" in message
    assert outcome(outcomes, "test_keras_model::test_dense_portable") == "passed"
    for test in ("test_dense", "test_dense_portable"):
        golden = project.golden("test_keras_model", test).read_bytes()
        assert golden == tensorflow.golden("test_keras_model", test).read_bytes()


def names_printed(result):
    line = next(x for x in result.stdout.lines if "NAMES " in x)
    return eval(line.split("NAMES ", 1)[1])  # our own printed dict literal


@pytest.mark.parametrize("backend", BACKENDS)
def test_model_kinds_and_stable_weight_names(keras_runs, backend):
    if backend == "tensorflow":
        _, recording, recorded = keras_runs.tensorflow()
        _, again, checked = keras_runs.tensorflow_again()
    else:
        _, (recording, recorded), (again, checked) = keras_runs.other(backend)
    assert outcome(recorded, "test_kinds::test_kinds") == "passed", recording.stdout.str()
    names = names_printed(recording)
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
    assert outcome(checked, "test_kinds::test_kinds") == "passed", again.stdout.str()  # a rerun


@pytest.mark.parametrize("backend", BACKENDS)
def test_seeding_restores_every_generator(keras_runs, backend):
    if backend == "tensorflow":
        _, result, outcomes = keras_runs.tensorflow()
    else:
        _, (result, outcomes), _ = keras_runs.other(backend)
    assert outcomes["test_rng::test_rng"] == ("passed", ""), result.stdout.str()


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b in ("tensorflow", "torch")])
def test_keras_layers_tracked_twice_or_built_on_first_call_are_recorded_once_per_call(
    keras_runs, backend
):
    """``SHARED_LAYERS``: moved here from test_layers.py, to run in the sessions above."""
    if backend == "tensorflow":
        _, result, outcomes = keras_runs.tensorflow()
    else:
        _, (result, outcomes), _ = keras_runs.other(backend)
    status, message = outcomes["test_shared_layers::test_shared_layers"]
    assert status == "passed", message or result.stdout.str()


@pytest.mark.skipif("tensorflow" not in BACKENDS, reason="tensorflow is not installed")
def test_keras_text_and_sparse_outputs_say_what_to_return(keras_runs):
    _, result, outcomes = keras_runs.tensorflow_again()
    assert_clean_failure(result)
    status, message = outcomes["test_outputs::test_strings"]
    assert status == "failed", result.stdout.str()
    assert "variant units=4: output 'output' holds object values (EagerTensor)" in message
    status, message = outcomes["test_outputs::test_sparse"]
    assert status == "failed"
    assert "variant units=4: output 'output' is a SparseTensor: return a dense tensor" in message
