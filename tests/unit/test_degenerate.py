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


def test_a_single_value_output_is_not_called_constant():
    """A 0-d output (a sum, a loss) has one value and no spread to lack: it pins the model
    (was warned "constant"); a single zero is still all zero."""
    assert findings(observe(outputs(lambda x, u: np.float32(np.tanh(x[:, :u]).sum())))) == []
    zero = findings(observe(outputs(lambda x, u: np.float32(0.0))))
    assert {f.kind for f in zero} == {"all zero"}


def test_a_training_whose_loss_diverged_is_found_with_the_step_and_the_fix():
    """lr=1e30 makes step 1's loss NaN (recorded as null): recording warns, naming the variant,
    the step and the fix; a variant whose losses stay finite is not flagged."""
    doc = {
        "kind": "training",
        "variants": {
            "h=4": {"outputs": {}, "training": {"losses": [0.49, None, None]}},
            "h=8": {"outputs": {}, "training": {"losses": [0.26, 0.2, 0.1]}},
        },
    }
    (found,) = findings(doc)
    assert (found.variant, found.output, found.kind) == ("h=4", "loss", "diverged")
    assert "NaN or Inf at step 1 of 3" in found.text and "lower lr=" in found.text


def test_a_training_whose_optimizer_moved_no_weight_is_found():
    """An optimizer over other parameters (a cached one, one built over another model) trains
    nothing, silently: every update norm 0 although step 0 had a gradient."""
    torch = pytest.importorskip("torch")
    from pytest_weightshape.training_run import Trainer

    def train(optimizer):
        spec = parse_marker((), {"hidden": [5, 7]})
        nn = torch.nn
        build = lambda hidden: nn.Sequential(nn.Linear(6, hidden), nn.Linear(hidden, 2))  # noqa: E731
        return Trainer(spec, build, (4, 6), (4, 2), loss="mse", optimizer=optimizer).observe()

    def foreign(params):
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1)

    found = findings(train(foreign))
    kinds = {(f.variant, f.kind) for f in found}
    assert kinds == {(v, "no update") for v in ("hidden=5", "hidden=7")}
    assert "the optimizer does not hold this variant's parameters" in found[0].text
    assert [f for f in findings(train("sgd")) if f.kind == "no update"] == []
