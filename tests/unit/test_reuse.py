"""A run that will not write its golden takes the statistics and divergence the golden sealed
for the same output bytes, and measures everything else (``reuse``, ``checksum``)."""

import copy
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_weightshape import golden, run
from pytest_weightshape.checksum import array_crc, combine, seal
from pytest_weightshape.compare import compare
from pytest_weightshape.document import with_missing
from pytest_weightshape.reuse import unverified_dropped
from pytest_weightshape.run import Observer
from pytest_weightshape.spec import parse_marker
from pytest_weightshape.stats import digest, digest_and_zeros, fingerprint, zero_count
from pytest_weightshape.tolerance import Policy

from ..models import Dense


@given(st.binary(max_size=300), st.binary(max_size=300), st.integers(0, 2**32 - 1))
def test_two_crcs_combine_into_the_crc_of_the_concatenation(a, b, start):
    assert combine(zlib.crc32(a, start), zlib.crc32(b), len(b)) == zlib.crc32(a + b, start)


@pytest.mark.parametrize("most", [1, 2, 3, 4])
def test_an_arrays_crc_is_zlibs_whatever_the_threads(most):
    x = np.random.default_rng(0).standard_normal((1100, 1500)).astype(np.float32)  # 6.6 MB
    assert array_crc(x, 0, most) == zlib.crc32(x.tobytes())
    assert array_crc(x.T, 7, most) == zlib.crc32(np.ascontiguousarray(x.T).tobytes(), 7)
    # the digests of committed goldens are unchanged: header, then the bytes
    assert digest(x) == f"crc32:{zlib.crc32(x.tobytes(), zlib.crc32(b'<f4(1100, 1500)')):08x}"


def test_a_seal_covers_every_value_not_the_key_order():
    stats = {"mean": 0.5, "std": 1.25, "count": 3, "q50": None}
    assert seal(1, stats) == seal(1, dict(reversed(list(stats.items()))))
    assert seal(1, stats) != seal(2, stats)  # other bytes
    assert seal(1, stats) != seal(1, {**stats, "mean": 0.5000000000000001})
    assert seal(1, stats) != seal(1, {**stats, "q50": 0.0})


# -- the Observer with a golden ---------------------------------------------------------------


class Pair:
    """Two outputs, the second only for units=10 (an output the base has and one it lacks)."""

    def __init__(self, units, scale=1.0):
        self.dense = Dense(units)
        self.dense.kernel *= np.float32(scale)
        self.units = units

    def __call__(self, x):
        y = self.dense(x)
        return {"y": y, "extra": y[:, :2] * 2} if self.units == 5 else {"y": y}


SPEC = {"units": [10, 5]}


def observe(recorded=None, scale=1.0, build=None):
    build = build or (lambda units: Pair(units, scale if units == 5 else 1.0))
    return Observer(parse_marker((), SPEC), build, (300, 16), recorded=recorded).observe()


def as_golden(document):
    """The document as a run reads it back from its golden file."""
    return golden.parse_file(golden.render_file("t", {"c": document}), "t.json")[1]["c"]


@pytest.fixture
def measured(monkeypatch):
    """(variant, output) pairs whose statistics / divergence were measured, not taken."""
    seen = {"stats": [], "divergence": []}
    stats, divergence = run.summarize_output, run.output_divergence
    monkeypatch.setattr(run, "summarize_output", lambda o: seen["stats"].append(o.name) or stats(o))

    def counted(*args, **kwargs):
        seen["divergence"].append(args[0].shape)
        return divergence(*args, **kwargs)

    monkeypatch.setattr(run, "output_divergence", counted)
    return seen


def without_environment(document):
    return {k: v for k, v in document.items() if k != "environment"}


def test_unchanged_outputs_are_taken_from_the_golden_as_measuring_would_give_them(measured):
    recorded = as_golden(observe())
    measured["stats"].clear(), measured["divergence"].clear()
    again = observe(recorded)
    assert measured == {"stats": [], "divergence": []}
    assert without_environment(again) == without_environment(recorded)
    for name, variant in again["variants"].items():
        for output, record in variant["outputs"].items():
            assert record["digest"].startswith("crc32:"), (name, output)
    assert compare(recorded, again, Policy()).ok


def test_moved_bytes_are_measured_however_little_they_moved(measured):
    recorded = as_golden(observe())
    measured["stats"].clear(), measured["divergence"].clear()
    again = observe(recorded, scale=1.0 + 1e-7)  # the variant's weights, by rounding noise
    assert measured["stats"] == ["y", "extra"]  # the base is taken, the variant measured
    assert len(measured["divergence"]) == 1
    assert (
        again["variants"]["units=5"]["outputs"]["y"]["digest"]
        != (recorded["variants"]["units=5"]["outputs"]["y"]["digest"])
    )
    assert compare(recorded, again, Policy()).ok  # and still within tolerance


@pytest.mark.parametrize(
    "edit",
    [
        lambda g: g["variants"]["units=10"]["outputs"]["y"]["stats"].update(mean=1.0),
        lambda g: g["variants"]["units=5"]["outputs"]["y"]["stats"].update(q99=7.0),
        lambda g: g["variants"]["units=5"]["divergence"]["outputs"]["y"].update(cka=0.5),
        lambda g: g["variants"]["units=5"]["outputs"]["extra"]["stats"].pop("std"),
    ],
    ids=["base mean", "variant quantile", "divergence", "a statistic removed"],
)
def test_a_golden_value_edited_by_hand_is_measured_and_fails(measured, edit):
    recorded = as_golden(observe())
    edit(recorded)
    measured["stats"].clear()
    again = observe(recorded)
    assert measured["stats"]  # what the edited seal covered is measured again
    assert not compare(recorded, again, Policy()).ok


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r.update(digest=42),
        lambda r: r.update(digest="crc32:zz"),
        lambda r: r.update(stats=[1, 2]),
        lambda r: r.pop("digest"),
    ],
    ids=["digest a number", "digest not hex", "stats a list", "no digest (older golden)"],
)
def test_a_damaged_or_older_seal_is_measured_never_a_crash(measured, damage):
    recorded = as_golden(observe())
    damage(recorded["variants"]["units=10"]["outputs"]["y"])
    measured["stats"].clear()
    observe(recorded)
    assert "y" in measured["stats"]


def test_torch_outputs_on_the_cpu_are_sealed_and_taken_too(measured):
    torch = pytest.importorskip("torch")

    def build(units):
        return torch.nn.Sequential(torch.nn.Linear(16, units), torch.nn.Tanh())

    first = Observer(parse_marker((), SPEC), build, (64, 16)).observe()
    measured["stats"].clear(), measured["divergence"].clear()
    again = Observer(parse_marker((), SPEC), build, (64, 16), recorded=as_golden(first)).observe()
    assert measured == {"stats": [], "divergence": []}
    assert without_environment(again) == without_environment(as_golden(first))


# -- weights as recorded ----------------------------------------------------------------------


def with_zeros_and_nan(shape, dtype):
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[::7] = 0
    flat[3::1000] = np.nan
    return x


@pytest.mark.parametrize("most", [1, 2, 3])
@pytest.mark.parametrize(
    "x",
    [
        with_zeros_and_nan((1100, 1500), np.float32),  # spans of whole blocks and a tail
        with_zeros_and_nan((3, 1 << 18), np.float16),
        with_zeros_and_nan((700, 700), np.float64).T,  # not contiguous
        with_zeros_and_nan((5, 7), np.float32),  # under one block
        np.zeros(0, np.float32),
        np.arange(-5, 600_000, dtype=np.int64),
    ],
    ids=["float32", "float16", "float64.T", "small", "empty", "int64"],
)
def test_one_pass_gives_the_digest_and_the_zeros_of_their_own_passes(x, most):
    assert digest_and_zeros(x, most) == (digest(x), zero_count(x))


def test_a_weight_as_recorded_lends_its_mean_and_std_the_zeros_are_measured():
    """Same bytes (same digest): mean and std only size a change in a message, so they are
    taken; the zero fraction feeds the variant's sparsity, which is compared: measured."""
    x = with_zeros_and_nan((1100, 1500), np.float32)
    recorded = fingerprint(x, zeros=True)
    assert fingerprint(x, zeros=True, known=recorded) == recorded
    edited = {**recorded, "mean": 123.0, "zero_fraction": 0.5}
    assert fingerprint(x, zeros=True, known=edited) == {**recorded, "mean": 123.0}
    moved = x.copy()
    moved[0, 1] = 0.25
    assert fingerprint(moved, zeros=True, known=recorded) == fingerprint(moved, zeros=True)


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: f.update(mean="0.5"),
        lambda f: f.pop("std"),
        lambda f: f.update(digest=42),
        lambda f: f.update(std=None),
    ],
    ids=["mean a string", "std removed", "digest a number", "std null"],
)
def test_a_damaged_recorded_fingerprint_is_measured_never_taken(damage):
    x = with_zeros_and_nan((300, 1000), np.float32)
    known = fingerprint(x, zeros=True)
    damage(known)
    assert fingerprint(x, zeros=True, known=known) == fingerprint(x, zeros=True)


def test_a_passing_torch_check_takes_weights_and_buffers_as_recorded_and_measures_the_rest():
    torch = pytest.importorskip("torch")

    def build(units, scale=1.0):
        model = torch.nn.Sequential(torch.nn.Linear(16, units), torch.nn.BatchNorm1d(units))
        with torch.no_grad():
            model[0].weight *= scale
        return model

    spec = parse_marker((), SPEC)
    first = as_golden(Observer(spec, build, (64, 16)).observe())
    golden_ = copy.deepcopy(first)
    base = golden_["variants"]["units=10"]
    base["parameters"]["0.weight"]["fingerprint"]["mean"] = 9.0
    base["buffers"]["1.running_var"]["fingerprint"]["std"] = 8.0
    again = Observer(spec, build, (64, 16), recorded=golden_).observe()
    taken = again["variants"]["units=10"]
    assert taken["parameters"]["0.weight"]["fingerprint"]["mean"] == 9.0
    assert taken["buffers"]["1.running_var"]["fingerprint"]["std"] == 8.0
    first["variants"]["units=10"] = taken
    assert without_environment(again) == without_environment(first)  # the rest as measured

    moved = lambda units: build(units, 1.001 if units == 5 else 1.0)  # noqa: E731
    again = Observer(spec, moved, (64, 16), recorded=golden_).observe()
    alone = Observer(spec, moved, (64, 16)).observe()
    assert again["variants"]["units=5"]["parameters"] == alone["variants"]["units=5"]["parameters"]


# -- --snapshot-update on an older golden ---------------------------------------------------


def test_an_update_adds_a_seal_only_where_the_golden_keeps_the_values_it_seals():
    current = observe()
    older = copy.deepcopy(current)
    for variant in older["variants"].values():
        for record in variant["outputs"].values():
            del record["digest"]
    same = unverified_dropped(older, with_missing(older, current), current)
    assert same["variants"] == current["variants"]  # values equal: every seal is added
    older["variants"]["units=5"]["outputs"]["y"]["stats"]["mean"] *= 1 + 1e-9  # kept, differs
    older["variants"]["units=10"]["outputs"]["y"]["stats"]["std"] *= 1 + 1e-9
    merged = unverified_dropped(older, with_missing(older, current), current)
    assert "digest" not in merged["variants"]["units=5"]["outputs"]["y"]
    assert "digest" not in merged["variants"]["units=10"]["outputs"]["y"]
    assert "digest" in merged["variants"]["units=5"]["outputs"]["extra"]
    # a seal the golden holds stays with the values it seals
    moved = observe(scale=2.0)
    kept = unverified_dropped(current, with_missing(current, moved), moved)
    assert kept["variants"] == current["variants"]


def test_a_seal_made_by_another_measuring_method_is_measured(measured, monkeypatch):
    """Seals carry ``reuse.MEASURES``: after a change in how statistics or divergence are
    measured (the number bumped), a golden's values are measured again, not lent."""
    from pytest_weightshape import reuse

    recorded = as_golden(observe())
    measured["stats"].clear()
    monkeypatch.setattr(reuse, "MEASURES", reuse.MEASURES + 1)
    observe(recorded)
    assert measured["stats"] == ["y", "y", "extra"]
