"""layers: the golden form of layer records, the comparison that names the first moved
layer, and the torch adapter's observation (hooks on leaf modules, always removed)."""

import math
import warnings

import numpy as np
import pytest

from pytest_weightshape import document, layers
from pytest_weightshape.document import check_problem, layers_problem
from pytest_weightshape.layers import LayerOutput, compare_layers, localise, message_lines
from pytest_weightshape.tolerance import Override, Policy


def _stats(values):
    return layers.host_stats(np.asarray(values, dtype=np.float64))


def _record(values_by_layer, dtype="float32"):
    return layers.to_golden(
        [
            LayerOutput(name, kind, dtype, (len(values),), _stats(values))
            for name, kind, values in values_by_layer
        ]
    )


def _chain(n, moved=None, factor=1.0 + 1e-3):
    """n layers whose outputs follow each other; from layer ``moved`` on they are scaled."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(64)
    out = []
    for i in range(n):
        x = np.tanh(x * 1.3 + 0.1)
        y = x * factor if moved is not None and i >= moved else x
        out.append((f"blocks.{i}.layer", "Linear", y))
    return out


def test_host_stats_are_float64_moments():
    stats = _stats([1.0, -3.0, 2.0, 4.0])
    assert stats == {
        "count": 4,
        "mean": 1.0,
        "std": pytest.approx(math.sqrt(6.5)),
        "mean_abs": 2.5,
        "min": -3.0,
        "max": 4.0,
    }
    assert _stats([1.0, np.nan])["mean"] is None  # a golden holds no NaN
    assert layers.host_stats(np.zeros(0))["count"] == 0


def test_golden_form_is_compact_valid_and_reads_back():
    record = _record([("a.0", "Linear", [1.0, 2.0]), ("a.1", "ReLU", [0.5, 0.25])])
    assert record["fields"] == list(layers.FIELDS)
    assert record["entries"]["a.0"][:4] == ["Linear", "float32", "2", 2]
    assert layers_problem("layers", record) is None
    back = layers.entries(record)
    assert [e.name for e in back] == ["a.0", "a.1"] and back[1].stats["max"] == 0.5
    assert layers_problem("layers", {"unrecorded": "why"}) is None
    assert "must be a list of 9" in layers_problem("layers", {**record, "entries": {"x": [1]}})
    assert "must be a string" in layers_problem("layers", {"unrecorded": 3})


def test_a_golden_variant_with_bad_layers_is_refused_and_old_goldens_need_none():
    from pytest_weightshape.run import Observer
    from pytest_weightshape.spec import parse_marker

    spec = parse_marker((), {"units": [4, 2]})

    def build(units):
        return lambda x: x[:, :units] * 2.0

    doc = Observer(spec, build, (3, 5), layers=True).observe()
    assert doc["variants"]["units=4"]["layers"] == {
        "unrecorded": "a NumPy callable has no layers to observe"
    }
    assert check_problem(doc) is None
    old = Observer(spec, build, (3, 5)).observe()  # no update flag: no layers observed
    assert "layers" not in old["variants"]["units=4"] and check_problem(old) is None
    doc["variants"]["units=4"]["layers"] = {"fields": ["type"], "entries": {}}
    assert "fields must name dtype, shape" in check_problem(doc)


def test_rounding_keeps_far_below_every_tolerance():
    value = 0.123456789123
    rounded = layers.to_golden([LayerOutput("a", "T", "float64", (1,), {"mean": value})])
    kept = rounded["entries"]["a"][4]
    assert kept != value and abs(kept - value) / value < 1e-8  # float64 rtol is 1e-7


@pytest.mark.parametrize("k", range(20))
def test_scaling_layer_k_names_layer_k(k):
    golden = _record(_chain(20))
    current = _record(_chain(20, moved=k))
    found = compare_layers("v", golden, current, Policy())
    assert found.status == "moved" and found.first is not None
    assert found.first.name == f"blocks.{k}.layer"
    assert all(not d.moved for d in found.drifts[:k])
    lines = message_lines([found])
    assert lines[0] == f"first moved layer: blocks.{k}.layer (Linear)"


def test_nothing_moved_holds_and_says_where_to_look():
    golden = _record(_chain(5))
    found = compare_layers("v", golden, _record(_chain(5)), Policy())
    assert found.status == "held" and found.first is None
    assert "outside the leaf layers" in message_lines([found])[0]


def test_same_tolerance_machinery_with_per_dtype_defaults_and_overrides():
    golden, current = _record(_chain(3)), _record(_chain(3, moved=1, factor=1 + 1e-4))
    assert compare_layers("v", golden, current, Policy()).first.name == "blocks.1.layer"
    loose = Policy(default=Override(rtol=1e-3))
    assert compare_layers("v", golden, current, loose).status == "held"
    half_g = _record(_chain(3), dtype="float16")  # float16 allows 1e-3
    half_c = _record(_chain(3, moved=1, factor=1 + 1e-4), dtype="float16")
    assert compare_layers("v", half_g, half_c, Policy()).status == "held"


def test_structure_changes_name_the_first_changed_layer():
    golden = _record([("a", "Linear", [1.0, 2.0]), ("b", "ReLU", [1.0, 2.0])])
    wider = _record([("a", "Linear", [1.0, 2.0]), ("b", "ReLU", [1.0, 2.0, 3.0])])
    found = compare_layers("v", golden, wider, Policy())
    assert found.status == "changed" and found.first.name == "b"
    assert message_lines([found])[:2] == [
        "first changed layer: b (ReLU)",
        "  variant v: shape 2 -> 3",
    ]
    swapped = _record([("a", "Linear", [1.0, 2.0]), ("c", "GELU", [1.0, 2.0])])
    found = compare_layers("v", golden, swapped, Policy())
    assert found.first.name == "b" and "runs c (GELU) here now" in found.first.detail()
    longer = _record([("a", "Linear", [1.0, 2.0]), ("b", "ReLU", [1.0, 2.0]), ("n", "X", [1.0])])
    assert compare_layers("v", golden, longer, Policy()).first.name == "n"
    shorter = _record([("a", "Linear", [1.0, 2.0])])
    assert compare_layers("v", golden, shorter, Policy()).first.detail() == "no longer runs"


def test_variants_naming_the_same_layer_share_a_line_and_unrecorded_ones_say_why():
    golden = _record(_chain(4))
    current = _record(_chain(4, moved=2))
    both = [compare_layers(v, golden, current, Policy()) for v in ("a=1", "a=2")]
    lines = message_lines(both)
    assert lines.count("first moved layer: blocks.2.layer (Linear)") == 1
    assert lines[1].startswith("  variants a=1, a=2: ")
    assert "  the 2 layer outputs before it hold" in lines
    script = compare_layers("v", layers.unrecorded("a TorchScript model"), current, Policy())
    assert message_lines([script]) == ["layers (variant v): not recorded: a TorchScript model"]


def test_localise_tells_old_goldens_and_applies_the_device_floor():
    golden_layers = _record(_chain(3))
    moved = _record(_chain(3, moved=0, factor=1 + 1e-4))
    check = {"environment": {"device": "cpu"}, "variants": {"v": {"layers": golden_layers}}}
    assert localise(check, {"v": moved}, Policy())[0].status == "moved"
    across = localise(check, {"v": moved}, Policy(), device="cuda:0")  # cross-device: 1e-3
    assert across[0].status == "held"
    old = localise({"variants": {"v": {}}}, {"v": {}}, Policy())[0]
    assert old.status == "old golden" and "--snapshot-update" in old.note


def test_large_models_keep_the_first_layers_and_say_so():
    many = [LayerOutput(f"l{i}", "ReLU", "float32", (2,), _stats([i, i])) for i in range(2005)]
    record = layers.to_golden(many)
    assert len(record["entries"]) == layers.MAX_LAYERS and record["total"] == 2005
    found = compare_layers("v", record, record, Policy())
    assert "the first 2000 of 2005 layer outputs were recorded" in found.note


def test_flatten_output_names_parts_as_model_outputs():
    is_leaf = lambda v: isinstance(v, np.ndarray)  # noqa: E731
    a, b = np.zeros(1), np.ones(1)
    assert layers.flatten_output(a, is_leaf) == [("", a)]
    parts = layers.flatten_output((a, {"h_n": b, "skip": None}, "text"), is_leaf)
    assert [p[0] for p in parts] == [".0", ".1.h_n"]
    assert layers.unique_names(["a", "b", "a", "a"]) == ["a", "b", "a#2", "a#3"]


# -- the torch adapter ------------------------------------------------------------------------


def test_torch_observation_names_repeats_flattens_and_removes_hooks_on_error():
    torch = pytest.importorskip("torch")
    from pytest_weightshape.frameworks.torch_adapter import ADAPTER, layer_stats

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.ModuleDict({"fc": torch.nn.Linear(4, 4)})
            self.act = torch.nn.ReLU()
            self.rnn = torch.nn.GRU(4, 3, batch_first=True)
            self.fail = False

        def forward(self, x):
            x = self.act(self.body["fc"](x))
            x = self.act(x - 0.5)
            if self.fail:
                raise RuntimeError("boom")
            return self.rnn(x.unsqueeze(1))[0]

    model = Net().eval()
    x = torch.randn(5, 4)
    raw, record = ADAPTER.observe_layers(model, lambda: ADAPTER.forward(model, (x,)))
    assert list(record["entries"]) == ["body.fc", "act", "act#2", "rnn.output", "rnn.h_n"]
    assert record["entries"]["rnn.h_n"][:3] == ["GRU", "float32", "1x5x3"]
    assert torch.equal(raw, model(x))
    model.fail = True
    with pytest.raises(RuntimeError, match="boom"):
        ADAPTER.observe_layers(model, lambda: ADAPTER.forward(model, (x,)))
    assert all(not m._forward_hooks for m in model.modules())
    t = torch.tensor([[1.0, -3.0], [2.0, 4.0]])
    assert layer_stats(t) == _stats([1.0, -3.0, 2.0, 4.0])
    assert layer_stats(t.half())["max"] == 4.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.10+: jit is deprecated
        scripted = torch.jit.script(torch.nn.Linear(2, 2))
    _, record = ADAPTER.observe_layers(scripted, lambda: scripted(torch.ones(1, 2)))
    assert "TorchScript" in record["unrecorded"]


def test_an_older_golden_gains_what_it_lacks_and_keeps_every_recorded_value():
    golden = {
        "seed": 0,
        "environment": {"torch": "2.13.0"},
        "variants": {
            "a=1": {"base": True, "outputs": {"output": {"stats": {"mean": 1.0}}}},
            "a=2": {"base": False, "outputs": {}, "divergence": {"x": 1}},
        },
    }
    record = _record(_chain(2))
    current = {
        "seed": 0,
        "environment": {"torch": "2.14.1", "threads": 2},
        "variants": {
            "a=1": {
                "base": True,
                "outputs": {"output": {"stats": {"mean": 1.0000001}, "floor": {"mean": 1e-9}}},
                "layers": record,
            },
            "a=2": {"base": False, "outputs": {}, "layers": record, "divergence": {"x": 1.1}},
        },
    }
    merged = document.with_missing(golden, current)
    assert merged != golden
    one = merged["variants"]["a=1"]
    assert one["outputs"]["output"] == {"stats": {"mean": 1.0}, "floor": {"mean": 1e-9}}
    assert one["layers"] == record
    assert list(merged["variants"]["a=2"]) == ["base", "outputs", "layers", "divergence"]
    assert merged["variants"]["a=2"]["divergence"] == {"x": 1}
    assert merged["environment"] == {"torch": "2.13.0"}  # the recorded one, never mixed
    assert document.with_missing(merged, current) == merged  # once is enough
    # a variant's layers are one record: an unrecorded note is not completed with entries
    noted = {"variants": {"a=1": {"layers": layers.unrecorded("a NumPy callable")}}}
    assert (
        document.with_missing(noted, current)["variants"]["a=1"]["layers"]
        == noted["variants"]["a=1"]["layers"]
    )


def test_torch_submodules_scripted_or_compiled_are_skipped_and_the_rest_observed():
    """A model holding a TorchScript submodule (which refuses hooks) or a torch.compile'd one
    still records: the layers outside them are observed, nothing inside them is hooked."""
    torch = pytest.importorskip("torch")
    from pytest_weightshape.frameworks.torch_adapter import ADAPTER

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.10+: jit is deprecated
        scripted = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()))
        compiled = torch.compile(torch.nn.Linear(4, 4))  # imports jit modules too

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pre = torch.nn.Linear(4, 4)
            self.script = scripted
            self.compiled = compiled
            self.head = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.script(self.pre(x)))  # ``compiled`` is held, not run

    model = Net().eval()
    x = torch.randn(3, 4)
    raw, record = ADAPTER.observe_layers(model, lambda: ADAPTER.forward(model, (x,)))
    assert list(record["entries"]) == ["pre", "head"]
    assert torch.equal(raw, model(x))
    plain = [m for m in model.modules() if not isinstance(m, torch.jit.ScriptModule)]
    assert all(not m._forward_hooks for m in plain)


def test_html_layer_chart_draws_the_first_moved_layer_however_deep_it_lies():
    """The per-layer chart draws at most LAYER_BARS bars: on a 2000-layer model whose first
    moved layer is the 1500th, the bars drawn start shortly before it (the first red bar is
    the culprit), the earlier held ones are counted; with no layers there is no chart."""
    from pytest_weightshape.report.html import LAYER_BARS, layer_chart

    drifts = [[f"l{i}", "Linear", 0.1] for i in range(2000)]
    drifts[1500][2] = 40.0
    drifts[1600][2] = "inf"
    svg = layer_chart({"drifts": drifts})
    assert "<title>l1500 (Linear): 40</title>" in svg
    assert "l1499 (Linear)" in svg  # a held one before it, for context
    assert svg.count("<rect") == LAYER_BARS
    assert "earlier layer outputs, all within tolerance, not drawn" in svg
    small = layer_chart({"drifts": drifts[:5]})
    assert small.count("<rect") == 5 and "not drawn" not in small
    assert layer_chart({"drifts": []}) == ""


def test_a_forward_whose_leaves_put_out_nothing_measurable_says_so():
    """Leaves that ran but put out only None, non-tensors or sparse tensors leave no entry: the
    golden says why rather than holding an empty record (read back as 'all 0 hold')."""
    torch = pytest.importorskip("torch")
    from pytest_weightshape.frameworks.torch_adapter import ADAPTER

    class Nothing(torch.nn.Module):
        def forward(self, x):
            return None

    class Sparse(torch.nn.Module):
        def forward(self, x):
            return x.to_sparse()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.nothing, self.sparse = Nothing(), Sparse()

        def forward(self, x):
            self.nothing(x)
            return self.sparse(x).to_dense()

    model = Net()
    _, record = ADAPTER.observe_layers(model, lambda: model(torch.ones(2, 3)))
    assert "no leaf layer put out a tensor that can be measured" in record["unrecorded"]
    assert document.layers_problem("layers", record) is None


@pytest.mark.parametrize("name", ["uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2"])
def test_torch_layer_outputs_of_narrow_or_unsigned_dtypes_are_measured(name):
    """Layer outputs in dtypes torch's min/max reductions lack (float8, uint16/32/64) are
    measured as the others (recording used to fail: the hook raised inside the forward)."""
    torch = pytest.importorskip("torch")
    from pytest_weightshape.frameworks.torch_adapter import layer_stats

    values = [float(v % 7) for v in range(3000)]
    t = torch.tensor(values).to(getattr(torch, name))
    assert layer_stats(t) == pytest.approx(_stats(values), rel=1e-12)


def test_a_layer_output_that_cannot_be_measured_leaves_the_forward_alone(monkeypatch):
    """Measuring is the plugin's business: when it fails on one layer's output, the model's
    forward still runs to its end and the record says which layer could not be measured
    (recording used to fail as if the model had rejected its inputs)."""
    torch = pytest.importorskip("torch")
    from pytest_weightshape.frameworks import torch_adapter

    real = torch_adapter.LayerSums.add

    def fussy(self, tensor):
        if tensor.shape[-1] == 3:
            raise RuntimeError("cannot reduce this")
        return real(self, tensor)

    monkeypatch.setattr(torch_adapter.LayerSums, "add", fussy)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 3), torch.nn.ReLU())
    x = torch.randn(2, 4)
    raw, record = torch_adapter.ADAPTER.observe_layers(model, lambda: model(x))
    assert torch.equal(raw, model(x))
    assert record == {
        "unrecorded": "measuring the output of 1 (Linear) failed: RuntimeError: cannot reduce this"
    }
    assert all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("sign", [1.0, -1.0, 0.0])
def test_torch_layer_statistics_of_one_sign_outputs_equal_the_general_path(sign):
    """An output of one sign (a ReLU's) takes its sum of |x| from its sum: the same numbers
    as the general path, which sums |x| itself."""
    torch = pytest.importorskip("torch")
    from pytest_weightshape.frameworks.torch_adapter import layer_stats

    values = [float((v * 37) % 101) / 8 for v in range(5000)]  # exact in float32
    t = torch.tensor(values)
    t = t * sign if sign else t - 6.0
    expected = _stats(t.tolist())
    got = layer_stats(t, [])
    exact = {k: v for k, v in got.items() if k != "std"}  # sums of eighths: exact in float32
    assert exact == pytest.approx({k: expected[k] for k in exact}, rel=1e-12)
    assert got["std"] == pytest.approx(expected["std"], rel=1e-6)  # a float32 norm, squared
    if sign:  # the general path (no sign known) gives the same sums bit for bit
        from pytest_weightshape.frameworks.torch_adapter import _row_sums

        rows = t[:4096].view(-1, 1024)
        known = _row_sums(rows, torch.float32, torch.float64, None, int(sign))
        assert torch.equal(known, _row_sums(rows, torch.float32, torch.float64, None, 0))


def _layer_output_cases(torch):
    """Layer outputs of every shape the buffered path treats apart: fewer values than a row,
    whole rows, rows and a ragged tail; float32 and float64; one sign, mixed, zeros, -0.0,
    NaN and Inf; a non-contiguous view; and dtypes ``layer_stats`` measures itself."""
    gen = torch.Generator().manual_seed(0)
    cases = []
    for n in (1, 5, 1023, 1024, 1025, 3000, 4096, 70001):
        for dtype in (torch.float32, torch.float64):
            x = torch.randn(n, generator=gen, dtype=dtype)
            cases += [x, x.relu(), -x.relu(), x * 1e30, torch.zeros(n, dtype=dtype), -x.abs() * 0]
    cases += [
        torch.randn(64, 48, generator=gen).t(),
        torch.tensor([float("nan"), 1.0]),
        torch.tensor([float("inf"), -1.0] * 700),
        torch.ones(3, 0),
        torch.arange(10),
        torch.randn(2000, generator=gen).half(),
        torch.tensor([True, False, True]),
    ]
    return cases


def test_torch_buffered_layer_statistics_equal_layer_stats_bit_for_bit():
    """``LayerSums`` measures a forward's outputs into buffers and reads them back once: the
    same statistics as ``layer_stats`` measuring each output alone, bit for bit (the golden
    values recorded before it must not move), in the order they were added, also past the
    result buffer's first growth and with outputs of other dtypes in between."""
    torch = pytest.importorskip("torch")
    from pytest_weightshape.frameworks.torch_adapter import LayerSums, layer_stats

    cases = _layer_output_cases(torch)
    assert len(cases) > 100  # more than the result buffer first holds
    sums = LayerSums()
    indices = [sums.add(t) for t in cases]
    assert indices == list(range(len(cases)))
    got = sums.read()
    for t, stats in zip(cases, got, strict=True):
        assert repr(stats) == repr(layer_stats(t.clone(), [])), (t.dtype, tuple(t.shape))
    assert sums.read() == got  # reading twice reads the same


def test_torch_observed_values_equal_layer_stats_for_tuples_and_repeated_layers():
    """Through the hooks: a tuple output's parts and a layer called twice each get the
    statistics ``layer_stats`` gives their tensors, and a second observation of the same
    forward records the same (nothing is left over from the first)."""
    torch = pytest.importorskip("torch")
    from pytest_weightshape.frameworks.torch_adapter import ADAPTER, layer_stats

    seen = {}

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(40, 3000)
            self.act = torch.nn.Tanh()
            self.rnn = torch.nn.LSTM(3000, 7, batch_first=True)

        def forward(self, x):
            seen["fc"] = h = self.fc(x)
            seen["act"] = a = self.act(h)
            seen["act#2"] = b = self.act(a * 2)
            out = self.rnn(b.unsqueeze(1))
            seen["rnn.output"], (seen["rnn.h_n"], seen["rnn.c_n"]) = out
            return out[0]

    model = Net().eval()
    x = torch.randn(3, 40)
    _, record = ADAPTER.observe_layers(model, lambda: ADAPTER.forward(model, (x,)))
    kinds = {"fc": "Linear", "act": "Tanh", "act#2": "Tanh"}
    expected = layers.to_golden(
        [
            LayerOutput(
                name, kinds.get(name, "LSTM"), "float32", tuple(t.shape), layer_stats(t, [])
            )
            for name, t in seen.items()
        ]
    )
    assert list(record["entries"]) == list(seen)
    assert record == expected
    _, again = ADAPTER.observe_layers(model, lambda: ADAPTER.forward(model, (x,)))
    assert again == record


def test_torch_observation_frees_each_layer_output_when_the_model_does():
    """The hooks keep no layer output alive: with Python's cyclic garbage collector off, an
    output is freed as soon as the model drops it (a reference cycle in the walk over
    outputs used to keep every activation of an observed forward alive until the collector
    ran: the heap grew by one activation per layer, and the next forward faulted its pages
    in again)."""
    torch = pytest.importorskip("torch")
    import gc
    import weakref

    from pytest_weightshape.frameworks.torch_adapter import ADAPTER

    refs = []
    alive = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            alive.append(sum(r() is not None for r in refs))
            y = x * 1.5
            refs.append(weakref.ref(y))
            return y

    class Pair(torch.nn.Module):  # a tuple output: the walk's containers
        def forward(self, x):
            y = (x + 1, {"z": x - 1})
            out = y[0] * y[1]["z"]
            refs.extend([weakref.ref(y[0]), weakref.ref(y[1]["z"]), weakref.ref(out)])
            return out

    model = torch.nn.Sequential(*[Probe() for _ in range(6)], Pair(), Probe())
    enabled = gc.isenabled()
    gc.disable()
    try:
        raw, record = ADAPTER.observe_layers(
            model, lambda: ADAPTER.forward(model, (torch.ones(4),))
        )
        assert "entries" in record
        # a probe's input is the only earlier output alive (Pair's parts die with its call)
        assert alive == [0, 1, 1, 1, 1, 1, 1]
        del raw
        assert [r() for r in refs] == [None] * len(refs)
    finally:
        if enabled:
            gc.enable()


def test_flatten_output_holds_nothing_once_its_result_is_dropped():
    torch = pytest.importorskip("torch")
    import gc
    import weakref

    t = torch.ones(3)
    ref = weakref.ref(t)
    enabled = gc.isenabled()
    gc.disable()
    try:
        parts = layers.flatten_output((t, {"a": [t]}), lambda v: isinstance(v, torch.Tensor))
        assert [name for name, _ in parts] == [".0", ".1.a.0"]
        del parts, t
        assert ref() is None
    finally:
        if enabled:
            gc.enable()


def test_torch_observation_that_raises_or_cannot_read_back_leaves_nothing_behind(monkeypatch):
    """A forward raising halfway through an observation removes every hook, and the next
    observation records what one in a fresh process would; statistics that cannot be read
    back after the forward give a record that says so, never a failed forward."""
    torch = pytest.importorskip("torch")
    from pytest_weightshape.frameworks import torch_adapter

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 2000)
            self.act = torch.nn.ReLU()
            self.fail = False

        def forward(self, x):
            x = self.act(self.fc(x))
            if self.fail:
                raise RuntimeError("boom")
            return self.act(x - 0.1)

    model = Net().eval()
    x = torch.randn(3, 4)
    _, before = torch_adapter.observe_layers(model, lambda: model(x))
    model.fail = True
    with pytest.raises(RuntimeError, match="boom"):
        torch_adapter.observe_layers(model, lambda: model(x))
    assert all(not m._forward_hooks for m in model.modules())
    model.fail = False
    _, after = torch_adapter.observe_layers(model, lambda: model(x))
    assert after == before

    def broken(self):
        raise RuntimeError("device lost")

    monkeypatch.setattr(torch_adapter.LayerSums, "read", broken)
    raw, record = torch_adapter.observe_layers(model, lambda: model(x))
    assert torch.equal(raw, model(x))
    assert record == {
        "unrecorded": "reading the layers' statistics failed: RuntimeError: device lost"
    }
    assert all(not m._forward_hooks for m in model.modules())


def test_torch_buffered_layer_statistics_on_cuda_equal_layer_stats():
    """On CUDA the buffered path reads the extremes back with the sums, after the forward
    (no device sync per layer): the same statistics as ``layer_stats`` on the device."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from pytest_weightshape.frameworks.torch_adapter import LayerSums, layer_stats

    cases = [t.cuda() for t in _layer_output_cases(torch)]
    sums = LayerSums()
    for t in cases:
        sums.add(t)
    for t, stats in zip(cases, sums.read(), strict=True):
        assert repr(stats) == repr(layer_stats(t.clone(), [])), (t.dtype, tuple(t.shape))


def test_flattened_outputs_are_freed_with_their_list_without_the_garbage_collector():
    """``flatten``'s walk holds no reference cycle: a model's outputs (on a GPU, large) are
    freed as soon as the check drops them, not when Python's collector next runs."""
    import gc
    import weakref

    from pytest_weightshape.frameworks import flatten

    gc.disable()
    try:
        value = np.ones(3, dtype=np.float32)
        alive = weakref.ref(value)
        out = flatten({"a": (value, {"b": value})}, lambda v: None)
        assert [o.name for o in out] == ["a.0", "a.1.b"]
        del out, value
        assert alive() is None
    finally:
        gc.enable()
