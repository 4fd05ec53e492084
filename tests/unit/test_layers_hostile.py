"""layers, hostile: the torch adapter's buffered layer statistics (``LayerSums`` in
``observe_layers``) against ``layer_stats`` measuring each output alone, on models a hostile
user writes: mixed dtypes, in-place layers, shared modules, many tiny layers, odd tensors,
inference mode, forwards that raise, nested observations, threads."""

import threading

import pytest

torch = pytest.importorskip("torch")

from pytest_weightshape import layers  # noqa: E402
from pytest_weightshape.frameworks.torch_adapter import ADAPTER, dtype_name, layer_stats  # noqa: E402
from pytest_weightshape.layers import LayerOutput  # noqa: E402


def _reference(model, forward):
    """The record ``layer_stats`` gives measuring a clone of each leaf output alone, in a hook
    (so that later in-place changes do not reach it)."""
    calls = []
    handles = []

    def hook_for(name):
        def hook(module, args, output):
            parts = []
            tensor = lambda v: isinstance(v, torch.Tensor)  # noqa: E731
            for suffix, t in layers.flatten_output(output, tensor):
                held = torch.empty_strided(t.size(), t.stride(), dtype=t.dtype)
                stats = layer_stats(held.copy_(t.detach()), [])  # same layout, same values
                parts.append((suffix, dtype_name(t.dtype), tuple(t.shape), stats))
            calls.append((name, type(module).__name__, parts))

        return hook

    scripted = [n for n, m in model.named_modules() if isinstance(m, torch.jit.ScriptModule)]
    for name, module in model.named_modules():
        if any(name == s or name.startswith(s + ".") for s in scripted):
            continue  # TorchScript takes no hooks: neither side observes it
        if next(module.children(), None) is None:
            handles.append(module.register_forward_hook(hook_for(name or "model")))
    try:
        forward()
    finally:
        for h in handles:
            h.remove()
    outputs = []
    names = layers.unique_names(c[0] for c in calls)
    for name, (_, kind, parts) in zip(names, calls, strict=True):
        for suffix, dtype, shape, stats in parts:
            outputs.append(LayerOutput(name + suffix, kind, dtype, shape, stats))
    return layers.to_golden(outputs)


def _same(model, x):
    expected = _reference(model, lambda: model(x))
    _, record = ADAPTER.observe_layers(model, lambda: model(x))
    assert record == expected
    return record


class Cast(torch.nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, x):
        return (x.real if x.is_complex() else x).to(self.dtype)


def test_mixed_dtypes_through_one_forward_equal_layer_stats():
    torch.manual_seed(0)
    steps = [torch.nn.Linear(3000, 3000)]
    for dtype in (torch.float16, torch.bfloat16, torch.int64, torch.bool, torch.complex64):
        steps += [Cast(dtype), Cast(torch.float32), torch.nn.Tanh()]
    steps += [Cast(torch.float64), torch.nn.Tanh(), Cast(torch.float32), torch.nn.Tanh()]
    model = torch.nn.Sequential(*steps)
    record = _same(model, torch.randn(3, 3000) * 3)
    kinds = [row[1] for row in record["entries"].values()]
    assert {"float16", "bfloat16", "int64", "bool", "complex64", "float64"} <= set(kinds)


class AddInPlace(torch.nn.Module):
    def forward(self, x):
        return x.add_(1.0)


def test_in_place_layers_after_a_measured_layer_do_not_change_its_record():
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Linear(40, 3000),
        torch.nn.ReLU(inplace=True),
        AddInPlace(),
        torch.nn.Linear(3000, 5),
        AddInPlace(),
    )
    record = _same(model, torch.randn(4, 40))
    lin = record["entries"]["0"]
    assert lin[layers.FIELDS.index("min")] < 0  # measured before the ReLU clamped it


class Shared(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1100, 1100)

    def forward(self, x):
        for _ in range(5):
            x = torch.tanh(self.layer(x))
        return x


def test_a_module_called_many_times_gets_one_entry_per_call():
    torch.manual_seed(2)
    record = _same(Shared(), torch.randn(2, 1100))
    assert list(record["entries"]) == ["layer", "layer#2", "layer#3", "layer#4", "layer#5"]


def test_thousands_of_tiny_layers_grow_the_result_buffer_and_keep_every_value():
    torch.manual_seed(3)
    model = torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(1500)])
    record = _same(model, torch.randn(2, 3))
    assert len(record["entries"]) == 1500


class Odd(torch.nn.Module):
    """Outputs of odd shapes and layouts, by kind."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        if self.kind == "scalar":
            return x.sum()
        if self.kind == "empty":
            return x[:0]
        if self.kind == "transposed":
            return x.t()
        if self.kind == "strided":
            return x[:, ::3]
        if self.kind == "channels_last":
            return x.reshape(2, 4, 33, 31).contiguous(memory_format=torch.channels_last)
        if self.kind == "nonfinite":
            y = x.clone()
            y[0, 0] = float("nan")
            y[1, 1] = float("inf")
            return y
        if self.kind == "inf":
            y = x.clone()
            y[0, 0] = float("inf")
            return y
        if self.kind == "tuple":
            return (x, None, {"a": x * 2, "b": [None, x[:1]]})
        raise AssertionError(self.kind)


@pytest.mark.parametrize(
    "kind",
    ["scalar", "empty", "transposed", "strided", "channels_last", "nonfinite", "inf", "tuple"],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_odd_outputs_equal_layer_stats(kind, dtype):
    torch.manual_seed(4)
    model = torch.nn.Sequential(torch.nn.Identity(), Odd(kind), torch.nn.Identity())
    _same(model, torch.randn(2, 4 * 33 * 31, dtype=dtype))


def test_outputs_that_require_grad_and_inference_mode_equal_layer_stats():
    torch.manual_seed(5)
    model = torch.nn.Sequential(
        torch.nn.Linear(30, 2000), torch.nn.Tanh(), torch.nn.Linear(2000, 3)
    )
    x = torch.randn(3, 30)
    _same(model, x)  # grad enabled: outputs require grad
    with torch.inference_mode():
        _same(model, x)


class PartlyInference(torch.nn.Module):
    """A forward whose first layers run under inference mode and the rest outside it."""

    def __init__(self, dtype):
        super().__init__()
        self.head = torch.nn.Linear(20, 1500).to(dtype)
        self.tail = torch.nn.Linear(1500, 1500).to(dtype)
        self.dtype = dtype

    def forward(self, x):
        with torch.inference_mode():
            h = self.head(x.to(self.dtype))
        return self.tail(h.clone())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_a_forward_partly_in_inference_mode_is_still_observed(dtype):
    """Buffers kept for the forward and made under inference mode refuse in-place writes
    outside it: the layers after it were unrecorded."""
    torch.manual_seed(6)
    model = PartlyInference(dtype)
    with torch.no_grad():
        record = _same(model, torch.randn(2, 20))
    assert list(record["entries"]) == ["head", "tail"]


class Raises(torch.nn.Module):
    def forward(self, x):
        raise ValueError("boom")


def test_a_forward_that_raises_midway_leaves_no_hook_and_no_state():
    torch.manual_seed(7)
    good = torch.nn.Sequential(torch.nn.Linear(8, 1500), torch.nn.Tanh())
    bad = torch.nn.Sequential(good[0], good[1], Raises())
    x = torch.randn(2, 8)
    with pytest.raises(ValueError, match="boom"):
        ADAPTER.observe_layers(bad, lambda: bad(x))
    assert not any(m._forward_hooks for m in bad.modules())
    _same(good, x)


class Outer(torch.nn.Module):
    """Runs an observation of its sub-model inside its own forward (re-entrancy)."""

    def __init__(self):
        super().__init__()
        self.inner = torch.nn.Sequential(torch.nn.Linear(6, 1200), torch.nn.Tanh())
        self.last = torch.nn.Linear(1200, 2)
        self.inner_record = None

    def forward(self, x):
        h, self.inner_record = ADAPTER.observe_layers(self.inner, lambda: self.inner(x))
        return self.last(h)


def test_nested_observations_each_record_their_own_layers():
    torch.manual_seed(8)
    model = Outer()
    x = torch.randn(3, 6)
    expected = _reference(model, lambda: model(x))
    _, record = ADAPTER.observe_layers(model, lambda: model(x))
    assert record == expected
    assert list(record["entries"]) == ["inner.0", "inner.1", "last"]
    inner = _reference(model.inner, lambda: model.inner(x))
    assert model.inner_record == inner


class Dicts(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleDict(
            {
                "enc": torch.nn.Sequential(torch.nn.Linear(5, 1030), torch.nn.GELU()),
                "dec": torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(1030, 7))),
            }
        )
        self.script = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(7, 7), torch.nn.ReLU()))

    def forward(self, x):
        return self.script(self.blocks["dec"](self.blocks["enc"](x)))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch 2.10+: jit is deprecated
def test_nested_module_dict_names_and_scripted_submodules():
    torch.manual_seed(9)
    model = Dicts()
    x = torch.randn(2, 5)
    _, record = ADAPTER.observe_layers(model, lambda: model(x))
    assert list(record["entries"]) == ["blocks.enc.0", "blocks.enc.1", "blocks.dec.0.0"]
    expected = _reference(model, lambda: model(x))
    assert record["entries"] == {k: expected["entries"][k] for k in record["entries"]}


def test_thread_counts_do_not_change_the_values():
    torch.manual_seed(10)
    model = torch.nn.Sequential(torch.nn.Linear(64, 4096 * 64), torch.nn.Tanh())
    x = torch.randn(8, 64)
    before = torch.get_num_threads()
    try:
        records = []
        for threads in (1, 2, 4):
            torch.set_num_threads(threads)
            with torch.no_grad():
                records.append(ADAPTER.observe_layers(model, lambda: model(x))[1])
    finally:
        torch.set_num_threads(before)
    assert records[0] == records[1] == records[2]


def test_observations_in_two_python_threads_at_once_stay_separate():
    torch.manual_seed(11)
    models = [
        torch.nn.Sequential(torch.nn.Linear(10, 2000), torch.nn.Tanh(), torch.nn.Linear(2000, 4))
        for _ in range(2)
    ]
    x = torch.randn(3, 10)
    expected = [_reference(m, lambda m=m: m(x)) for m in models]
    got = [None, None]

    def run(i):
        for _ in range(5):
            got[i] = ADAPTER.observe_layers(models[i], lambda: models[i](x))[1]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected


def test_one_huge_layer_output_costs_no_copy_of_itself(tmp_path):
    """Measuring a 100 MB layer output (values of both signs) takes bounded scratch for its
    |x| (16 MiB), not a second 100 MB: the observed forward's peak memory stays near the
    plain one's. In subprocesses: each peak (ru_maxrss) is its own."""
    import subprocess
    import sys

    script = tmp_path / "peak.py"
    script.write_text(
        "import resource, sys, torch\n"
        "from pytest_weightshape.frameworks.torch_adapter import ADAPTER\n"
        "class Big(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return x * 2.0\n"
        "model = torch.nn.Sequential(Big(), torch.nn.Tanh())\n"
        "x = torch.empty(25_000_000).uniform_(-1.0, 1.0)\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "if sys.argv[1] == 'plain':\n"
        "    with torch.no_grad():\n"
        "        model(x)\n"
        "else:\n"
        "    ADAPTER.observe_layers(model, lambda: ADAPTER.forward(model, (x,)))\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)\n"
    )
    peaks = {}
    for mode in ("plain", "observed"):
        done = subprocess.run(
            [sys.executable, str(script), mode], capture_output=True, text=True, check=True
        )
        peaks[mode] = int(done.stdout.split()[-1])  # MiB over the input
    assert peaks["observed"] < peaks["plain"] + 50, peaks  # 100 MiB more with a full |x| copy


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_abs_sums_a_block_of_rows_at_a_time_equal_them_all_at_once(dtype):
    """The statistics of an output of more rows than ``ABS_ROWS`` equal those of one |x|
    of the whole output, bit for bit (goldens recorded before keep their values)."""
    from pytest_weightshape.frameworks.torch_adapter import ABS_ROWS, LAYER_ROW, LayerSums

    torch.manual_seed(12)
    t = torch.randn((2 * ABS_ROWS + 3) * LAYER_ROW + 5, dtype=dtype) * 2 + 0.3
    rows = t[:-5].view(-1, LAYER_ROW)
    narrow = torch.float32 if dtype == torch.float32 else torch.float64
    at_once = rows.to(narrow).abs().sum(dim=1).to(torch.float64).sum().item()
    at_once += t[-5:].to(torch.float64).abs().sum().item()
    sums = LayerSums()
    sums.add(t)
    expected = at_once / t.numel()
    assert repr(sums.read()[0]["mean_abs"]) == repr(expected)
    assert repr(layer_stats(t, [])["mean_abs"]) == repr(expected)
