"""The seed's PyTorch systems, pinned: how kernel size, hidden size and init move the output.

Run against the committed goldens:   python -m pytest examples
Re-record after an intended change:  python -m pytest examples --snapshot-update
"""

import pytest
from torch import nn


@pytest.mark.shape_variant(kernel_size=[3, 5], padding=[1, 2])
def test_conv2d_kernel_size(shape_variant):
    result = shape_variant.check(
        lambda kernel_size, padding: nn.Conv2d(
            in_channels=1, out_channels=32, kernel_size=kernel_size, padding=padding
        ),
        inputs=(1, 1, 28, 28),  # one 28x28 single-channel image
    )
    # "same" padding keeps the feature map 28x28: the larger kernel changes values, not shape
    assert result.output("kernel_size=5,padding=2")["shape"] == [1, 32, 28, 28]
    assert result.divergence("kernel_size=5,padding=2")["parameters"]["changed_shapes"] == [
        "weight: [32, 1, 3, 3] -> [32, 1, 5, 5]"
    ]


@pytest.mark.shape_variant(hidden_size=[10, 20])
def test_lstm_hidden_size(shape_variant):
    result = shape_variant.check(
        lambda hidden_size: nn.LSTM(input_size=10, hidden_size=hidden_size, batch_first=True),
        inputs=(1, 10, 10),  # batch 1, 10 time steps, 10 features
    )
    assert result.output("hidden_size=20")["shape"] == [1, 10, 20]
    assert set(result.variants["hidden_size=20"]["outputs"]) == {"output", "h_n", "c_n"}


@pytest.mark.shape_variant(init=[nn.init.xavier_uniform_, nn.init.kaiming_uniform_])
def test_linear_relu_init(shape_variant):
    def build(init):
        layer = nn.Linear(784, 128)
        init(layer.weight)
        return nn.Sequential(layer, nn.ReLU())

    result = shape_variant.check(build, inputs=(64, 784))  # a batch of 64 flattened images
    he = result.divergence("init=kaiming_uniform_")
    # Same shapes, same seed: in torch the two initialisers draw the same uniform numbers at
    # different bounds, so they differ only in scale. CKA and cosine cannot see that (both ~1);
    # the std ratio carries it: He/Xavier bound = sqrt((fan_in + fan_out) / fan_in).
    assert he["parameters"]["changed_shapes"] == []
    assert he["outputs"]["output"]["cka"] > 0.9999
    assert he["outputs"]["output"]["std_ratio"] == pytest.approx(
        ((784 + 128) / 784) ** 0.5, rel=1e-3
    )
