"""What a golden states it can detect (``sensitivity``), and that the statement is right."""

import copy

import numpy as np
import pytest

from pytest_weightshape import sensitivity
from pytest_weightshape.compare import compare
from pytest_weightshape.run import Observer
from pytest_weightshape.spec import parse_marker
from pytest_weightshape.tolerance import Override, Policy

from ..models import Dense


def observe(build=Dense, inputs=(64, 16), record=True, **marker):
    spec = parse_marker((), {"units": [10, 5], **marker})
    return Observer(spec, build, inputs, sensitivity=record).observe()


@pytest.fixture(scope="module")
def doc():
    return observe()


def scaled_by(factor):
    def build(units):
        model = Dense(units)
        model.kernel = (model.kernel * factor).astype(np.float32)
        model.bias = (model.bias * factor).astype(np.float32)
        return model

    return build


def test_recording_states_a_floor_and_a_threshold_that_hold(doc):
    stated = sensitivity.under(doc, Policy())
    assert stated is not None
    assert 0 < stated.floor < 1e-6  # rounding-sized: far under float32's default rtol
    assert 1e-7 < stated.detects < 1e-4
    assert stated.by.startswith(("units=10 / output", "units=5 / output"))
    # the statement is right: a change of twice the threshold fails, half of it passes
    # (ReLU(x W + b) is homogeneous: scaling every weight scales the output)
    assert not compare(doc, observe(scaled_by(1 + 2 * stated.detects)), Policy()).ok
    assert compare(doc, observe(scaled_by(1 + stated.detects / 2)), Policy()).ok


def test_measuring_sensitivity_changes_nothing_else(doc):
    plain = observe(record=False)
    stripped = copy.deepcopy(doc)
    for variant in stripped["variants"].values():
        for output in variant["outputs"].values():
            assert set(output["response"]) >= {"mean", "std", "q50", "max"}
            del output["response"], output["floor"]
    assert stripped == plain  # weights put back, the same statistics and fingerprints


def test_a_looser_tolerance_detects_less_and_says_when_it_is_over_10x_the_floor(doc):
    default = sensitivity.under(doc, Policy())
    loose = sensitivity.under(doc, Policy(default=Override(rtol=1e-3)))
    assert loose.detects > 10 * default.detects
    assert loose.wasted is not None and loose.wasted > 10
    assert "tolerance overridden to rtol 0.001" in loose.text()
    assert default.wasted is None and "overridden" not in default.text()
    # an override within 10x of the floor is not flagged
    close = sensitivity.under(doc, Policy(default=Override(rtol=5 * default.floor)))
    assert close.wasted is None


def test_a_golden_recorded_without_it_is_not_stated(doc):
    old = observe(record=False)
    assert sensitivity.under(old, Policy()) is None
    assert sensitivity.text(old, Policy()) == sensitivity.NOT_STATED
    assert "--snapshot-update adds it" in sensitivity.NOT_STATED


def test_a_constant_output_detects_no_weight_change():
    def build(units):
        return lambda x: np.zeros((x.shape[0], units), np.float32) + 0.1

    doc = observe(build)
    stated = sensitivity.under(doc, Policy())
    assert stated is None  # no parameters: nothing to scale, and it says so (not "older")
    assert sensitivity.text(doc, Policy()) == sensitivity.NO_WEIGHTS
    assert sensitivity.text(observe(record=False), Policy()) == sensitivity.NOT_STATED

    class Saturated(Dense):
        def __call__(self, x):
            return np.ones((x.shape[0], self.bias.size), np.float32) * 0.1 + 0 * self.bias

    stated = sensitivity.under(observe(Saturated), Policy())
    assert stated.detects == float("inf")
    assert "it detects none" in stated.text()


def test_nudged_moves_every_float_weight_by_one_ulp():
    values = {"w": np.array([1.0, -2.0, 0.5], np.float32), "n": np.array([3, 4])}
    out = sensitivity.nudged(values, seed=0)
    assert np.array_equal(out["n"], values["n"])
    steps = np.abs(out["w"] - values["w"]) / np.spacing(np.abs(values["w"]))
    assert np.all((steps > 0.4) & (steps <= 1.0))
    assert out["w"].dtype == np.float32


def test_the_summary_counts_a_check_that_fails_at_any_change_as_detecting_one():
    """rtol=0 (or a tolerance so tight any weight change fails) states a threshold of 0: the
    summary names it the strictest golden, never one that "detects no weight change"."""
    from pytest_weightshape.report.formats import summary_lines

    def record(check, detects):
        found = {"stated": True, "text": "", "detects": detects, "overridden": None}
        return {
            "nodeid": "t.py::test_x",
            "check": check,
            "status": "passed",
            "worst": None,
            "environment": {"changes": []},
            "sensitivity": found,
        }

    lines = summary_lines([record("exact", 0.0), record("loose", 1e-3), record("blind", "inf")])
    text = "\n".join(lines)
    assert "weight of 0.001 or less (weakest: t.py::test_x [loose])" in text
    assert "1 golden detects no weight change (t.py::test_x [blind])" in text


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_low_precision_model_states_what_it_detects(dtype):
    """Weights in bfloat16/float16 (host copies in float32): a 1e-3 scaling or a float32-sized
    nudge rounds away when written back, which stated "detects none" and a floor of 0. The
    response is measured with a step the dtype can hold, and the statement is right."""
    torch = pytest.importorskip("torch")

    def build(factor=1.0):
        def make(units):
            torch.manual_seed(units)
            model = torch.nn.Linear(16, units, bias=False).to(getattr(torch, dtype))
            with torch.no_grad():
                model.weight.mul_(factor)
            return model

        return make

    inputs = lambda: torch.randn(64, 16).to(getattr(torch, dtype))  # noqa: E731
    spec = parse_marker((), {"units": [10, 5]})
    doc = Observer(spec, build(), inputs, sensitivity=True).observe()
    stated = sensitivity.under(doc, Policy())
    assert stated is not None
    assert 0 < stated.floor < 0.1
    assert 0 < stated.detects < 0.5
    bigger = Observer(spec, build(1 + 2 * stated.detects), inputs).observe()
    assert not compare(doc, bigger, Policy()).ok


def test_a_model_whose_forward_runs_once_is_recorded_without_sensitivity():
    """Measuring sensitivity runs each variant twice more: a model that cannot (a one-shot
    forward, a model that rejects changed weights) is still recorded, as before, without a
    sensitivity statement, and says why (the test warns with it)."""

    class Once(Dense):
        def __init__(self, units):
            super().__init__(units)
            self.calls = 0

        def __call__(self, x):
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("forward once only")
            return super().__call__(x)

    spec = parse_marker((), {"units": [10, 5]})
    observer = Observer(spec, Once, (64, 16), sensitivity=True)
    doc = observer.observe()
    assert sensitivity.under(doc, Policy()) is None  # not stated
    assert [why.split(":")[0] for why in observer.unmeasured] == [
        "variant units=10",
        "variant units=5",
    ]
    assert all("forward once only" in why for why in observer.unmeasured)
    plain = Observer(spec, Once, (64, 16)).observe()
    assert doc == plain  # the same golden as one recorded without measuring
