"""Localisation (issue 15): goldens record each leaf layer's output; a failing check names the
first layer whose output moved. Inner sessions are subprocesses (they import torch/Keras).

The torch tests share their sessions (``TorchRuns``: each runs once, when a test first needs
it): one records every torch model, the others check copies of that recording beside
changed models whose goldens are copied from it (a module of another name, the same test):
each test reads its inner tests' outcomes and messages. The README's ``-n 2 --dist loadfile``
runs the module on one worker, so each session runs once (under another distribution, each
worker runs the sessions its tests need)."""

import importlib.util
import json
import shutil
import textwrap

import pytest

from .helpers import (
    SharedRuns,
    assert_clean_failure,
    golden_of,
    run_each,
    run_module,
)

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


def _checks(path):
    """The checks of a JSON report, by node id."""
    return {c["nodeid"]: c for c in json.loads(path.read_text())["checks"]}


#: TORCH_MODEL with one test (k = 0), and as changed: a BatchNorm's eps, GELU's tanh
#: approximation, the last layer's width; each checked against the recorded test_net[0].
ONE = TORCH_MODEL.replace("range(14)", "[0]")
EPS_CHANGED = ONE.replace('os.environ.get("EPS_LAYER")', '"blocks.b3.1"')
GELU_CHANGED = ONE.replace('os.environ.get("GELU_TANH")', '"1"')
STRUCTURE_CHANGED = ONE.replace("nn.Linear(width, 8)", "nn.Linear(width, 9)")


def strip_layers(path):
    """The golden at ``path`` as recorded before layer records: (its text, the original)."""
    data = json.loads(path.read_text())
    old = json.loads(path.read_text())
    for variant in old["checks"]["default"]["variants"].values():
        del variant["layers"]  # as recorded before this feature
    text = json.dumps(old, indent=2) + "\n"
    path.write_text(text)
    return text, data


class TorchRuns(SharedRuns):
    """The torch sessions of this module (see ``SharedRuns``)."""

    def _copy(self, name, recorded):
        project = self.project(name)
        recorded.copy(project.path)
        return project

    @staticmethod
    def _golden_as(project, module, test, *changed):
        """``module``'s golden of ``test``, copied for each module in ``changed``."""
        for other in changed:
            (project.path / "golden" / other).mkdir(exist_ok=True)
            shutil.copy(project.golden(module, test), project.golden(other, test))

    def recording(self):
        """test_net (14 tests), test_small and test_old recorded in one session:
        (project, result, outcomes)."""

        def make():
            project = self.project("layers-torch")
            project.write(test_net=TORCH_MODEL, test_small=TORCH_PASSING, test_old=OLD_GOLDEN)
            # test_small asserts one forward hook per variant observed while recording
            return (project, *project.run("--snapshot-update", "-q", EXPECT_HOOKS="2"))

        return self.once("recording", make)

    def scaled(self):
        """test_net with layer k's weights scaled by 1 + 1e-3: (project, result, outcomes)."""

        def make():
            project = self._copy("layers-scaled", self.recording()[0])
            report = "--weightshape-report=report.json"
            return (project, *project.run("test_net.py", report, SCALE="1.001"))

        return self.once("scaled", make)

    def eps(self):
        """A BatchNorm's eps changed (test_eps), with an HTML and a Markdown report:
        (project, result, outcomes)."""

        def make():
            project = self._copy("layers-eps", self.recording()[0])
            project.write(test_eps=EPS_CHANGED)
            self._golden_as(project, "test_net", "test_net[0]", "test_eps")
            reports = ("--weightshape-report=report.html", "--weightshape-report=report.md")
            return (project, *project.run("test_eps.py", *reports))

        return self.once("eps", make)

    def checks(self):
        """One session over the recording and changed copies: test_net[0] as recorded
        (test_net), GELU changed (test_gelu), a wider last layer (test_structure);
        test_small (each of its forward hooks counted) and test_small_scaled (its last
        layer scaled by 1.01); test_old and test_old_scaled (scaled by 1.01) with the golden
        recorded before layer records. (project, result, outcomes, the old golden's text and
        its original document)."""

        def make():
            project = self._copy("layers-checks", self.recording()[0])
            for path in (project.path / "golden" / "test_net").glob("*.json"):
                if path.name != "test_net[0].json":
                    path.unlink()
            project.write(
                test_net=ONE,
                test_gelu=GELU_CHANGED,
                test_structure=STRUCTURE_CHANGED,
                test_small_scaled=TORCH_PASSING.replace(
                    'os.environ.get("SCALE", "1")', '"1.01"'
                ).replace('os.environ.get("EXPECT_HOOKS")', "None"),
                test_old_scaled=OLD_GOLDEN.replace('os.environ.get("SCALE", "1")', '"1.01"'),
            )
            self._golden_as(project, "test_net", "test_net[0]", "test_gelu", "test_structure")
            self._golden_as(project, "test_small", "test_small", "test_small_scaled")
            old, data = strip_layers(project.golden("test_old", "test_old"))
            self._golden_as(project, "test_old", "test_old", "test_old_scaled")
            # a passing check observes nothing: no forward hook
            result, outcomes = project.run("-p", "no:randomly", EXPECT_HOOKS="0")
            return project, result, outcomes, old, data

        return self.once("checks", make)


@pytest.fixture(scope="module")
def torch_runs(tmp_path_factory, inner_environ):
    return TorchRuns(tmp_path_factory, inner_environ)


@needs_torch
def test_torch_scaling_any_layer_by_1e3_names_it(torch_runs):
    """Record once; then scale layer k (every k) by 1 + 1e-3: each failure names k."""
    recorded, result, outcomes = torch_runs.recording()
    assert [outcomes[f"test_net::test_net[{k}]"][0] for k in range(14)] == ["passed"] * 14, (
        result.stdout.str()
    )
    golden = recorded.golden("test_net", "test_net[0]")
    layers = json.loads(golden.read_text())["checks"]["default"]["variants"]["width=16"]["layers"]
    names = list(layers["entries"])
    assert len(names) == 20 and names[:3] == ["stem.0", "stem.1", "stem.2"]
    assert names[-2:] == ["head.norm", "head.proj"]
    assert layers["entries"]["blocks.b2.1"][:3] == ["BatchNorm1d", "float32", "6x16"]
    assert layers["entries"]["blocks.b2.1"][3] == 6 * 16  # count
    project, result, _ = torch_runs.scaled()
    result.assert_outcomes(failed=14)
    out = assert_clean_failure(result)
    checks = _checks(project.path / "report.json")
    for k, (name, kind) in enumerate(WEIGHTED):
        check = checks[f"test_net.py::test_net[{k}]"]
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
def test_torch_non_weight_changes_name_their_layer(torch_runs):
    """A BatchNorm's eps and GELU's tanh approximation change no weight: still named."""
    project, result, outcomes = torch_runs.eps()
    result.assert_outcomes(failed=1)
    assert "first moved layer: blocks.b3.1 (BatchNorm1d)" in assert_clean_failure(result)
    page = (project.path / "report.html").read_text()
    assert "first moved layer: <code>blocks.b3.1</code> (BatchNorm1d)" in page
    chart = page.split('aria-label="drift of each layer output')[1].split("</svg>")[0]
    bars = chart.split("<rect ")[1:]
    labels = [bar.split("<title>")[1].split(":")[0] for bar in bars]
    assert len(labels) == 20 and labels[0] == "stem.0 (Linear)"  # execution order
    red = [label for label, bar in zip(labels, bars, strict=True) if "#d62728" in bar]
    assert red[0] == "blocks.b3.1 (BatchNorm1d)"  # the first red bar is the culprit
    markdown = (project.path / "report.md").read_text()
    assert "First moved layer: `blocks.b3.1` (BatchNorm1d), variant width=16" in markdown

    _, result, outcomes, _, _ = torch_runs.checks()
    assert_clean_failure(result)
    status, message = outcomes["test_gelu::test_net[0]"]
    assert status == "failed", result.stdout.str()
    assert "first moved layer: stem.2 (GELU)" in message
    assert "the 2 layer outputs before it hold" in message
    assert outcomes["test_net::test_net[0]"][0] == "passed"  # benign rerun


@needs_torch
def test_torch_structure_change_names_the_first_changed_layer(torch_runs):
    _, result, outcomes, _, _ = torch_runs.checks()
    assert_clean_failure(result)
    status, message = outcomes["test_structure::test_net[0]"]
    assert status == "failed", result.stdout.str()
    assert "first changed layer: head.proj (Linear)" in message
    assert "shape 6x8 -> 6x9" in message


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
def test_torch_passing_checks_observe_no_layers_and_hooks_are_removed(torch_runs):
    _, result, outcomes = torch_runs.recording()  # recording: one forward per variant observed
    assert outcomes["test_small::test_small"][0] == "passed", result.stdout.str()
    _, result, outcomes, _, _ = torch_runs.checks()
    assert outcomes["test_small::test_small"][0] == "passed", result.stdout.str()  # no hook
    status, message = outcomes["test_small_scaled::test_small"]
    assert status == "failed" and "first moved layer: 2 (Linear)" in message
    assert_clean_failure(result)


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
def test_old_goldens_without_layers_keep_working_and_say_how_to_localise(pytester, torch_runs):
    checked, result, outcomes, old, data = torch_runs.checks()
    assert outcomes["test_old::test_old"][0] == "passed", result.stdout.str()
    assert checked.golden("test_old", "test_old").read_text() == old
    status, message = outcomes["test_old_scaled::test_old"]
    assert status == "failed"
    assert_clean_failure(result)
    assert "first moved layer:" not in message
    assert "recorded without layers; recording it again" in message
    assert checked.golden("test_old_scaled", "test_old").read_text() == old
    pytester.makepyfile(test_old=OLD_GOLDEN)
    path = golden_of(pytester, "test_old", "test_old")
    path.parent.mkdir(parents=True)
    path.write_text(old)
    listed = run_module("show", str(path), cwd=pytester.path).stdout
    assert "layers: not recorded (an older golden: recording it again" in listed
    result, outcomes = run_each(pytester, "--snapshot-update", "-q")  # gains its layers
    assert outcomes["test_old::test_old"][0] == "passed", result.stdout.str()
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
    reads KERAS_BACKEND when imported); a BatchNormalization epsilon is named too (test_eps:
    test_net[0] with one epsilon changed, checked against test_net[0]'s golden in the same
    session)."""
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    pytester.makepyfile(test_net=KERAS_MODEL)
    # recorded once: unscaled (SCALE 1), every k builds the same model, so test_net[k]'s
    # golden is test_net[0]'s under its own name (fourteen Keras recordings cost ~20 s)
    result, outcomes = run_each(pytester, "--snapshot-update", "-q", "test_net.py::test_net[0]")
    result.assert_outcomes(passed=1)
    recorded = json.loads(golden_of(pytester, "test_net", "test_net[0]").read_text())
    names = list(recorded["checks"]["default"]["variants"]["width=16"]["layers"]["entries"])
    assert len(names) == 20 and names[-2:] == ["head.layer_normalization", "head.dense_6"]
    for k in range(1, 14):
        golden_of(pytester, "test_net", f"test_net[{k}]").write_text(
            json.dumps({**recorded, "test": f"test_net[{k}]"}, indent=2)
        )
    eps = (
        KERAS_MODEL.replace('float(os.environ.get("SCALE", "1"))', "1.0")
        .replace('os.environ.get("EPS")', '"3"')
        .replace("range(14)", "[0]")
    )
    pytester.makepyfile(test_eps=eps)
    golden_of(pytester, "test_eps", "test_net[0]").parent.mkdir()
    shutil.copy(
        golden_of(pytester, "test_net", "test_net[0]"),
        golden_of(pytester, "test_eps", "test_net[0]"),
    )
    monkeypatch.setenv("SCALE", "1.001")
    result, outcomes = run_each(pytester, "--weightshape-report=report.json")
    result.assert_outcomes(failed=15)
    assert_clean_failure(result)
    checks = _checks(pytester.path / "report.json")
    for k, (name, kind) in enumerate(KERAS_WEIGHTED):
        message = checks[f"test_net.py::test_net[{k}]"]["message"]
        assert f"first moved layer: {name} ({kind})" in message, (k, message)
    message = outcomes["test_eps::test_net[0]"][1]
    assert "first moved layer: batch_normalization_4 (BatchNormalization)" in message
