"""A hostile pass on "a passing check takes what its golden sealed" (``reuse``): whatever the
golden holds, a run that takes values from it ends with the document measuring would give."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_weightshape import golden
from pytest_weightshape.compare import compare
from pytest_weightshape.run import Observer
from pytest_weightshape.spec import parse_marker
from pytest_weightshape.tolerance import Policy


def as_golden(document):
    """The document as a run reads it back from its golden file."""
    return golden.parse_file(golden.render_file("t", {"c": document}), "t.json")[1]["c"]


def outputs_of(document):
    """Each variant's outputs and output divergence: what a seal may let a run take."""
    return {
        name: (variant["outputs"], variant.get("divergence", {}).get("outputs"))
        for name, variant in document["variants"].items()
    }


SCALES = parse_marker((), {"scale": [1.0, 3.0]})
KERNEL = np.random.default_rng(0).standard_normal((16, 6)).astype(np.float32)


def channels(x, scale):
    """A 4-D output of one shape in both variants (so divergence's CKA reads the framework's
    feature axis: torch's channels-first axis 1, NumPy's last)."""
    return np.tanh((x @ KERNEL) * np.float32(scale)).reshape(4, 16, 4, 6)


def test_a_golden_recorded_from_another_framework_is_not_taken_for_its_feature_axis():
    """The same bytes measured by another framework diverge along another feature axis: the
    golden's divergence (a torch model's, copied to a test of the NumPy port) is not taken."""
    torch = pytest.importorskip("torch")

    class Channels(torch.nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.scale = scale

        def forward(self, x):
            return torch.from_numpy(channels(x.numpy(), self.scale))

    recorded = as_golden(Observer(SCALES, Channels, (256, 16)).observe())
    port = lambda scale: lambda x: channels(x, scale)  # noqa: E731
    measured = Observer(SCALES, port, (256, 16)).observe()
    taken = Observer(SCALES, port, (256, 16), recorded=recorded).observe()
    assert outputs_of(as_golden(taken)) == outputs_of(as_golden(measured))
    assert compare(recorded, taken, Policy()).ok == compare(recorded, measured, Policy()).ok
    assert not compare(recorded, measured, Policy()).ok  # CKA along another axis moved
    # and a torch run of the same model still takes everything: its seals verify
    again = Observer(SCALES, Channels, (256, 16), recorded=copy.deepcopy(recorded)).observe()
    assert outputs_of(as_golden(again)) == outputs_of(recorded)


# -- outputs of every kind: taken exactly as measuring gives them ------------------------------

UNITS = parse_marker((), {"units": [10, 5]})


def kernel(units):
    return np.random.default_rng(units).standard_normal((16, units)).astype(np.float32)


def lin(x, units):
    return x @ kernel(units)


ODD_OUTPUTS = {
    "0-d": lambda x, u: np.float32(lin(x, u).sum()),
    "empty": lambda x, u: lin(x, u)[:0],
    "bool": lambda x, u: lin(x, u) > 0,
    "int64": lambda x, u: (lin(x, u) * 100).astype(np.int64),
    "float16": lambda x, u: lin(x, u).astype(np.float16),
    "big-endian": lambda x, u: lin(x, u).astype(">f4"),
    "complex": lambda x, u: lin(x, u).astype(np.complex64) * (1 + 2j),
    "transposed view": lambda x, u: lin(x, u).T,
    "strided view": lambda x, u: lin(x, u)[:, ::2],
    "the input itself": lambda x, u: x,
    "NaN and Inf": lambda x, u: np.where(x > 1, np.nan, np.where(x < -1, -np.inf, x)),
    "all NaN": lambda x, u: np.full((4, u), np.nan, np.float32),
    "float64 near overflow": lambda x, u: lin(x, u).astype(np.float64) * 1e307,
    "dict of tuples": lambda x, u: {"a": (lin(x, u), x[:, :3]), "b": (lin(x, u).sum(1),)},
    "dtypes differ": lambda x, u: lin(x, 5).astype(np.float32 if u == 10 else np.float64),
    "variant only": lambda x, u: {"y": lin(x, u), **({"z": x[:, :2]} if u == 5 else {})},
    "base only": lambda x, u: {"y": lin(x, u), **({"z": x[:, :2]} if u == 10 else {})},
    "the same in both": lambda x, u: lin(x, 5),
}


def odd(kind):
    return lambda units: lambda x: ODD_OUTPUTS[kind](x, units)


def counting(monkeypatch):
    """The names of the outputs measured (statistics) from now on."""
    from pytest_weightshape import run

    seen = []
    summarize = run.summarize_output
    monkeypatch.setattr(run, "summarize_output", lambda o: seen.append(o.name) or summarize(o))
    return seen


@pytest.mark.parametrize("kind", list(ODD_OUTPUTS))
def test_outputs_of_every_kind_are_sealed_and_taken_as_measured(kind, monkeypatch):
    recorded = as_golden(Observer(UNITS, odd(kind), (32, 16)).observe())
    measured = Observer(UNITS, odd(kind), (32, 16)).observe()
    seen = counting(monkeypatch)
    taken = Observer(UNITS, odd(kind), (32, 16), recorded=recorded).observe()
    assert seen == []  # every output's bytes are the recorded ones
    assert outputs_of(as_golden(taken)) == outputs_of(as_golden(measured))
    assert compare(recorded, taken, Policy()).ok


def test_a_golden_of_other_outputs_lends_nothing(monkeypatch):
    """A golden copied from another test (other outputs under the same names): every output
    is measured, and the check fails as it would without seals."""
    recorded = as_golden(Observer(UNITS, odd("int64"), (32, 16)).observe())
    build = lambda units: lambda x: (lin(x, units) * 100).astype(np.int64) + (units == 5)  # noqa: E731
    measured = Observer(UNITS, build, (32, 16)).observe()
    seen = counting(monkeypatch)
    taken = Observer(UNITS, build, (32, 16), recorded=recorded).observe()
    assert seen == ["output"]  # the base's bytes are the recorded ones, the variant's moved by 1
    assert outputs_of(as_golden(taken)) == outputs_of(as_golden(measured))
    assert not compare(recorded, taken, Policy()).ok


# -- a golden edited anywhere a seal reaches ---------------------------------------------------


def sealed_leaves(document):
    """Paths to every value a seal covers (statistics, divergence entries) and to the seals."""
    paths = []
    for name, variant in document["variants"].items():
        for output, record in variant["outputs"].items():
            paths.append(("variants", name, "outputs", output, "digest"))
            paths += [("variants", name, "outputs", output, "stats", k) for k in record["stats"]]
        for output, entry in variant.get("divergence", {}).get("outputs", {}).items():
            paths += [("variants", name, "divergence", "outputs", output, k) for k in entry]
    return paths


MIXED = odd("dict of tuples")
MIXED_GOLDEN = as_golden(Observer(UNITS, MIXED, (32, 16)).observe())  # NumPy only: quick
MIXED_MEASURED = outputs_of(MIXED_GOLDEN)
EDITS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.just("crc32:00000000"),
    st.just("delete"),
    st.just("nudge"),
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.sampled_from(sealed_leaves(MIXED_GOLDEN)), EDITS)
def test_a_golden_edited_where_a_seal_reaches_ends_as_measuring_gives(path, edit):
    """However one sealed value (or a seal) is edited, the run's outputs and divergence are
    the measured ones: an edit breaks the seal (measured), or it changed nothing."""
    recorded = copy.deepcopy(MIXED_GOLDEN)
    parent = recorded
    for key in path[:-1]:
        parent = parent[key]
    if edit == "delete":
        del parent[path[-1]]
    elif edit == "nudge":
        value = parent[path[-1]]
        if isinstance(value, float):
            parent[path[-1]] = float(np.nextafter(value, np.inf))
    else:
        parent[path[-1]] = edit
    taken = Observer(UNITS, MIXED, (32, 16), recorded=recorded).observe()
    assert outputs_of(as_golden(taken)) == MIXED_MEASURED


# -- --snapshot-update and the seals a golden holds --------------------------------------------


def test_an_update_repairs_a_seal_that_no_longer_verifies_only_where_the_values_are_this_runs():
    """A seal damaged (a merge, a hand edit) would never verify again, so every later run
    would measure that output: an update puts this run's seal there when the golden's values
    are this run's, and keeps the golden's seal (never verifying) beside values it kept."""
    from pytest_weightshape.document import with_missing
    from pytest_weightshape.reuse import unverified_dropped

    current = Observer(UNITS, MIXED, (32, 16)).observe()
    damaged = copy.deepcopy(current)
    outputs = damaged["variants"]["units=5"]["outputs"]
    outputs["a.0"]["digest"] = "crc32:00000000"
    outputs["a.1"]["digest"] = {"not": "a seal"}
    outputs["b.0"]["digest"] = "crc32:00000000"
    outputs["b.0"]["stats"]["mean"] *= 1 + 1e-9  # kept (within tolerance): not this run's
    merged = unverified_dropped(damaged, with_missing(damaged, current), current)
    repaired = merged["variants"]["units=5"]["outputs"]
    now = current["variants"]["units=5"]["outputs"]
    assert repaired["a.0"]["digest"] == now["a.0"]["digest"]
    assert repaired["a.1"]["digest"] == now["a.1"]["digest"]
    assert repaired["b.0"]["digest"] == "crc32:00000000"
    # repaired once: a second update finds nothing to write
    again = unverified_dropped(merged, with_missing(merged, current), current)
    assert again == merged
