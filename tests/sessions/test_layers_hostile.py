"""Localisation on a hostile torch model (issue 15): a forward that runs its first layers
under ``torch.inference_mode``, an in-place ReLU, a module called twice and a float64 layer.
Recorded with ``--snapshot-update``, then a run with the last layer's weights scaled must name
that layer as the first moved one. Inner sessions are subprocesses (they import torch)."""

import importlib.util
import textwrap

import pytest

from .helpers import run_each

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")

HOSTILE = textwrap.dedent(
    """
    import os

    import pytest
    import torch
    from torch import nn

    SCALE = float(os.environ.get("SCALE", "1"))


    class Net(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.embed = nn.Linear(6, width)
            self.act = nn.ReLU(inplace=True)
            self.shared = nn.Linear(width, width)
            self.wide = nn.Linear(width, width).double()
            self.head = nn.Linear(width, 3)

        def forward(self, x):
            with torch.inference_mode():  # a frozen encoder
                h = self.act(self.embed(x))
            h = h.clone()
            h = torch.tanh(self.shared(torch.tanh(self.shared(h))))
            return self.head(self.wide(h.double()).float())


    def build(width):
        model = Net(width)
        with torch.no_grad():
            for p in model.head.parameters():
                p.mul_(SCALE)
        return model


    @pytest.mark.shape_variant(width=[300, 1100])
    def test_hostile(shape_variant):
        shape_variant.check(build, inputs=(4, 6))
    """
)


def test_a_forward_partly_in_inference_mode_records_and_names_the_first_moved_layer(
    pytester, monkeypatch
):
    pytester.makepyfile(test_hostile=HOSTILE)
    result, outcomes = run_each(pytester, "--snapshot-update", "-q")
    assert outcomes.get("test_hostile::test_hostile", ("missing",))[0] == "passed", (
        result.stdout.str()
    )
    golden = (pytester.path / "golden" / "test_hostile" / "test_hostile.json").read_text()
    assert "unrecorded" not in golden
    for name in ('"embed"', '"act"', '"shared"', '"shared#2"', '"wide"', '"head"'):
        assert name in golden
    monkeypatch.setenv("SCALE", "1.001")
    result, outcomes = run_each(pytester, "-q")
    outcome, text = outcomes.get("test_hostile::test_hostile", ("missing", ""))
    assert outcome == "failed", result.stdout.str()
    assert "first moved layer: head (Linear)" in text, text
    assert "the 5 layer outputs before it hold" in text, text
