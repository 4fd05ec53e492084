"""The seed's Keras system, written as the TensorFlow docs write it: a ReLU Dense layer with
10 vs 5 units on one flattened 28x28 image. The golden was recorded on the tensorflow backend."""

import pytest
import tensorflow as tf


# Keras 3 warns about `input_shape=` on a layer; the docs' code is kept verbatim on purpose.
@pytest.mark.filterwarnings("ignore:Do not pass an `input_shape`/`input_dim` argument")
@pytest.mark.shape_variant(units=[10, 5])
def test_dense_units(shape_variant):
    def build(units):
        return tf.keras.Sequential(
            [tf.keras.layers.Dense(units, activation="relu", input_shape=(784,))]
        )

    result = shape_variant.check(build, inputs=(1, 784))
    assert result.output("units=5")["shape"] == [1, 5]
    assert result.divergence("units=5")["parameters"]["changed_shapes"] == [
        "dense/kernel: [784, 10] -> [784, 5]",
        "dense/bias: [10] -> [5]",
    ]


@pytest.mark.shape_variant(units=[10, 20])
def test_lstm_units(shape_variant):
    """The seed's recurrent system in Keras: an LSTM with 10 vs 20 units on (1, 10, 10)."""
    result = shape_variant.check(
        lambda units: tf.keras.Sequential([tf.keras.Input((10, 10)), tf.keras.layers.LSTM(units)]),
        inputs=(1, 10, 10),
    )
    assert result.output("units=20")["shape"] == [1, 20]
