"""A hostile pass on "a passing check takes what its golden sealed" (``reuse``): whatever the
golden holds, a run that takes values from it ends with the document measuring would give."""

import copy

import numpy as np
import pytest

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
