"""Hostile cases for issue 14's keyword inputs and FLOPs: each failed with a misleading error."""

import pytest

from pytest_weightshape.errors import ModelError
from pytest_weightshape.run import Observer
from pytest_weightshape.spec import parse_marker

torch = pytest.importorskip("torch")
nn = torch.nn


def observe(build, inputs, flops=False, **marker):
    return Observer(parse_marker((), marker), build, inputs, flops=flops).observe()


class RefusesDispatchModes(nn.Module):
    """A model whose forward fails under a torch dispatch mode (as FlopCounterMode is), e.g. a
    custom operator the counter cannot trace; it runs fine without one."""

    def __init__(self, width):
        super().__init__()
        self.linear = nn.Linear(4, width)

    def forward(self, x):
        from torch.utils._python_dispatch import _get_current_dispatch_mode

        if _get_current_dispatch_mode() is not None:
            raise RuntimeError("unsupported operator under a dispatch mode")
        return self.linear(x)


def test_a_forward_the_flop_counter_breaks_names_the_flop_counter_and_the_fix():
    assert observe(RefusesDispatchModes, (2, 4), width=[2, 3])["variants"]  # runs uncounted
    with pytest.raises(ModelError) as info:
        observe(RefusesDispatchModes, (2, 4), flops=True, width=[2, 3])
    message = str(info.value)
    assert "variant width=2" in message
    assert "FlopCounterMode" in message and "--weightshape-flops" in message
    assert "unsupported operator under a dispatch mode" in message
    assert "rejected the inputs" not in message  # the inputs are fine


class OneInput(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.linear = nn.Linear(4, width)

    def forward(self, x):
        return self.linear(x)


def test_an_input_given_positionally_and_by_keyword_is_named_before_the_forward():
    with pytest.raises(ModelError) as info:
        observe(OneInput, ((2, 4), {"x": (2, 4)}), width=[2, 3])
    message = str(info.value)
    assert "variant width=2" in message
    assert "'x'" in message and "both positionally and by keyword" in message
    assert "OneInput.forward(x)" in message
    assert "rejected the inputs" not in message
