"""The seed's systems, trained: how hidden size and width move losses, gradients and updates.

Run against the committed goldens:   python -m pytest examples
Re-record after an intended change:  python -m pytest examples --snapshot-update
"""

import pytest
from torch import nn

from pytest_weightshape import integers


def sequence_loss(output, target):
    """The LSTM's per-step output, averaged over its features, regressed on the target: one
    loss for every hidden size (the output's last axis is the hidden size)."""
    sequence, _ = output
    return ((sequence.mean(dim=-1) - target) ** 2).mean()


@pytest.mark.shape_variant(hidden_size=[10, 20])
def test_lstm_hidden_size_training(shape_variant):
    result = shape_variant.check_training(
        lambda hidden_size: nn.LSTM(input_size=10, hidden_size=hidden_size, batch_first=True),
        inputs=(1, 10, 10),  # batch 1, 10 time steps, 10 features
        targets=(1, 10),  # one value per time step, drawn after the inputs
        loss=sequence_loss,
        optimizer="adam",
        steps=3,
    )
    training = result.variants["hidden_size=20"]["training"]
    assert len(training["losses"]) == 3 and training["no_gradient"] == []
    assert set(training["gradients"]) == {
        "weight_ih_l0",
        "weight_hh_l0",
        "bias_ih_l0",
        "bias_hh_l0",
    }


@pytest.mark.shape_variant(units=[10, 5])
def test_dense_units_training(shape_variant):
    """The seed's Keras system (a ReLU Dense layer, 10 vs 5 units, on flattened 28x28 images)
    trained with SGD for 3 steps on 5 classes (ids below both widths), on the tensorflow
    backend."""
    import tensorflow as tf

    result = shape_variant.check_training(
        lambda units: tf.keras.Sequential(
            [tf.keras.Input((784,)), tf.keras.layers.Dense(units, activation="relu")]
        ),
        inputs=(8, 784),  # 8 flattened images
        targets=integers((8,), high=5),  # class ids, drawn after the inputs
        loss="cross_entropy",
        optimizer="sgd",
        steps=3,
    )
    training = result.variants["units=5"]["training"]
    assert training["optimizer"] == "sgd" and training["lr"] == 0.01
    assert len(training["losses"]) == 3 and training["no_gradient"] == []
    ratios = result.variants["units=5"]["divergence"]["training"]["update_norm_ratio"]
    assert set(ratios) == {"dense/kernel", "dense/bias"}
