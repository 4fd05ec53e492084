"""Training-step checks, piece by piece: resolving loss/optimizer/steps/lr, targets drawn after
the inputs, the gradient and update statistics, the torch training step, the document's
validation, and the comparison with its likely causes (torch models, in process)."""

import copy
import math

import numpy as np
import pytest

from pytest_weightshape import integers
from pytest_weightshape.compare import compare
from pytest_weightshape.document import check_problem
from pytest_weightshape.errors import ModelError, SpecError
from pytest_weightshape.frameworks import Array
from pytest_weightshape.inputs import draw_inputs, draw_targets, input_stream
from pytest_weightshape.run import Observer
from pytest_weightshape.spec import parse_marker
from pytest_weightshape.tolerance import Policy
from pytest_weightshape.training import (
    DEFAULT_LR,
    check_steps,
    resolve_loss,
    resolve_optimizer,
)
from pytest_weightshape.training_run import (
    Trainer,
    gradient_stats,
    training_divergence,
    update_stats,
)

torch = pytest.importorskip("torch")
nn = torch.nn


# -- resolving the call ---------------------------------------------------------------------


def test_builtin_loss_and_optimizer_resolve_with_default_learning_rates():
    assert resolve_loss("mse").name == "mse"
    assert resolve_optimizer("sgd", None).lr == DEFAULT_LR["sgd"] == 0.01
    assert resolve_optimizer("adam", None).lr == DEFAULT_LR["adam"] == 0.001
    assert resolve_optimizer("adam", 3e-4).lr == 3e-4


def test_a_keras_loss_is_refused_with_its_arguments_the_right_way_round():
    """Keras's losses take (y_true, y_pred), the reverse of what ``check_training`` passes: a
    ``BinaryCrossentropy`` recorded a silently wrong loss (1.26 instead of 0.93 on the same
    data). Its classes' instances and its functions are refused with the swap to write;
    torch's losses, which take (input, target), and the user's own are not."""
    BinaryCrossentropy = type("BinaryCrossentropy", (), {"__call__": lambda self, a, b: 0.0})
    BinaryCrossentropy.__module__ = "keras.src.losses.losses"

    def binary_crossentropy(y_true, y_pred):
        return 0.0

    binary_crossentropy.__module__ = "keras.src.losses.losses"
    binary_crossentropy.__qualname__ = "binary_crossentropy"  # as Keras's own
    MSELoss = type("MSELoss", (), {"__call__": lambda self, a, b: 0.0})
    MSELoss.__module__ = "torch.nn.modules.loss"
    for loss, swap in (
        (BinaryCrossentropy(), "keras.losses.BinaryCrossentropy(...)(target, output)"),
        (binary_crossentropy, "keras.losses.binary_crossentropy(target, output)"),
    ):
        with pytest.raises(SpecError) as refused:
            resolve_loss(loss)
        assert "Keras's losses take (y_true, y_pred)" in str(refused.value)
        assert f"loss=lambda output, target: {swap}" in str(refused.value)
    assert resolve_loss(MSELoss()).name == "custom:MSELoss"
    assert resolve_loss(lambda output, target: 0.0).kind == "custom"


def test_custom_loss_and_optimizer_are_named_by_qualified_name_and_keep_lr():
    def my_loss(output, target):
        return output.sum()

    loss = resolve_loss(my_loss)
    assert loss.kind == "custom" and loss.fn is my_loss
    assert loss.name.startswith("custom:") and loss.name.endswith("my_loss")
    factory = resolve_optimizer(lambda params: None, 0.5)
    assert factory.kind == "custom" and factory.lr == 0.5  # overrides the factory's rate
    assert resolve_optimizer(lambda params: None, None).lr is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: resolve_loss("hinge"), "unknown loss; use one of 'mse', 'cross_entropy'"),
        (lambda: resolve_loss(3), "got int; give 'mse', 'cross_entropy'"),
        (lambda: resolve_optimizer("rmsprop", None), "unknown optimizer name; use 'sgd' or 'adam'"),
        (lambda: resolve_optimizer("rmsprop", None), "for Keras an optimizer such as keras."),
        (lambda: resolve_optimizer(None, None), "got NoneType; give 'sgd' or 'adam'"),
        (lambda: resolve_optimizer("sgd", 0), "lr=0): the learning rate must be a finite"),
        (lambda: resolve_optimizer("sgd", float("nan")), "the learning rate must be a finite"),
        (lambda: resolve_optimizer("sgd", "0.1"), "the learning rate must be a number > 0"),
        (lambda: check_steps(0), "steps must be a positive integer"),
        (lambda: check_steps(1.5), "steps must be a positive integer"),
        (lambda: check_steps(True), "steps must be a positive integer"),
        (lambda: check_steps(10**6), "steps=1000000): at most 1000 steps"),
    ],
)
def test_bad_calls_are_refused_with_the_fix(call, message):
    with pytest.raises(SpecError, match=None) as info:
        call()
    assert message in str(info.value)


def test_steps_takes_numpy_integers():
    assert check_steps(np.int64(3)) == 3
    assert check_steps(1000) == 1000  # the cap itself is allowed


# -- targets ----------------------------------------------------------------------------------


def test_a_target_shape_draws_from_the_stream_after_the_inputs():
    rng = input_stream(7)
    inputs = draw_inputs((2, 3), 7, rng)
    (target,) = draw_targets((2, 3), 7, rng)
    again = input_stream(7)
    first = again.standard_normal((2, 3), dtype=np.float32)
    second = again.standard_normal((2, 3), dtype=np.float32)
    assert np.array_equal(inputs[0].value, first)
    assert target.name == "target" and np.array_equal(target.value, second)
    assert not np.array_equal(target.value, inputs[0].value)


def test_targets_take_integers_arrays_callables_and_tuples():
    rng = input_stream(0)
    (ids,) = draw_targets(integers((4,), high=3), 0, rng)
    assert ids.value.dtype == np.int64 and ids.value.max() < 3
    given = np.ones((2,), dtype=np.float32)
    (same,) = draw_targets(given, 0, rng)
    assert same.value is given
    (called,) = draw_targets(lambda r: r.standard_normal((5,)), 0, rng)
    assert called.value.shape == (5,)
    several = draw_targets(((2,), integers((2,), high=2)), 0, rng)
    assert [t.name for t in several] == ["target.0", "target.1"]


def test_bad_targets_name_targets():
    rng = input_stream(0)
    with pytest.raises(SpecError, match="targets= shape"):
        draw_targets((-1, 2), 0, rng)
    with pytest.raises(SpecError, match="not a mapping"):
        draw_targets({"y": (2,)}, 0, rng)
    with pytest.raises(SpecError, match=r"targets= got str"):
        draw_targets("labels", 0, rng)


# -- statistics -------------------------------------------------------------------------------


def test_gradient_statistics_are_float64_moments_of_the_gradient():
    g = np.array([[3.0, 0.0], [-4.0, 0.0]], dtype=np.float32)
    stats = gradient_stats(g)
    assert stats["norm"] == 5.0 and stats["max_abs"] == 4.0
    assert stats["mean"] == pytest.approx(-0.25) and stats["zero_fraction"] == 0.5
    assert stats["std"] == pytest.approx(np.std(g.astype(np.float64)))
    assert gradient_stats(np.array([np.nan], dtype=np.float32))["norm"] is None


def test_updates_are_change_norms_relative_to_the_weight():
    before = [Array("w", np.array([3.0, 4.0]), "float64"), Array("z", np.zeros(2), "float64")]
    after = [Array("w", np.array([3.0, 5.0]), "float64"), Array("z", np.ones(2), "float64")]
    updates = update_stats(before, after)
    assert updates["w"] == {"norm": 1.0, "relative": 0.2}
    assert updates["z"] == {"norm": math.sqrt(2), "relative": None}  # a zero weight


def test_training_divergence_ratios_are_null_where_the_base_is_zero():
    base = {"losses": [2.0, 0.0], "gradients": {"w": {"norm": 0.0}}, "updates": {}}
    variant = {
        "losses": [1.0, 1.0],
        "gradients": {"w": {"norm": 1.0}, "v": {"norm": 1.0}},
        "updates": {},
    }
    div = training_divergence(base, variant)
    assert div == {
        "loss_ratio": [0.5, None],
        "gradient_norm_ratio": {"w": None},  # only parameters both have
        "update_norm_ratio": {},
    }


# -- the torch training step ------------------------------------------------------------------


def _mlp(hidden, dropout=0.3, frozen=False):
    model = nn.Sequential(
        nn.Linear(6, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 2)
    )
    if frozen:
        model[0].requires_grad_(False)
    return model


def train(build=_mlp, inputs=(4, 6), targets=(4, 2), *, loss="mse", optimizer="sgd", **kw):
    spec = parse_marker((), {"hidden": [5, 7]})
    return Trainer(spec, build, inputs, targets, loss=loss, optimizer=optimizer, **kw).observe()


@pytest.fixture(scope="module")
def adam():
    return train(optimizer="adam", steps=3)


def test_the_document_is_a_check_document_with_a_training_section(adam):
    assert check_problem(adam) is None
    assert adam["kind"] == "training" and list(adam)[:2] == ["schema_version", "kind"]
    variant = adam["variants"]["hidden=7"]
    section = variant["training"]
    assert (section["loss"], section["optimizer"], section["lr"]) == ("mse", "adam", 0.001)
    assert len(section["losses"]) == 3 and section["no_gradient"] == []
    assert list(section["gradients"]) == list(variant["parameters"]) == list(section["updates"])
    assert section["forward"]["output"]["shape"] == [4, 2]
    assert variant["targets"]["target"]["shape"] == [4, 2]
    # sensitivity and layers are not measured for a training golden
    assert "layers" not in variant and "response" not in variant["outputs"]["output"]
    assert len(variant["divergence"]["training"]["loss_ratio"]) == 3


def test_initial_parameters_are_recorded_and_updates_match_the_trained_model():
    built = {}

    def build(hidden):
        model = _mlp(hidden, dropout=0.0)
        built[hidden] = (model, model[0].weight.detach().clone().numpy())
        return model

    doc = train(build, optimizer="sgd", steps=2)
    model, initial = built[7]
    trained = model[0].weight.detach().numpy()
    recorded = doc["variants"]["hidden=7"]["parameters"]["0.weight"]["fingerprint"]
    assert recorded["std"] == pytest.approx(float(initial.astype(np.float64).std()), rel=1e-9)
    update = doc["variants"]["hidden=7"]["training"]["updates"]["0.weight"]
    change = np.linalg.norm(trained.astype(np.float64) - initial.astype(np.float64))
    assert update["norm"] == pytest.approx(change, rel=1e-12) and change > 0
    assert update["relative"] == pytest.approx(change / np.linalg.norm(initial.astype(np.float64)))
    assert not model.training  # back in inference mode


def test_the_same_seed_gives_the_same_training_with_dropout_and_batchnorm():
    def build(hidden):
        return nn.Sequential(
            nn.Linear(6, hidden), nn.BatchNorm1d(hidden), nn.Dropout(0.5), nn.Linear(hidden, 2)
        )

    first, second = train(build, steps=2), train(build, steps=2)
    for name in ("hidden=5", "hidden=7"):
        assert first["variants"][name]["training"] == second["variants"][name]["training"]
        assert first["variants"][name]["outputs"] == second["variants"][name]["outputs"]
    # the initial buffers are recorded (running statistics before training moved them)
    buffers = first["variants"]["hidden=5"]["buffers"]
    assert buffers["1.running_mean"]["fingerprint"]["mean"] == 0.0
    assert buffers["1.running_var"]["fingerprint"]["mean"] == 1.0


def test_frozen_parameters_are_listed_without_gradient():
    doc = train(lambda hidden: _mlp(hidden, frozen=True))
    section = doc["variants"]["hidden=5"]["training"]
    assert section["no_gradient"] == ["0.weight", "0.bias"]
    assert list(section["gradients"]) == ["3.weight", "3.bias"]
    assert section["updates"]["0.weight"] == {"norm": 0.0, "relative": 0.0}


def test_cross_entropy_takes_class_ids_and_lr_overrides_a_factory():
    groups = []

    def factory(params):
        opt = torch.optim.SGD(params, lr=1.0, momentum=0.5)
        groups.append(opt.param_groups)
        return opt

    doc = train(targets=integers((4,), high=2), loss="cross_entropy", optimizer=factory, lr=0.02)
    section = doc["variants"]["hidden=5"]["training"]
    assert section["loss"] == "cross_entropy" and section["lr"] == 0.02
    assert section["optimizer"].endswith("factory")
    assert all(group["lr"] == 0.02 for found in groups for group in found)
    assert section["losses"][0] == pytest.approx(math.log(2), abs=0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(targets=(4, 3)), "variant hidden=5: loss 'mse': the target's shape [4, 3]"),
        (
            dict(targets=(4,), loss="cross_entropy"),
            "takes integer class ids as targets, got torch.float32",
        ),
        (
            dict(targets=integers((4,), high=9), loss="cross_entropy"),
            "target class ids run from",
        ),
        (
            dict(loss=lambda output, target: output.sum(dim=0)),
            "returned a tensor of shape [2]; it must return a scalar",
        ),
        (
            dict(loss=lambda output, target: 1.0),
            "returned float; it must return a scalar torch tensor",
        ),
        (
            dict(loss=lambda output, target: output.detach().sum()),
            "returned a tensor without a gradient",
        ),
        (dict(loss=lambda output, target: 1 / 0), "raised"),
        (
            dict(optimizer=lambda params: "not an optimizer"),
            "returned str; it must return a torch.optim.Optimizer",
        ),
        (
            # built in the test: an optimizer at collection imports torch._dynamo (~2 s)
            lambda: dict(optimizer=torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1)),
            "already bound to parameters; give a factory instead",
        ),
    ],
)
def test_bad_training_setups_raise_model_errors_naming_the_variant(kwargs, message):
    with pytest.raises(ModelError) as info:
        train(**(kwargs() if callable(kwargs) else kwargs))
    assert str(info.value).startswith("variant hidden=5: ")
    assert message in str(info.value)


def test_training_under_inference_mode_is_refused_with_the_fix():
    """Under ``torch.inference_mode()`` nothing can take a gradient: it failed with a raw
    "does not require grad"; ``torch.no_grad()`` is fine (training turns grad on)."""
    with torch.inference_mode(), pytest.raises(ModelError) as info:
        train(lambda hidden: nn.Linear(6, 2), targets=(4, 2))
    assert "under torch.inference_mode()" in str(info.value)
    assert "call it outside that block" in str(info.value)
    with torch.no_grad():
        train(lambda hidden: nn.Linear(6, 2), targets=(4, 2))


def test_models_without_trainable_parameters_are_refused():
    with pytest.raises(ModelError, match="has no parameters, so there is nothing to train"):
        train(lambda hidden: nn.ReLU())
    with pytest.raises(ModelError, match="every parameter has requires_grad=False"):
        train(lambda hidden: nn.Linear(6, 2).requires_grad_(False), targets=(4, 2))
    with pytest.raises(ModelError, match="the numpy adapter has no training step"):
        train(lambda hidden: lambda x: x)


# -- comparison -------------------------------------------------------------------------------


def _sgd_doc(lr=0.01, weight_decay=0.0, reduction="mean", frozen=False, activation=nn.ReLU):
    def build(hidden):
        model = nn.Sequential(nn.Linear(6, hidden), activation(), nn.Linear(hidden, 2))
        if frozen:
            model[2].requires_grad_(False)
        return model

    def loss(output, target):
        error = (output - target) ** 2
        return error.mean() if reduction == "mean" else error.sum()

    def sgd(params):
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)

    return train(build, loss=loss, optimizer=sgd, steps=2)


@pytest.fixture(scope="module")
def golden():
    return _sgd_doc()


def test_the_same_training_matches(golden):
    verdict = compare(golden, _sgd_doc(), Policy())
    assert verdict.ok, verdict.differences


@pytest.mark.parametrize(
    "changed", [dict(lr=0.0101), dict(weight_decay=1e-4)], ids=["lr", "weight_decay"]
)
def test_a_changed_step_is_explained_by_the_training_step(golden, changed):
    verdict = compare(golden, _sgd_doc(**changed), Policy())
    assert not verdict.ok
    assert not any(d.where.startswith("training/forward") for d in verdict.differences)
    assert any(d.where.startswith("training/updates") for d in verdict.differences)
    assert verdict.causes == [
        "the training step changed (optimizer, learning rate, weight decay, momentum, or the "
        "loss and its reduction) while the forward pass at step 0 held"
    ]


def test_a_changed_reduction_is_explained_by_the_loss(golden):
    verdict = compare(golden, _sgd_doc(reduction="sum"), Policy())
    assert any(d.where == "training/step 0" and d.stat == "loss" for d in verdict.differences)
    assert verdict.causes[0].startswith("the loss changed (its definition or its reduction")


def test_a_frozen_layer_names_its_parameters(golden):
    verdict = compare(golden, _sgd_doc(frozen=True), Policy())
    assert verdict.causes[0] == (
        "no gradient now: hidden=5: 2.weight, 2.bias; hidden=7: 2.weight, 2.bias (frozen "
        "with requires_grad=False or trainable=False, or no longer on the loss's path)"
    )
    assert len(verdict.causes) == 1  # the frozen layer explains every other row


def test_a_forward_that_moved_at_step_0_says_so(golden):
    verdict = compare(golden, _sgd_doc(activation=nn.GELU), Policy())
    assert any(d.where.startswith("training/forward") for d in verdict.differences)
    assert any("forward already moved at step 0" in c for c in verdict.causes)
    assert any(c.startswith("environment unchanged") for c in verdict.causes)


def test_a_changed_lr_argument_is_named(golden):
    # lr= of a built-in optimizer is recorded: its change is named as it is
    before = train(optimizer="sgd", lr=0.01, steps=1)
    after = train(optimizer="sgd", lr=0.02, steps=1)
    verdict = compare(before, after, Policy())
    assert "the training configuration changed (lr 0.01 -> 0.02)" in verdict.causes


def test_a_forward_check_is_never_compared_with_a_training_check(golden):
    spec = parse_marker((), {"hidden": [5, 7]})
    forward = Observer(spec, _mlp, (4, 6)).observe()
    for was, now in ((forward, golden), (golden, forward)):
        verdict = compare(was, now, Policy())
        assert not verdict.ok and len(verdict.differences) == 1
        (cause,) = verdict.causes
        assert "they are not compared; give one of them another name=" in cause
    assert (
        "holds a forward check (check()) under this name and this call is check_training()"
        in (compare(forward, golden, Policy()).causes[0])
    )


def test_gradient_tolerance_follows_the_gradient_scale(golden):
    current = copy.deepcopy(golden)
    grads = current["variants"]["hidden=5"]["training"]["gradients"]["0.weight"]
    grads["norm"] *= 1 + 1e-7  # float32 rounding: within tolerance
    assert compare(golden, current, Policy()).ok
    grads["norm"] *= 1 + 1e-4
    verdict = compare(golden, current, Policy())
    (moved,) = verdict.differences
    assert (moved.where, moved.stat) == ("training/gradients/0.weight", "norm")


# -- the document -----------------------------------------------------------------------------


def test_document_validation_of_training_sections(golden):
    assert check_problem(golden) is None
    bad = copy.deepcopy(golden)
    bad["kind"] = "other"
    assert "kind must be 'training'" in check_problem(bad)
    bad = copy.deepcopy(golden)
    bad["variants"]["hidden=5"]["training"]["losses"] = [1.0]
    assert (
        check_problem(bad)
        == "variants['hidden=5'].training.losses must be a list of 2 numbers (one per step)"
    )
    bad = copy.deepcopy(golden)
    bad["variants"]["hidden=5"]["training"]["gradients"]["0.weight"]["norm"] = "big"
    assert "gradients.0.weight.norm must be a number or null" in check_problem(bad)
    bad = copy.deepcopy(golden)
    del bad["kind"]  # a forward check holds no training section
    assert "training is only in a training check" in check_problem(bad)
    bad = copy.deepcopy(golden)
    bad["variants"]["hidden=7"]["divergence"]["training"]["loss_ratio"] = {}
    assert "divergence.training.loss_ratio must be a list" in check_problem(bad)


def test_a_training_golden_does_not_claim_to_be_an_older_golden(golden):
    from pytest_weightshape import sensitivity

    assert sensitivity.not_stated(golden) == sensitivity.TRAINING


def _bn_cnn(bias, optimizer="adam"):
    def build(channels):
        return nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1, bias=bias),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(channels * 16, 2),
        )

    spec = parse_marker((), {"channels": [4, 6]})
    return Trainer(
        spec, build, (2, 3, 4, 4), integers((2,), high=2), loss="cross_entropy", optimizer=optimizer
    ).observe()


def test_a_noise_gradient_is_found_judged_by_the_model_scale_and_its_update_not_compared():
    from pytest_weightshape.degenerate import findings
    from pytest_weightshape.training_compare import gradient_scale, noise_gradients

    doc = _bn_cnn(bias=True)
    variant = doc["variants"]["channels=4"]
    assert noise_gradients(variant) == ["0.bias"]  # a bias before BatchNorm
    assert noise_gradients(_bn_cnn(bias=False)["variants"]["channels=4"]) == []
    found = [f for f in findings(doc) if f.kind == "noise gradient"]
    assert [(f.variant, f.output) for f in found] == [
        ("channels=4", "gradient of 0.bias"),
        ("channels=6", "gradient of 0.bias"),
    ]
    assert "Adam sizes that update by the noise's own scale" in found[0].text
    under_sgd = [f for f in findings(_bn_cnn(True, "sgd")) if f.kind == "noise gradient"]
    assert len(under_sgd) == 2 and "SGD moves that weight by the learning rate" in under_sgd[0].text
    assert "Adam" not in under_sgd[0].text  # the user's optimizer, not another
    factory = lambda params: torch.optim.SGD(params, lr=0.01)  # noqa: E731
    unnamed = [f for f in findings(_bn_cnn(True, factory)) if f.kind == "noise gradient"]
    assert "under plain SGD that update stays noise; an adaptive" in unnamed[0].text
    assert "use_bias=False in Keras" in unnamed[0].text
    # another thread count reorders the noise: Adam's update of it changes a lot
    current = copy.deepcopy(doc)
    for name in ("channels=4", "channels=6"):
        section = current["variants"][name]["training"]
        section["gradients"]["0.bias"]["std"] *= 3
        section["updates"]["0.bias"]["norm"] *= 1.25
    current["variants"]["channels=6"]["divergence"]["training"]["update_norm_ratio"]["0.bias"] *= 2
    assert compare(doc, current, Policy()).ok
    # a gradient that becomes real (the model's own scale) still fails
    section = current["variants"]["channels=4"]["training"]
    section["gradients"]["0.bias"]["std"] = gradient_scale(variant)
    verdict = compare(doc, current, Policy())
    assert [(d.where, d.stat) for d in verdict.differences] == [
        ("training/gradients/0.bias", "std")
    ]


def test_lazy_and_pruned_models_train_under_their_parameter_names():
    from torch.nn.utils import prune

    lazy = train(
        lambda hidden: nn.Sequential(nn.LazyLinear(hidden), nn.ReLU(), nn.Linear(hidden, 2))
    )
    assert list(lazy["variants"]["hidden=5"]["training"]["gradients"]) == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
    ]

    def pruned(hidden):
        model = _mlp(hidden, dropout=0.0)
        prune.l1_unstructured(model[0], "weight", amount=0.5)
        return model

    doc = train(pruned)
    section = doc["variants"]["hidden=5"]["training"]
    assert list(section["gradients"]) == list(doc["variants"]["hidden=5"]["parameters"])
    assert "0.weight" in section["gradients"] and "0.weight_orig" not in section["gradients"]
    # the masked half takes no gradient through the mask
    assert section["gradients"]["0.weight"]["zero_fraction"] >= 0.5
