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


def test_draws_take_numpy_and_torch_numbers_and_dtypes():
    """A vocabulary size read from a NumPy array or a config, a dtype given as ``np.int32`` or
    ``torch.int32``, a probability computed in NumPy: the draw is the one the plain values give."""
    np = pytest.importorskip("numpy")
    from pytest_weightshape import booleans, integers
    from pytest_weightshape.inputs import make_inputs

    plain = make_inputs((integers((2, 5), high=7, low=2, dtype="int32"), booleans(4, p=0.3)), 1)
    for dtype in (np.int32, np.dtype("int32"), torch.int32):
        ids, mask = make_inputs(
            (
                integers((2, 5), high=np.int64(7), low=np.int16(2), dtype=dtype),
                booleans(np.int64(4), p=np.float64(0.3)),
            ),
            1,
        )
        assert ids.dtype == np.int32 and np.array_equal(ids, plain[0])
        assert np.array_equal(mask, plain[1])
    assert "high=7," in repr(integers((1,), high=np.int64(7)))  # shown as a plain int
    shape = integers((np.int64(2), 3), high=5).shape
    assert shape == (2, 3) and all(type(d) is int for d in shape)
    with pytest.raises(Exception, match="dtype must be one of"):
        integers((1,), high=5, dtype=torch.float32)
    with pytest.raises(Exception, match="probability"):
        booleans((1,), p=np.float64(1.5))
