"""Pruning, parametrizations, buffers, sparsity and FLOPs in the check document (issue 14)."""

import copy

import numpy as np
import pytest

from pytest_weightshape.compare import compare
from pytest_weightshape.document import check_problem
from pytest_weightshape.run import Observer
from pytest_weightshape.spec import parse_marker
from pytest_weightshape.tolerance import Policy

torch = pytest.importorskip("torch")
nn = torch.nn
prune = pytest.importorskip("torch.nn.utils.prune")
parametrize = pytest.importorskip("torch.nn.utils.parametrize")


def observe(build, inputs, flops=False, **marker):
    return Observer(parse_marker((), marker), build, inputs, flops=flops).observe()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv1(x))).mean(dim=(2, 3)))


def pruned(method, amount, remove=False):
    model = Net()
    if amount:
        how = prune.l1_unstructured if method == "l1" else prune.random_unstructured
        how(model.conv1, "weight", amount=amount)
        if remove:
            prune.remove(model.conv1, "weight")
    return model


def test_kept_masks_record_the_effective_tensor_and_the_mask():
    doc = observe(pruned, (2, 3, 8, 8), method=["l1", "l1"], amount=[0.0, 0.5])
    base, half = doc["variants"]["method=l1,amount=0.0"], doc["variants"]["method=l1,amount=0.5"]
    assert set(half["parameters"]) == set(base["parameters"])  # no weight_orig
    assert "conv1.weight_orig" not in half["parameters"]
    weight = half["parameters"]["conv1.weight"]
    assert weight["shape"] == [8, 3, 3, 3]
    assert weight["fingerprint"]["zero_fraction"] == pytest.approx(108 / 216)
    assert base["parameters"]["conv1.weight"]["fingerprint"]["zero_fraction"] == 0.0
    assert half["buffers"]["conv1.weight_mask"]["fingerprint"]["zero_fraction"] == pytest.approx(
        0.5
    )
    assert "conv1.weight_mask" not in base["buffers"]
    assert half["divergence"]["parameters"]["added"] == []  # the mask is a buffer, not a weight
    assert check_problem(doc) is None


def test_switching_l1_to_random_pruning_names_the_tensor_not_numerics():
    golden = observe(pruned, (2, 3, 8, 8), method=["l1", "l1"], amount=[0.0, 0.5])
    # the same variant names, random instead of l1 in the builder
    current = observe(
        lambda method, amount: pruned("random", amount),
        (2, 3, 8, 8),
        method=["l1", "l1"],
        amount=[0.0, 0.5],
    )
    verdict = compare(golden, current, Policy())
    assert not verdict.ok
    text = "\n".join(verdict.causes)
    assert "conv1.weight std" in text  # the effective weights changed
    assert "weights changed (a pruning mask changed; " in text
    assert "buffers changed" in text and "conv1.weight_mask" in text
    assert "forward numerics" not in text


def test_removed_masks_still_show_as_zero_fractions_and_sparsity():
    doc = observe(
        lambda amount: pruned("l1", amount, remove=True), (2, 3, 8, 8), amount=[0.0, 0.3, 0.6]
    )
    variants = doc["variants"]
    zero = [
        v["parameters"]["conv1.weight"]["fingerprint"]["zero_fraction"] for v in variants.values()
    ]
    assert zero == [0.0, pytest.approx(65 / 216), pytest.approx(130 / 216)]
    total = variants["amount=0.0"]["parameter_count"]
    # BatchNorm's bias and the conv/linear biases start at zero
    base_nonzero = variants["amount=0.0"]["nonzero_parameter_count"]
    assert variants["amount=0.6"]["nonzero_parameter_count"] == base_nonzero - 130
    assert variants["amount=0.6"]["sparsity"] == pytest.approx(1 - (base_nonzero - 130) / total)
    divergence = variants["amount=0.6"]["divergence"]["parameters"]
    assert divergence["sparsity_change"] == pytest.approx(130 / total)
    assert divergence["nonzero_parameter_count_ratio"] == pytest.approx(
        (base_nonzero - 130) / base_nonzero
    )
    assert "flops_ratio" not in divergence  # FLOPs are counted only when asked
    # 0.3 and 0.6 differ by sparsity, which a comparison sees
    other = observe(
        lambda amount: pruned("l1", 0.3 if amount else 0.0, remove=True),
        (2, 3, 8, 8),
        amount=[0.0, 0.3, 0.6],
    )
    verdict = compare(doc, other, Policy())
    moved = {(d.variant, d.stat) for d in verdict.differences}
    assert ("amount=0.6", "sparsity") in moved
    assert ("amount=0.6", "nonzero_parameter_count") in moved
    assert ("amount=0.6", "sparsity_change") in moved


def test_parametrized_tensors_are_recorded_under_the_modules_name():
    class Halve(nn.Module):
        def forward(self, w):
            return w * 0.5

    def build(halved):
        model = nn.Sequential(nn.Linear(4, 3))
        if halved:
            parametrize.register_parametrization(model[0], "weight", Halve())
        return model

    doc = observe(build, (2, 4), halved=[False, True])
    plain, halved = doc["variants"]["halved=False"], doc["variants"]["halved=True"]
    assert set(halved["parameters"]) == {"0.weight", "0.bias"}
    assert not any("original" in name for name in halved["parameters"])
    ratio = (
        halved["parameters"]["0.weight"]["fingerprint"]["std"]
        / plain["parameters"]["0.weight"]["fingerprint"]["std"]
    )
    assert ratio == pytest.approx(0.5)
    # portable weights are written through the parametrization
    portable = Observer(
        parse_marker((), {"halved": [False, True]}), build, (2, 4), weights="portable"
    ).observe()
    assert portable["variants"]["halved=True"]["parameters"]["0.weight"]["shape"] == [3, 4]


def test_a_changed_running_variance_is_named():
    def build(width, scale=1.0):
        model = nn.Sequential(nn.Conv2d(3, width, 1), nn.BatchNorm2d(width))
        model[1].running_var.mul_(scale)
        return model

    golden = observe(build, (2, 3, 4, 4), width=[4, 8])
    buffers = golden["variants"]["width=4"]["buffers"]
    assert list(buffers) == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]
    assert buffers["1.num_batches_tracked"]["dtype"] == "int64"
    current = observe(lambda width: build(width, 2.0), (2, 3, 4, 4), width=[4, 8])
    verdict = compare(golden, current, Policy())
    assert not verdict.ok
    cause = next(c for c in verdict.causes if c.startswith("buffers changed"))
    assert "width=4: 1.running_var std" in cause
    assert not any("forward numerics" in c or "initial weights" in c for c in verdict.causes)


def test_non_persistent_buffers_are_left_out():
    class WithScratch(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.linear = nn.Linear(3, width)
            self.register_buffer("kept", torch.ones(2))
            self.register_buffer("scratch", torch.zeros(2), persistent=False)

        def forward(self, x):
            return self.linear(x)

    doc = observe(WithScratch, (2, 3), width=[2, 4])
    assert list(doc["variants"]["width=2"]["buffers"]) == ["kept"]


def strip_new_fields(document):
    """A check document as recorded before issue 14 (no buffers, zero fractions, sparsity,
    FLOPs)."""
    old = copy.deepcopy(document)
    for variant in old["variants"].values():
        for key in ("buffers", "sparsity", "nonzero_parameter_count", "flops"):
            variant.pop(key, None)
        for info in variant["parameters"].values():
            info["fingerprint"].pop("zero_fraction", None)
        for key in ("sparsity_change", "nonzero_parameter_count_ratio", "flops_ratio"):
            variant.get("divergence", {}).get("parameters", {}).pop(key, None)
    return old


def test_an_older_golden_is_compared_on_what_it_holds():
    doc = observe(lambda amount: pruned("l1", amount), (2, 3, 8, 8), flops=True, amount=[0.0, 0.5])
    old = strip_new_fields(doc)
    assert check_problem(old) is None
    verdict = compare(old, doc, Policy())
    assert verdict.ok
    assert not any(d.stat in ("sparsity", "flops") or d.where == "buffers" for d in verdict.rows)
    # when it fails, the message says what the old golden did not hold
    moved = observe(
        lambda amount: pruned("random", amount), (2, 3, 8, 8), flops=True, amount=[0.0, 0.5]
    )
    verdict = compare(old, moved, Policy())
    assert not verdict.ok
    note = verdict.causes[-1]
    assert "the golden holds no buffers, sparsity, FLOPs, zero fractions" in note
    assert "`pytest --snapshot-update` adds them" in note


def test_flops_are_counted_per_variant_when_asked():
    doc = observe(lambda width: nn.Linear(16, width), (4, 16), flops=True, width=[8, 4])
    assert doc["variants"]["width=8"]["flops"] == 2 * 4 * 16 * 8
    assert doc["variants"]["width=4"]["flops"] == 2 * 4 * 16 * 4
    assert doc["variants"]["width=4"]["divergence"]["parameters"]["flops_ratio"] == 0.5
    plain = observe(lambda width: nn.Linear(16, width), (4, 16), width=[8, 4])
    assert "flops" not in plain["variants"]["width=8"]
    # a golden with FLOPs is compared with a run that counts them, exactly
    other = observe(lambda width: nn.Linear(16, width + 1), (4, 16), flops=True, width=[8, 4])
    moved = {(d.variant, d.stat) for d in compare(doc, other, Policy()).differences}
    assert ("width=8", "flops") in moved and ("width=4", "flops_ratio") in moved
    # and with a run that does not count them, on everything else
    assert compare(doc, plain, Policy()).ok


def test_numpy_and_keras_free_models_record_no_flops():
    def build(width):
        weight = np.random.standard_normal((3, width)).astype(np.float32)
        return lambda x: x @ weight

    doc = observe(build, (2, 3), flops=True, width=[2, 4])
    assert "flops" not in doc["variants"]["width=2"]
    assert "buffers" not in doc["variants"]["width=2"]
    assert doc["variants"]["width=2"]["sparsity"] is None  # no visible parameters


def test_a_variant_equal_to_its_base_is_listed_as_unchanged():
    # pruning that prunes nothing (amount 0 under both methods)
    observer = Observer(
        parse_marker((), {"method": ["l1", "random"], "amount": [0.0, 0.0]}),
        lambda method, amount: pruned(method, amount),
        (2, 3, 8, 8),
    )
    observer.observe()
    assert observer.unchanged == ["method=random,amount=0.0"]
    # a variant that only changes the forward (same weights, other outputs) is not
    acts = Observer(
        parse_marker((), {"act": ["relu", "tanh"]}),
        lambda act: nn.Sequential(nn.Linear(4, 4), nn.ReLU() if act == "relu" else nn.Tanh()),
        (3, 4),
    )
    acts.observe()
    assert acts.unchanged == []


def test_torch_pruning_structured_pruning_shows_as_shape_changes():
    tp = pytest.importorskip("torch_pruning")

    def build(ratio):
        model = Net()
        if ratio:
            pruner = tp.pruner.MetaPruner(
                model,
                torch.randn(1, 3, 8, 8),
                importance=tp.importance.MagnitudeImportance(p=1),
                pruning_ratio=ratio,
                ignored_layers=[model.head],
            )
            pruner.step()
        return model

    doc = observe(build, (2, 3, 8, 8), flops=True, ratio=[0.0, 0.5])
    divergence = doc["variants"]["ratio=0.5"]["divergence"]["parameters"]
    assert "conv1.weight: [8, 3, 3, 3] -> [4, 3, 3, 3]" in divergence["changed_shapes"]
    assert "head.weight: [4, 8] -> [4, 4]" in divergence["changed_shapes"]
    assert divergence["parameter_count_ratio"] < 0.6
    assert divergence["flops_ratio"] < 0.6
    assert doc["variants"]["ratio=0.5"]["buffers"]["bn.running_var"]["shape"] == [4]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sparsity", "half", "sparsity must be a number or null"),
        ("nonzero_parameter_count", -1, "nonzero_parameter_count must be a non-negative integer"),
        ("flops", 1.5, "flops must be a non-negative integer"),
        ("buffers", [], "buffers must be an object"),
    ],
)
def test_bad_new_fields_are_refused(field, value, message):
    doc = observe(lambda width: nn.Linear(4, width), (2, 4), width=[2, 3])
    doc["variants"]["width=2"][field] = value
    assert message in check_problem(doc)


def test_show_lists_sparsity_flops_and_buffers_or_says_they_were_not_recorded():
    from pytest_weightshape.report.cli import pruning_lines

    doc = observe(lambda amount: pruned("l1", amount), (2, 3, 8, 8), flops=True, amount=[0.0, 0.5])
    text = "\n".join(pruning_lines(doc["variants"]))
    assert "sparsity: amount=0.0 " in text and "FLOPs: amount=0.0 " in text
    assert "amount=0.5  conv1.weight_mask" in text
    old = "\n".join(pruning_lines(strip_new_fields(doc)["variants"]))
    assert "sparsity: not recorded (pytest --snapshot-update adds it, keeping the" in old
    assert "buffers: not recorded" in old and "FLOPs: not recorded" in old
