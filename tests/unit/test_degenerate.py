import numpy as np
import pytest

from pytest_weightshape.degenerate import findings
from pytest_weightshape.run import Observer
from pytest_weightshape.spec import parse_marker

from ..models import Dense


def observe(build, units=(10, 5)):
    spec = parse_marker((), {"units": list(units)})
    return Observer(spec, build, (8, 16)).observe()


def outputs(make):
    """A model with one weight whose output is ``make(x, units)``."""

    class Model(Dense):
        def __call__(self, x):
            return make(x, self.bias.size)

    return Model


@pytest.mark.parametrize(
    ("make", "kind", "words"),
    [
        (lambda x, u: np.zeros((len(x), u), np.float32), "all zero", "keeps it zero"),
        (lambda x, u: np.full((len(x), u), 0.1, np.float32), "constant", "every element is 0.1"),
        (
            lambda x, u: np.full((len(x), u), np.nan, np.float32),
            "all NaN/Inf",
            "pins only the NaN/Inf counts",
        ),
        (
            # softmax of ~1e-12 logits: 0.1 give or take one ulp
            lambda x, u: (0.1 + np.sign(x[:, :u]) * np.spacing(np.float32(0.1))).astype(np.float32),
            "below float noise",
            "within float rounding",
        ),
    ],
)
def test_degenerate_outputs_are_found_with_what_they_cannot_detect(make, kind, words):
    found = findings(observe(outputs(make)))
    assert {f.kind for f in found} == {kind}
    assert {f.variant for f in found} == {"units=10", "units=5"}
    assert all(f.output == "output" for f in found)
    assert words in found[0].text and "cannot detect" in found[0].text


def test_an_output_the_axis_does_not_change_is_found():
    doc = observe(outputs(lambda x, u: np.tanh(x)))  # ignores its units
    (found,) = findings(doc)
    assert (found.variant, found.output, found.kind) == ("every variant", "output", "identical")
    assert "the axis changes nothing" in found.text and "units=10, units=5" in found.text


def test_an_ordinary_output_is_not_degenerate():
    assert findings(observe(Dense)) == []
