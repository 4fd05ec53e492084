import json
import os
import random
import subprocess
import sys
import warnings

import numpy as np
import pytest

from pytest_weightshape.compare import compare
from pytest_weightshape.errors import ModelError, SpecError
from pytest_weightshape.inputs import make_inputs
from pytest_weightshape.run import Observer
from pytest_weightshape.spec import parse_marker
from pytest_weightshape.tolerance import Policy

from ..models import Dense

torch = pytest.importorskip("torch")
nn = torch.nn


def observe(build, inputs, **marker):
    marker = marker or {"units": [10, 5]}
    return Observer(parse_marker((), marker), build, inputs).observe()


def test_every_variant_is_built_from_the_same_seed_and_rng_state_is_restored():
    random.seed(42)
    np.random.seed(42)
    torch.manual_seed(42)
    before = (random.random(), np.random.random(), torch.rand(1).item())
    random.seed(42)
    np.random.seed(42)
    torch.manual_seed(42)
    doc = observe(lambda units: nn.Linear(16, units), (4, 16))
    after = (random.random(), np.random.random(), torch.rand(1).item())
    assert before == after
    torch.manual_seed(0)
    expected = nn.Linear(16, 10).weight.detach().numpy()
    from pytest_weightshape.stats import fingerprint

    assert doc["variants"]["units=10"]["parameters"]["weight"]["fingerprint"] == {
        **fingerprint(expected),
        "zero_fraction": 0.0,  # each parameter's fingerprint carries its zero fraction
    }
    again = observe(lambda units: nn.Linear(16, units), (4, 16))
    assert again == doc


def test_each_build_and_forward_starts_from_the_seed_whatever_the_builder_drew():
    """The generators are saved once per check (``kept_generators``) and seeded again before
    each build and forward: a builder that draws from them leaves the forward unaffected, and a
    check that fails puts them back as it found them."""
    seen = []

    def draw(where):
        seen.append((where, random.random(), np.random.random(), torch.rand(1).item()))

    class Drawing(nn.Module):
        def __init__(self, units):
            super().__init__()
            self.units = units

        def forward(self, x):
            draw("forward")
            return x * self.units

    def build(units):
        draw("build")
        np.random.random(100), random.random(), torch.rand(7)  # the builder draws on
        if units == 0:
            raise ValueError("no units")
        return Drawing(units)

    observe(build, (4, 16))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    first = (random.random(), np.random.random(), torch.rand(1).item())
    assert [s[0] for s in seen] == ["build", "forward"] * 2
    assert all(s[1:] == first for s in seen)

    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    with pytest.raises(ModelError, match="variant units=0: the builder raised"):
        observe(build, (4, 16), units=[3, 0])
    assert random.getstate() == before[0]
    assert (np.random.get_state()[1] == before[1]).all()
    assert torch.equal(torch.get_rng_state(), before[2])


#: A check whose builder or model imports torch itself, then the same check with torch
#: imported: ``python -c LAZY_IMPORT build|forward`` prints what each recorded and did.
LAZY_IMPORT = """
import functools, json, sys
from pytest_weightshape.run import Observer
from pytest_weightshape.spec import parse_marker

seen = []

@functools.cache  # built once per kwargs: the first call's draws must already be seeded
def build(units):
    import torch
    torch.set_default_dtype(torch.float64)
    seen.append(torch.are_deterministic_algorithms_enabled())
    return torch.nn.Linear(8, units)

class Noisy:  # a NumPy model whose forward imports torch and draws from it
    def __init__(self, units):
        self.units = units

    def __call__(self, x):
        import torch
        return x[:, : self.units] + torch.randn(x.shape[0], self.units).numpy()

def check():
    spec = parse_marker((), {"units": [4, 3]})
    observer = Observer(
        spec, build if sys.argv[1] == "build" else Noisy, (2, 8), deterministic=True
    )
    doc = observer.observe()
    import torch
    done = {
        "variants": doc["variants"],
        "changed": observer.changed_globals,
        "dtype after": str(torch.get_default_dtype()),
        "deterministic in the builds, after": [
            list(seen), torch.are_deterministic_algorithms_enabled()
        ],
    }
    build.cache_clear(), seen.clear()
    return done

assert "torch" not in sys.modules
print(json.dumps([check(), check()], sort_keys=True))  # torch first imported by the first
"""


def test_a_framework_first_imported_by_the_builder_or_model_is_set_up_as_if_imported_before():
    """Before, a check set up only the frameworks imported when it started: a builder's own
    ``import torch`` drew unseeded weights, and its default dtype leaked into later tests with
    no warning, deterministic algorithms stayed off (the golden depended on whether an earlier
    test had imported torch). Now each is set up right after its import."""
    runs = {
        mode: subprocess.Popen(
            [sys.executable, "-c", LAZY_IMPORT, mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in ("build", "forward")
    }
    done = {}
    for mode, process in runs.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        lazy, imported_before = done[mode] = json.loads(out)
        assert lazy == imported_before, mode
    lazy = done["build"][0]
    assert lazy["changed"] == [
        f"variant units={u} set the torch default dtype: torch.float32 -> torch.float64"
        for u in (4, 3)
    ]
    assert lazy["dtype after"] == "torch.float32"
    assert lazy["deterministic in the builds, after"] == [[True, True], False]


#: A Keras check on device "cpu" whose builder imports Keras on a pool's thread, then the same
#: check with Keras imported: ``python -c KERAS_ON_A_THREAD`` prints both documents' variants.
KERAS_ON_A_THREAD = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
from pytest_weightshape.run import Observer
from pytest_weightshape.spec import parse_marker

pool = ThreadPoolExecutor(1)

def build(units):
    def make():
        import keras
        return keras.Sequential([keras.Input((6,)), keras.layers.Dense(units)])
    return pool.submit(make).result()

def check():
    spec = parse_marker((), {"units": [4, 3]})
    return Observer(spec, build, (2, 6), device="cpu").observe()["variants"]

assert "keras" not in sys.modules
print(json.dumps([check(), check()], sort_keys=True))
"""


def test_keras_first_imported_on_another_thread_by_the_builder_is_no_internal_error():
    """A Keras device scope belongs to the thread that enters it: entered on the builder's
    pool thread at Keras's first import and left on the check's, it raised "Exiting device
    scope without proper scope nesting" (an internal error). The document is the one a check
    with Keras imported before gives."""
    pytest.importorskip("keras")
    done = subprocess.run(
        [sys.executable, "-c", KERAS_ON_A_THREAD],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lazy, imported_before = json.loads(done.stdout.splitlines()[-1])
    assert lazy == imported_before


def test_lstm_outputs_get_their_names_and_model_runs_in_eval_without_grad():
    seen = {}

    class Probe(nn.Module):
        def __init__(self, hidden_size):
            super().__init__()
            self.lstm = nn.LSTM(10, hidden_size, batch_first=True)
            self.drop = nn.Dropout(0.9)

        def forward(self, x):
            seen["training"] = self.training
            seen["grad"] = torch.is_grad_enabled()
            return self.drop(self.lstm(x)[0])

    doc = observe(
        lambda hidden_size: nn.LSTM(10, hidden_size, batch_first=True),
        (1, 10, 10),
        hidden_size=[10, 20],
    )
    outputs = doc["variants"]["hidden_size=20"]["outputs"]
    assert list(outputs) == ["output", "h_n", "c_n"]
    assert outputs["output"]["shape"] == [1, 10, 20] and outputs["h_n"]["shape"] == [1, 1, 20]
    observe(Probe, (1, 10, 10), hidden_size=[10, 20])
    assert seen == {"training": False, "grad": False}


def test_nested_tuple_dict_outputs_flatten_to_stable_names():
    class Multi(nn.Module):
        def __init__(self, units):
            super().__init__()
            self.fc = nn.Linear(4, units)

        def forward(self, x):
            y = self.fc(x)
            return {"logits": y, "aux": (y.sum(), [y * 2, None])}

    doc = observe(Multi, (2, 4))
    assert list(doc["variants"]["units=5"]["outputs"]) == ["logits", "aux.0", "aux.1.0"]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda units: None, "variant units=10: the builder returned None"),
        (lambda units: 42, "variant units=10: the builder returned int"),
        (
            lambda units: nn.Linear(3, units),
            "variant units=10: the model rejected the inputs (input [4, 16] float32)",
        ),
        (
            lambda units: nn.Linear(16, units) if units == 10 else 1 / 0,
            "variant units=5: the builder raised",
        ),
        (lambda units: lambda x: "text", "unsupported type str"),
    ],
)
def test_model_errors_name_the_variant(build, message):
    with pytest.raises(ModelError) as info:
        observe(build, (4, 16))
    assert message in str(info.value)
    assert "pytest_weightshape" not in str(info.value)  # no harness frames in the traceback


def test_numpy_model_parameters_are_its_array_attributes():
    doc = observe(Dense, (4, 16))
    params = doc["variants"]["units=5"]["parameters"]
    assert {k: v["shape"] for k, v in params.items()} == {"bias": [5], "kernel": [16, 5]}
    assert doc["variants"]["units=5"]["framework"] == "numpy"


def _perturbed(build, relative, noise):
    """Wrap a builder: scale weights by (1 + relative) or add relative Gaussian noise."""

    def wrapped(**kwargs):
        model = build(**kwargs)
        generator = torch.Generator().manual_seed(1234)
        with torch.no_grad():
            for p in model.parameters():
                if noise:
                    p.add_(p * relative * torch.randn(p.shape, generator=generator))
                else:
                    p.mul_(1 + relative)
        return model

    return wrapped


def _linear_relu(init):
    layer = nn.Linear(784, 128)
    init(layer.weight)
    return nn.Sequential(layer, nn.ReLU())


SYSTEMS = {
    "conv2d": (
        {"kernel_size": [3, 5], "padding": [1, 2]},
        lambda kernel_size, padding: nn.Conv2d(1, 32, kernel_size, padding=padding),
        (1, 1, 28, 28),
    ),
    "lstm": (
        {"hidden_size": [10, 20]},
        lambda hidden_size: nn.LSTM(10, hidden_size, batch_first=True),
        (1, 10, 10),
    ),
    "linear_init": (
        {"init": [nn.init.xavier_uniform_, nn.init.kaiming_uniform_]},
        _linear_relu,
        (64, 784),
    ),
}


@pytest.mark.parametrize("system", SYSTEMS)
def test_default_tolerance_passes_1e7_noise_and_fails_1e4_change(system):
    marker, build, inputs = SYSTEMS[system]
    golden = observe(build, inputs, **marker)
    noisy = observe(_perturbed(build, 1e-7, noise=True), inputs, **marker)
    changed = observe(_perturbed(build, 1e-4, noise=False), inputs, **marker)
    assert noisy != golden  # the noise is real: digests and statistics moved
    quiet = compare(golden, noisy, Policy())
    assert quiet.ok, quiet.differences[:3]
    loud = compare(golden, changed, Policy())
    assert not loud.ok
    assert any("initial weights changed" in c for c in loud.causes)


def test_other_float_dtypes_complex_and_empty_outputs():
    class Odd(nn.Module):
        def __init__(self, units):
            super().__init__()
            self.fc = nn.Linear(16, units)

        def forward(self, x):
            y = self.fc(x)
            return {
                "bf16": y.to(torch.bfloat16),
                "half": y.half(),
                "f8": y.to(torch.float8_e4m3fn),
                "complex": torch.complex(y, -y),
                "empty": y[:, :0],
            }

    doc = observe(Odd, (4, 16))
    outputs = doc["variants"]["units=5"]["outputs"]
    assert outputs["bf16"]["dtype"] == "bfloat16" and outputs["f8"]["dtype"] == "float8_e4m3fn"
    assert outputs["complex.real"]["stats"]["mean"] == pytest.approx(
        -outputs["complex.imag"]["stats"]["mean"]
    )
    assert outputs["empty"]["stats"]["count"] == 0
    divergence = doc["variants"]["units=5"]["divergence"]["outputs"]
    assert divergence["empty"]["cka"] is None


def test_double_and_half_models_get_inputs_in_their_dtype():
    doc = observe(lambda units: nn.Linear(16, units).double(), (4, 16))
    assert doc["variants"]["units=5"]["outputs"]["output"]["dtype"] == "float64"
    assert doc["variants"]["units=5"]["inputs"]["input"]["dtype"] == "float32"  # as generated


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors is a no-op")
def test_zero_width_variant():
    doc = observe(lambda units: nn.Linear(16, units), (4, 16), units=[8, 0])
    assert doc["variants"]["units=0"]["outputs"]["output"]["shape"] == [4, 0]
    assert doc["variants"]["units=0"]["divergence"]["outputs"]["output"]["cka"] is None


def test_unavailable_device_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelError, match="preparing the model for device 'cuda' failed"):
        Observer(
            parse_marker((), {"units": [2, 3]}),
            lambda units: nn.Linear(4, units),
            (1, 4),
            device="cuda",
        ).observe()


def _close(native, host, path=""):
    """Equal documents, floats within float64 rounding (native sums use another order)."""
    if isinstance(host, dict):
        assert native.keys() == host.keys(), path
        for key in host:
            _close(native[key], host[key], f"{path}/{key}")
    elif isinstance(host, float):
        assert native == pytest.approx(host, rel=1e-12, abs=1e-15), path
    else:
        assert native == host, path


def test_outputs_on_a_native_device_are_measured_there_with_the_same_results(monkeypatch):
    """CUDA outputs are summarised with torch reductions on the device; forcing that path for
    CPU tensors gives the golden document of the host path, and no output reaches the host."""
    from pytest_weightshape.divergence import CKA_MAX_SAMPLES
    from pytest_weightshape.frameworks import Array, torch_adapter, torch_stats

    def build(width, init):
        layer = nn.Linear(64, width)
        init(layer.weight)
        return nn.Sequential(layer, nn.ReLU())

    xavier, kaiming = nn.init.xavier_uniform_, nn.init.kaiming_uniform_
    marker = {
        "variants": [
            {"width": 64, "init": xavier},
            {"width": 32, "init": xavier},  # another width: CKA on sampled rows
            {"width": 64, "init": kaiming},  # same shape: cosine and max |a - b| too
        ]
    }
    host_doc = observe(build, (3000, 64), **marker)
    copied = []
    original = torch_stats.host
    monkeypatch.setattr(torch_stats, "host", lambda t: copied.append(t.numel()) or original(t))
    host_value = Array.value.fget

    def value(self):
        assert self.native is None, f"output {self.name} copied to the host"
        return host_value(self)

    monkeypatch.setattr(Array, "value", property(value))
    monkeypatch.setattr(torch_adapter, "NATIVE_DEVICES", frozenset({"cpu"}))
    native_doc = observe(build, (3000, 64), **marker)
    for variant in host_doc["variants"].values():  # host outputs are sealed (see reuse) ...
        for record in variant["outputs"].values():
            del record["digest"]
    for variant in native_doc["variants"].values():  # ... device ones are not read to the host
        assert all("digest" not in record for record in variant["outputs"].values())
    _close(native_doc["variants"], host_doc["variants"])
    variants = native_doc["variants"]
    assert variants["width=64,init=kaiming_uniform_"]["divergence"]["outputs"]["output"]["cosine"]
    narrow = variants["width=32,init=xavier_uniform_"]["divergence"]["outputs"]["output"]
    assert narrow["cka_n"] == CKA_MAX_SAMPLES
    # what reached the host: a few histogram bins' values and CKA's sampled rows
    assert copied and max(copied) <= CKA_MAX_SAMPLES * 64 < 3000 * 64


def test_a_model_that_changes_its_input_in_place_does_not_change_the_next_variants():
    """Base and variants run on the same seeded input even when a forward works in place."""
    torch = pytest.importorskip("torch")

    class AddInPlace(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.linear = torch.nn.Linear(8, width)

        def forward(self, x):
            x.add_(1.0)  # in place, on the tensor the harness passed
            return x.clone()

    spec = parse_marker((), {"width": [4, 2, 3]})
    document = Observer(spec, AddInPlace, (16, 8)).observe()
    means = [v["outputs"]["output"]["stats"]["mean"] for v in document["variants"].values()]
    assert means[0] == means[1] == means[2]  # not +1, +2, +3
    digests = {v["inputs"]["input"]["fingerprint"]["digest"] for v in document["variants"].values()}
    assert len(digests) == 1
    user_input = np.zeros((16, 8), dtype=np.float32)
    Observer(spec, AddInPlace, user_input).observe()
    assert not user_input.any()  # the caller's array is left alone
    user_tensor = torch.zeros((16, 8))
    Observer(spec, AddInPlace, user_tensor).observe()
    assert not user_tensor.any()  # nor the caller's tensor
    doubled = Observer(spec, lambda width: AddInPlace(width).double(), user_input).observe()
    means = [v["outputs"]["output"]["stats"]["mean"] for v in doubled["variants"].values()]
    assert means == [1.0, 1.0, 1.0] and not user_input.any()  # a dtype change copies too


def _with_copies(spec, build, inputs, **options):
    """The document when every forward gets its own copy of the inputs (nothing shared)."""
    observer = Observer(spec, build, inputs, **options)
    for each in observer.inputs:
        each.shared = False
    return observer.observe()


def test_drawn_inputs_are_shared_by_the_forwards_unless_one_changes_them():
    """No copy of a drawn input per forward; a change behind autograd's back is caught too."""
    torch = pytest.importorskip("torch")
    seen, built = [], []

    class Probe(torch.nn.Module):
        def __init__(self, width, in_place=False):
            super().__init__()
            built.append(width)
            self.linear = torch.nn.Linear(8, width)
            self.in_place = in_place

        def forward(self, x):
            seen.append(x.data_ptr())
            if self.in_place:
                x.data.mul_(0.5)  # .data: torch's version counter does not see this
            return self.linear(x)

    spec = parse_marker((), {"width": [4, 2, 3]})
    observer = Observer(spec, Probe, (16, 8))
    pure = observer.observe()
    assert built == [4, 2, 3]
    assert set(seen) == {observer.inputs[0].value.ctypes.data}  # the drawn array, never copied
    built.clear()
    changing = lambda width: Probe(width, in_place=width == 2)  # noqa: E731
    changed = Observer(spec, changing, (16, 8)).observe()
    assert built == [4, 2, 3]  # nothing runs twice
    assert changed == _with_copies(spec, changing, (16, 8))
    _, pure_halved, pure_after = pure["variants"].values()
    _, halved, after = changed["variants"].values()
    assert after["outputs"] == pure_after["outputs"]  # width 3 saw the drawn input
    assert halved["outputs"] != pure_halved["outputs"]  # width 2 saw what it did to it


def test_changes_that_undo_each_other_across_forwards_are_caught():
    """A forward that swaps channels in place, run twice, leaves the input as drawn: the
    second forward must still have seen the drawn input, not the swapped one."""

    class SwapThenSum:
        def __init__(self, units):
            self.kernel = np.arange(3 * units, dtype=np.float32).reshape(3, units)

        def __call__(self, x):
            x[:, [0, 2]] = x[:, [2, 0]]  # an in-place BGR <-> RGB swap
            return x @ self.kernel

    spec = parse_marker((), {"units": [4, 5]})
    assert Observer(spec, SwapThenSum, (64, 3)).observe() == _with_copies(
        spec, SwapThenSum, (64, 3)
    )
    portable = {"weights": "portable"}  # one more forward per variant (lazy weights)
    assert Observer(spec, SwapThenSum, (64, 3), **portable).observe() == _with_copies(
        spec, SwapThenSum, (64, 3), **portable
    )


def test_a_forward_after_one_that_changed_the_input_sees_the_drawn_input():
    """A variant that checks its input is not blamed for what the one before it did."""
    drawn = make_inputs((16, 8), 0)[0].copy()

    class Strict:
        def __init__(self, units):
            self.units = units

        def __call__(self, x):
            assert np.array_equal(x, drawn), "got a changed input"
            x += 1.0
            return x[:, : self.units]

    spec = parse_marker((), {"units": [4, 5, 6]})
    document = Observer(spec, Strict, (16, 8)).observe()
    assert document == _with_copies(spec, Strict, (16, 8))


def test_an_output_that_is_the_shared_input_is_not_changed_by_later_forwards():
    torch = pytest.importorskip("torch")

    class Identity(torch.nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.scale = scale

        def forward(self, x):
            if self.scale != 1.0:
                x.mul_(self.scale)  # in place, on the array the base returned
            return x

    spec = parse_marker((), {"scale": [1.0, 2.0]})
    document = Observer(spec, Identity, (32, 8)).observe()
    assert document == _with_copies(spec, Identity, (32, 8))
    divergence = document["variants"]["scale=2.0"]["divergence"]["outputs"]["output"]
    assert divergence["std_ratio"] == pytest.approx(2.0) and divergence["max_abs_difference"] > 0


def test_drawing_again_runs_no_inputs_callable_twice():
    calls = []
    user = np.zeros(3, dtype=np.float32)

    def inputs(rng):
        calls.append(1)
        return ((16, 8), user)

    class Changing:
        def __init__(self, units):
            self.units = units

        def __call__(self, x, y):
            x -= 1.0
            return x[:, : self.units] + y.sum()

    spec = parse_marker((), {"units": [4, 5]})
    document = Observer(spec, Changing, inputs).observe()
    assert len(calls) == 1 and not user.any()
    calls.clear()
    assert document == _with_copies(spec, Changing, inputs)


def test_a_numpy_callable_that_changes_its_input_in_place_changes_nothing_else():
    """The same for plain NumPy callables, whose inputs are the arrays themselves."""

    class Doubling:
        def __init__(self, units):
            self.kernel = np.ones((8, units), dtype=np.float32)

        def __call__(self, x):
            x *= 2.0
            return x @ self.kernel

    spec = parse_marker((), {"units": [4, 2, 3]})
    user_input = np.ones((16, 8), dtype=np.float32)
    document = Observer(spec, Doubling, user_input).observe()
    means = [v["outputs"]["output"]["stats"]["mean"] for v in document["variants"].values()]
    assert means == [16.0, 16.0, 16.0]  # each variant doubled the original ones, once
    assert (user_input == 1.0).all()
    user_tensor = torch.ones((16, 8))
    Observer(spec, Doubling, user_tensor).observe()
    assert (user_tensor == 1.0).all()


def test_numeric_globals_a_variant_changes_are_put_back_and_named():
    """torch's default dtype set in a forward is put back after that variant: the next variant
    is built as before, and nothing leaks into later checks."""
    torch = pytest.importorskip("torch")

    class Leaky(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.linear = torch.nn.Linear(8, width)

        def forward(self, x):
            torch.set_default_dtype(torch.float64)
            return self.linear(x)

    spec = parse_marker((), {"width": [4, 2]})
    observer = Observer(spec, Leaky, (3, 8))
    doc = observer.observe()
    assert torch.get_default_dtype() == torch.float32
    for variant in doc["variants"].values():
        assert variant["parameters"]["linear.weight"]["dtype"] == "float32"
    assert observer.changed_globals == [
        f"variant width={w} set the torch default dtype: torch.float32 -> torch.float64"
        for w in (4, 2)
    ]


def test_grad_mode_a_builder_turns_off_is_put_back_and_named():
    """A builder's ``torch.set_grad_enabled(False)`` left autograd off for every later test (a
    plain training test then failed with "does not require grad")."""
    torch = pytest.importorskip("torch")

    def build(width):
        torch.set_grad_enabled(False)
        return torch.nn.Linear(8, width)

    observer = Observer(parse_marker((), {"width": [4, 2]}), build, (3, 8))
    observer.observe()
    assert torch.is_grad_enabled()
    assert observer.changed_globals == [
        f"variant width={w} set the torch grad mode: True -> False" for w in (4, 2)
    ]


def test_a_model_an_earlier_check_training_trained_is_named_for_a_warning():
    """``check_training`` trains the model it is given in place: a cached builder then hands
    the next check trained weights, and its golden depends on which tests ran before. Such
    variants are named; a model an earlier forward-only check was given is as it was (a test
    may check one model under two names), and a builder that builds anew is never named."""
    import functools

    from pytest_weightshape.training_run import Trainer

    torch = pytest.importorskip("torch")
    spec = parse_marker((), {"width": [4, 2]})
    nn = torch.nn
    cached = functools.cache(lambda width: nn.Sequential(nn.Linear(8, width), nn.Linear(width, 2)))
    for _ in range(2):
        looked = Observer(spec, cached, (3, 8))
        looked.observe()
        assert looked.reused_models == []
    trained = Trainer(spec, cached, (3, 8), (3, 2), loss="mse", optimizer="sgd")
    trained.observe()
    assert trained.reused_models == []
    after = Observer(spec, cached, (3, 8))
    after.observe()
    assert after.reused_models == ["width=4", "width=2"]
    fresh = Observer(spec, lambda width: torch.nn.Linear(8, width), (3, 8))
    fresh.observe()
    assert fresh.reused_models == []


def test_a_default_the_session_chose_is_kept():
    torch = pytest.importorskip("torch")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        observer = Observer(
            parse_marker((), {"width": [4, 2]}), lambda width: torch.nn.Linear(8, width), (3, 8)
        )
        doc = observer.observe()
        assert torch.get_default_dtype() == torch.float64 and observer.changed_globals == []
        assert doc["variants"]["width=2"]["parameters"]["weight"]["dtype"] == "float64"
    finally:
        torch.set_default_dtype(previous)


def _quantized(x):
    import warnings

    import torch

    with warnings.catch_warnings():  # torch warns of its own deprecations here
        warnings.simplefilter("ignore")
        return torch.quantize_per_tensor(x, 0.1, 0, torch.quint8)


def _unmeasurable(torch):
    return {
        "meta": (lambda x: torch.empty(3, 4, device="meta"), "a meta tensor has a shape but"),
        "quantized": (_quantized, "return tensor.dequantize()"),
        "sparse": (lambda x: x.to_sparse(), "return tensor.to_dense()"),
    }


@pytest.mark.parametrize("kind", ["meta", "quantized", "sparse"])
def test_torch_outputs_that_cannot_be_measured_say_what_to_return(kind):
    torch = pytest.importorskip("torch")
    make, fix = _unmeasurable(torch)[kind]

    class Odd(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.linear = torch.nn.Linear(8, width)

        def forward(self, x):
            return {"logits": make(self.linear(x))}

    with pytest.raises(ModelError) as info:
        observe(Odd, (3, 8), width=[4, 2])
    text = str(info.value)
    assert text.startswith("variant width=4: output 'logits' is a torch.")
    assert fix in text and "layout" in text and "on " in text


def test_text_outputs_are_refused_with_what_to_return():
    with pytest.raises(ModelError, match=r"output 'output' holds <U5 values .*encode text as ids"):
        observe(lambda units: lambda x: np.array(["hello"] * 3), (3, 8), units=[4, 2])


def test_an_input_shape_too_large_to_allocate_is_the_users_input():
    with pytest.raises(
        SpecError, match=r"inputs= shape \(1000000, 1000000\) asks for 3.64 TiB of float32 input"
    ):
        make_inputs((1_000_000, 1_000_000), seed=0)


def test_a_sparse_input_is_refused_as_an_input():
    torch = pytest.importorskip("torch")
    with pytest.raises(
        SpecError, match=r"inputs= got a torch\.float32 tensor of layout torch\.sparse_coo"
    ):
        make_inputs(torch.zeros(3, 3).to_sparse(), seed=0)


def test_a_torch_model_may_return_numpy_and_odd_outputs_say_what_to_return():
    torch = pytest.importorskip("torch")

    def returning(make):
        class Model(torch.nn.Module):
            def __init__(self, width):
                super().__init__()
                self.linear = torch.nn.Linear(8, width)

            def forward(self, x):
                return make(self.linear(x))

        return Model

    doc = observe(returning(lambda y: y.numpy()), (3, 8), width=[4, 2])
    assert doc["variants"]["width=2"]["outputs"]["output"]["shape"] == [3, 2]
    for make, fix in [
        (lambda y: np.ma.masked_less(y.numpy(), 0), "a masked array: return its values"),
        (lambda y: y.to(torch.complex32), "return it as complex64"),
        (lambda y: torch.nested.nested_tensor([y[0], y[1, :1]]), "return its parts"),
    ]:
        # torch warns once per process that ComplexHalf is experimental: an error under this
        # project's filterwarnings where no earlier test made one (the model "rejects" it)
        with warnings.catch_warnings(), pytest.raises(ModelError, match=fix):
            warnings.filterwarnings("ignore", "ComplexHalf support is experimental")
            observe(returning(make), (3, 8), width=[4, 2])


def test_outputs_nested_too_deeply_are_refused():
    def deep(units):
        def forward(x):
            out = x
            for _ in range(5000):
                out = [out]
            return out

        return forward

    with pytest.raises(ModelError, match="nested too deeply to flatten"):
        observe(deep, (3, 8))


def test_text_inputs_are_refused_as_inputs():
    with pytest.raises(SpecError, match="inputs= got <U1 values"):
        make_inputs(np.array(["a", "b"]), seed=0)


def test_a_forward_that_changes_torchs_thread_count_does_not_leak():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()

    class Greedy(torch.nn.Linear):
        def forward(self, x):
            torch.set_num_threads(before + 1)
            return super().forward(x)

    observer = Observer(
        parse_marker((), {"out_features": [4, 2]}),
        lambda out_features: Greedy(8, out_features),
        (3, 8),
    )
    observer.observe()
    assert torch.get_num_threads() == before
    assert any("torch thread count" in c for c in observer.changed_globals)
