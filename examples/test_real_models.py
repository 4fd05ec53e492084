"""Real-world models, pinned: a HuggingFace BERT built from a config (keyword inputs),
torch.nn.utils.prune with its masks kept, torch-pruning's structured pruning, and a Keras
application. Nothing is downloaded: every model is built from code with seeded weights.

Needs: pip install transformers==5.24.0 torch-pruning==1.6.1 (the README's example line).

Run against the committed goldens:   python -m pytest examples
Re-record after an intended change:  python -m pytest examples --snapshot-update
"""

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from pytest_weightshape import booleans, integers

VOCAB = 100


@pytest.mark.shape_variant(hidden_size=[32, 64], intermediate_size=[64, 128])
def test_bert_hidden_size(shape_variant):
    transformers = pytest.importorskip("transformers")

    def build(hidden_size, intermediate_size):
        config = transformers.BertConfig(
            vocab_size=VOCAB,
            hidden_size=hidden_size,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=intermediate_size,
            max_position_embeddings=32,
        )
        return transformers.BertModel(config)

    result = shape_variant.check(
        build,
        # HuggingFace models are called as model(input_ids=..., attention_mask=...)
        inputs={
            "input_ids": integers((2, 16), high=VOCAB),  # token ids below the vocabulary size
            "attention_mask": booleans((2, 16), p=0.8),
        },
    )
    wide = "hidden_size=64,intermediate_size=128"
    assert result.output(wide, "last_hidden_state")["shape"] == [2, 16, 64]
    assert (
        "embeddings.word_embeddings.weight: [100, 32] -> [100, 64]"
        in (result.divergence(wide)["parameters"]["changed_shapes"])
    )


class SmallConvNet(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.head(x.mean(dim=(2, 3)))


@pytest.mark.shape_variant(
    variants=[
        {"method": "none", "amount": 0.0},
        {"method": "l1", "amount": 0.3},
        {"method": "l1", "amount": 0.6},
        {"method": "random", "amount": 0.6},
    ]
)
def test_prune_kept_masks(shape_variant):
    def build(method, amount):
        model = SmallConvNet()
        if method != "none":
            how = prune.L1Unstructured if method == "l1" else prune.RandomUnstructured
            targets = [(model.conv1, "weight"), (model.conv2, "weight"), (model.head, "weight")]
            prune.global_unstructured(targets, pruning_method=how, amount=amount)
        return model  # no prune.remove: the masks stay, as most code leaves them

    result = shape_variant.check(build, inputs=(2, 3, 16, 16))
    base = result.variants["method=none,amount=0.0"]
    l1 = result.variants["method=l1,amount=0.6"]
    # the effective weights are recorded under the modules' own names, the masks as buffers
    assert "conv1.weight" in l1["parameters"] and "conv1.weight_orig" not in l1["parameters"]
    assert "conv1.weight_mask" in l1["buffers"] and "bn1.running_var" in l1["buffers"]
    assert l1["sparsity"] > base["sparsity"] + 0.5
    assert result.divergence("method=l1,amount=0.6")["parameters"]["sparsity_change"] > 0.5


@pytest.mark.shape_variant(ratio=[0.0, 0.25, 0.5])
def test_torch_pruning_structured(shape_variant):
    tp = pytest.importorskip("torch_pruning")

    def build(ratio):
        model = SmallConvNet()
        if ratio:
            example = torch.randn(1, 3, 16, 16)
            pruner = tp.pruner.MetaPruner(
                model,
                example,
                importance=tp.importance.MagnitudeImportance(p=1),
                pruning_ratio=ratio,
                ignored_layers=[model.head],
            )
            pruner.step()
        return model

    result = shape_variant.check(build, inputs=(2, 3, 16, 16))
    # structured pruning removes channels: it shows as shape changes, and as fewer FLOPs
    half = result.divergence("ratio=0.5")
    assert "conv1.weight: [16, 3, 3, 3] -> [8, 3, 3, 3]" in half["parameters"]["changed_shapes"]
    assert half["parameters"]["flops_ratio"] < 0.5


@pytest.mark.shape_variant(alpha=[0.35, 0.5])
def test_keras_mobilenet_v2_alpha(shape_variant):
    keras = pytest.importorskip("keras")

    def build(alpha):
        return keras.applications.MobileNetV2(
            input_shape=(32, 32, 3),
            alpha=alpha,
            weights=None,  # no download: seeded random weights
            include_top=False,
            pooling="avg",  # a feature vector whose values move with the weights
        )

    result = shape_variant.check(build, inputs=(2, 32, 32, 3))
    assert result.output("alpha=0.5")["shape"] == [2, 1280]
    # Keras keeps BatchNorm's moving statistics as non-trainable weights, recorded as well
    assert "bn_Conv1/moving_variance" in result.variants["alpha=0.5"]["parameters"]
