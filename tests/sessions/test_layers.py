"""Localisation (issue 15): goldens record each leaf layer's output; a failing check names the
first layer whose output moved. Inner sessions are subprocesses (they import torch/Keras)."""

import importlib.util
import json
import textwrap

import pytest

from .helpers import assert_clean_failure, golden_of, run, run_module

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")

#: A 20-layer torch model with nested Sequential / ModuleDict names; the test is parametrized
#: over the layer k that SCALE multiplies (1 + 1e-3 in the failing run), so one inner session
#: sweeps every k. NAMES lists the 20 layers in execution order.
TORCH_MODEL = textwrap.dedent(
    """
    import os

    import pytest
    import torch
    from torch import nn

    SCALE = float(os.environ.get("SCALE", "1"))
    EPS_LAYER = os.environ.get("EPS_LAYER")
    GELU_TANH = os.environ.get("GELU_TANH")


    class Net(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.stem = nn.Sequential(nn.Linear(12, width), nn.BatchNorm1d(width), nn.GELU())
            self.blocks = nn.ModuleDict({
                f"b{i}": nn.Sequential(
                    nn.Linear(width, width), nn.BatchNorm1d(width), nn.Tanh()
                )
                for i in range(5)
            })
            self.head = nn.ModuleDict({"norm": nn.LayerNorm(width), "proj": nn.Linear(width, 8)})

        def forward(self, x):
            x = self.stem(x)
            for block in self.blocks.values():
                x = block(x)
            return self.head["proj"](self.head["norm"](x))


    def weighted(model):
        kinds = (nn.Linear, nn.BatchNorm1d, nn.LayerNorm)
        return [m for m in model.modules() if isinstance(m, kinds)]


    def build(width, k):
        model = Net(width)
        stream = torch.Generator().manual_seed(1)  # its own: the weights' draws stay alone
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm1d):  # not the identity in eval mode
                    m.running_mean.uniform_(-0.5, 0.5, generator=stream)
                    m.running_var.uniform_(0.5, 1.5, generator=stream)
        layer = weighted(model)[k]
        with torch.no_grad():
            for p in layer.parameters():
                p.mul_(SCALE)
        if EPS_LAYER is not None:
            dict(model.named_modules())[EPS_LAYER].eps = 1e-3
        if GELU_TANH:
            model.stem[2].approximate = "tanh"
        return model


    @pytest.mark.parametrize("k", range(14))
    @pytest.mark.shape_variant(width=[16, 24])
    def test_net(shape_variant, k):
        shape_variant.check(lambda width: build(width, k), inputs=(6, 12))
    """
)
#: The layers the test can scale (weighted(model)), by k.
WEIGHTED = [
    ("stem.0", "Linear"),
    ("stem.1", "BatchNorm1d"),
    *[(f"blocks.b{i}.{j}", t) for i in range(5) for j, t in ((0, "Linear"), (1, "BatchNorm1d"))],
    ("head.norm", "LayerNorm"),
    ("head.proj", "Linear"),
]


def _checks(pytester, report="report.json"):
    data = json.loads((pytester.path / report).read_text())
    return {c["nodeid"].split("::")[-1]: c for c in data["checks"]}


@needs_torch
def test_torch_scaling_any_layer_by_1e3_names_it(pytester, monkeypatch):
    """Record once; then scale layer k (every k) by 1 + 1e-3: each failure names k."""
    pytester.makepyfile(test_net=TORCH_MODEL)
    run(pytester, "--snapshot-update", "-q").assert_outcomes(passed=14)
    recorded = json.loads(golden_of(pytester, "test_net", "test_net[0]").read_text())
    layers = recorded["checks"]["default"]["variants"]["width=16"]["layers"]
    names = list(layers["entries"])
    assert len(names) == 20 and names[:3] == ["stem.0", "stem.1", "stem.2"]
    assert names[-2:] == ["head.norm", "head.proj"]
    assert layers["entries"]["blocks.b2.1"][:3] == ["BatchNorm1d", "float32", "6x16"]
    assert layers["entries"]["blocks.b2.1"][3] == 6 * 16  # count
    monkeypatch.setenv("SCALE", "1.001")
    result = run(pytester, "--weightshape-report=report.json")
    result.assert_outcomes(failed=14)
    out = assert_clean_failure(result)
    checks = _checks(pytester)
    for k, (name, kind) in enumerate(WEIGHTED):
        check = checks[f"test_net[{k}]"]
        assert f"first moved layer: {name} ({kind})" in check["message"], (k, check["message"])
        located = check["layers"]
        assert {each["variant"] for each in located} == {"width=16", "width=24"}
        for each in located:
            assert each["status"] == "moved"
            assert each["first"]["name"] == name and each["first"]["type"] == kind
            drifts = [d[0] for d in each["drifts"]]
            index = drifts.index(name)
            assert all(float(d[2]) <= 1.0 for d in each["drifts"][:index])  # before it: hold
    assert out.count("first moved layer: ") == 14


@needs_torch
def test_torch_non_weight_changes_name_their_layer(pytester, monkeypatch):
    """A BatchNorm's eps and GELU's tanh approximation change no weight: still named."""
    pytester.makepyfile(test_net=TORCH_MODEL.replace("range(14)", "[0]"))  # one test
    run(pytester, "--snapshot-update", "-q").assert_outcomes(passed=1)
    monkeypatch.setenv("EPS_LAYER", "blocks.b3.1")
    result = run(pytester, "--weightshape-report=report.html")
    result.assert_outcomes(failed=1)
    assert "first moved layer: blocks.b3.1 (BatchNorm1d)" in assert_clean_failure(result)
    page = (pytester.path / "report.html").read_text()
    assert "first moved layer: <code>blocks.b3.1</code> (BatchNorm1d)" in page
    chart = page.split('aria-label="drift of each layer output')[1].split("</svg>")[0]
    bars = chart.split("<rect ")[1:]
    labels = [bar.split("<title>")[1].split(":")[0] for bar in bars]
    assert len(labels) == 20 and labels[0] == "stem.0 (Linear)"  # execution order
    red = [label for label, bar in zip(labels, bars, strict=True) if "#d62728" in bar]
    assert red[0] == "blocks.b3.1 (BatchNorm1d)"  # the first red bar is the culprit
    run(pytester, "--weightshape-report=report.md").assert_outcomes(failed=1)
    markdown = (pytester.path / "report.md").read_text()
    assert "First moved layer: `blocks.b3.1` (BatchNorm1d), variant width=16" in markdown
    monkeypatch.delenv("EPS_LAYER")
    monkeypatch.setenv("GELU_TANH", "1")
    result = run(pytester)
    result.assert_outcomes(failed=1)
    out = assert_clean_failure(result)
    assert "first moved layer: stem.2 (GELU)" in out
    assert "the 2 layer outputs before it hold" in out
    monkeypatch.delenv("GELU_TANH")
    run(pytester, "-p", "no:randomly", "-q").assert_outcomes(passed=1)  # benign rerun


@needs_torch
def test_torch_structure_change_names_the_first_changed_layer(pytester, monkeypatch):
    source = TORCH_MODEL.replace("range(14)", "[0]")
    pytester.makepyfile(test_net=source)
    run(pytester, "--snapshot-update", "-q").assert_outcomes(passed=1)
    pytester.makepyfile(test_net=source.replace("nn.Linear(width, 8)", "nn.Linear(width, 9)"))
    result = run(pytester)
    result.assert_outcomes(failed=1)
    out = assert_clean_failure(result)
    assert "first changed layer: head.proj (Linear)" in out
    assert "shape 6x8 -> 6x9" in out


TORCH_PASSING = textwrap.dedent(
    """
    import os

    import pytest
    import torch
    from torch import nn

    CALLS = []


    class Counting(nn.Linear):
        def register_forward_hook(self, *args, **kwargs):
            CALLS.append("hook")
            return super().register_forward_hook(*args, **kwargs)


    def build(width):
        model = nn.Sequential(Counting(8, width), nn.ReLU(), nn.Linear(width, 4))
        with torch.no_grad():
            model[2].weight.mul_(float(os.environ.get("SCALE", "1")))
        return model


    @pytest.mark.shape_variant(width=[8, 16])
    def test_small(shape_variant):
        shape_variant.check(build, inputs=(3, 8))
        shape = os.environ.get("EXPECT_HOOKS")
        if shape is not None:
            assert len(CALLS) == int(shape), CALLS
    """
)


@needs_torch
def test_torch_passing_checks_observe_no_layers_and_hooks_are_removed(pytester, monkeypatch):
    pytester.makepyfile(test_small=TORCH_PASSING)
    monkeypatch.setenv("EXPECT_HOOKS", "2")  # recording: one forward per variant observed
    run(pytester, "--snapshot-update", "-q").assert_outcomes(passed=1)
    monkeypatch.setenv("EXPECT_HOOKS", "0")  # a passing check observes nothing
    run(pytester, "-q").assert_outcomes(passed=1)
    monkeypatch.delenv("EXPECT_HOOKS")
    monkeypatch.setenv("SCALE", "1.01")
    result = run(pytester)
    result.assert_outcomes(failed=1)
    assert "first moved layer: 2 (Linear)" in assert_clean_failure(result)


OLD_GOLDEN = textwrap.dedent(
    """
    import os

    import pytest
    from torch import nn
    import torch


    def build(width):
        model = nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 4))
        with torch.no_grad():
            model[0].weight.mul_(float(os.environ.get("SCALE", "1")))
        return model


    @pytest.mark.shape_variant(width=[8, 16])
    def test_old(shape_variant):
        shape_variant.check(build, inputs=(3, 8))
    """
)


@needs_torch
def test_old_goldens_without_layers_keep_working_and_say_how_to_localise(pytester, monkeypatch):
    pytester.makepyfile(test_old=OLD_GOLDEN)
    run(pytester, "--snapshot-update", "-q").assert_outcomes(passed=1)
    path = golden_of(pytester, "test_old", "test_old")
    data = json.loads(path.read_text())
    for variant in data["checks"]["default"]["variants"].values():
        del variant["layers"]  # as recorded before this feature
    old = json.dumps(data, indent=2) + "\n"
    path.write_text(old)
    run(pytester, "-q").assert_outcomes(passed=1)
    assert path.read_text() == old
    monkeypatch.setenv("SCALE", "1.01")
    result = run(pytester)
    result.assert_outcomes(failed=1)
    out = assert_clean_failure(result)
    assert "first moved layer:" not in out
    assert "recorded without layers; recording it again" in out
    assert path.read_text() == old
    monkeypatch.delenv("SCALE")
    listed = run_module("show", str(path), cwd=pytester.path).stdout
    assert "layers: not recorded (an older golden: recording it again" in listed
    run(pytester, "--snapshot-update", "-q").assert_outcomes(passed=1)  # gains its layers
    listed = run_module("show", "--layers", str(path), cwd=pytester.path).stdout
    assert "layers of width=8 (3 outputs in execution order)" in listed
    assert "  2      Linear  3x4" in listed
    again = json.loads(path.read_text())["checks"]["default"]
    assert all("entries" in v["layers"] for v in again["variants"].values())
    assert (
        again["variants"]["width=8"]["outputs"]
        == data["checks"]["default"]["variants"]["width=8"]["outputs"]
    )


#: A 20-layer Keras functional model (a nested Sequential head included), automatic layer
#: names; parametrized over the weighted layer k that SCALE multiplies.
KERAS_MODEL = textwrap.dedent(
    """
    import os

    import keras
    import numpy as np
    import pytest

    SCALE = float(os.environ.get("SCALE", "1"))
    EPS = os.environ.get("EPS")


    def build(width, k):
        weighted = []
        stream = np.random.default_rng(1)

        def add(layer, x):
            y = layer(x)
            if layer.weights:
                weighted.append(layer)
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.moving_mean.assign(stream.uniform(-0.5, 0.5, width).astype("float32"))
                layer.moving_variance.assign(stream.uniform(0.5, 1.5, width).astype("float32"))
            return y

        inputs = keras.Input((12,))
        x = add(keras.layers.Dense(width), inputs)
        x = add(keras.layers.BatchNormalization(), x)
        x = add(keras.layers.Activation("gelu"), x)
        for i in range(5):
            x = add(keras.layers.Dense(width), x)
            eps = 1e-2 if EPS == str(i) else 1e-3
            x = add(keras.layers.BatchNormalization(epsilon=eps), x)
            x = add(keras.layers.Activation("tanh"), x)
        head = keras.Sequential(
            [keras.Input((width,)), keras.layers.LayerNormalization(), keras.layers.Dense(8)],
            name="head",
        )
        outputs = head(x)
        weighted += head.layers
        model = keras.Model(inputs, outputs)
        for weight in weighted[k].weights:
            if weight.trainable:
                weight.assign(weight * SCALE)
        return model


    @pytest.mark.parametrize("k", range(14))
    @pytest.mark.shape_variant(width=[16, 24])
    def test_net(shape_variant, k):
        shape_variant.check(lambda width: build(width, k), inputs=(6, 12))
    """
)
KERAS_WEIGHTED = [
    ("dense", "Dense"),
    ("batch_normalization", "BatchNormalization"),
    *[
        (name, kind)
        for i in range(1, 6)
        for name, kind in (
            (f"dense_{i}", "Dense"),
            (f"batch_normalization_{i}", "BatchNormalization"),
        )
    ],
    ("head.layer_normalization", "LayerNormalization"),
    ("head.dense_6", "Dense"),
]


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="needs keras")
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs tensorflow")
def test_keras_functional_scaling_any_layer_by_1e3_names_it(pytester, monkeypatch):
    """As for torch, on a Keras functional model (TensorFlow backend, a subprocess: Keras
    reads KERAS_BACKEND when imported); a BatchNormalization epsilon is named too."""
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    pytester.makepyfile(test_net=KERAS_MODEL)
    run(pytester, "--snapshot-update", "-q").assert_outcomes(passed=14)
    recorded = json.loads(golden_of(pytester, "test_net", "test_net[0]").read_text())
    names = list(recorded["checks"]["default"]["variants"]["width=16"]["layers"]["entries"])
    assert len(names) == 20 and names[-2:] == ["head.layer_normalization", "head.dense_6"]
    monkeypatch.setenv("SCALE", "1.001")
    result = run(pytester, "--weightshape-report=report.json")
    result.assert_outcomes(failed=14)
    assert_clean_failure(result)
    checks = _checks(pytester)
    for k, (name, kind) in enumerate(KERAS_WEIGHTED):
        message = checks[f"test_net[{k}]"]["message"]
        assert f"first moved layer: {name} ({kind})" in message, (k, message)
    monkeypatch.delenv("SCALE")
    monkeypatch.setenv("EPS", "3")
    result = run(pytester, "test_net.py::test_net[0]")
    result.assert_outcomes(failed=1)
    assert "first moved layer: batch_normalization_4 (BatchNormalization)" in result.stdout.str()


KERAS_SHARED = textwrap.dedent(
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
    for model in (functional, subclassed):
        _, record = ADAPTER.observe_layers(model, lambda: model(x, training=False))
        print("NAMES", list(record["entries"]))
    """
)


@pytest.mark.parametrize("backend", ["tensorflow", "torch"])
def test_keras_layers_tracked_twice_or_built_on_first_call_are_recorded_once_per_call(
    backend, tmp_path
):
    """A Keras layer shared by a nested model and its outer one, or held by two attributes of
    a subclassed model, gets one entry per call (not one per path it is tracked under); a
    subclassed model built by its first call (the torch backend runs ``call`` to build it,
    then again) records its forward's calls only."""
    import os
    import pathlib
    import subprocess
    import sys

    pytest.importorskip("keras")
    pytest.importorskip(backend)
    script = tmp_path / "shared.py"
    script.write_text(KERAS_SHARED)
    root = str(pathlib.Path(__file__).resolve().parents[2])
    env = {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "", "PYTHONPATH": root}
    env["HOME"] = os.environ.get("HOME", str(tmp_path))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300
    )
    names = [line for line in result.stdout.splitlines() if line.startswith("NAMES")]
    assert names == [
        "NAMES ['inner.shared', 'inner.shared#2']",
        "NAMES ['a', 'a#2', 'b']",
    ], result.stderr[-2000:]
