"""TensorFlow's global state for checks that run while TensorFlow is imported: its seed and op
determinism. (Keras models themselves are handled by ``keras_adapter``.)

``tf.random.set_seed`` sets the eager context's global seed and its op-seed generator; both are
saved and put back exactly, so random ops after a check do not repeat earlier draws.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import tensorflow as tf
from tensorflow.python.eager import context


def save() -> Callable[[], None]:
    ctx = context.context()
    seed = getattr(ctx, "_seed", None)
    had_rng = hasattr(ctx, "_rng")
    rng = getattr(ctx, "_rng", None)
    state = rng.getstate() if rng is not None else None

    def restore() -> None:
        ctx._seed = seed
        if not had_rng:
            if hasattr(ctx, "_rng"):
                del ctx._rng
        elif state is None:
            ctx._rng = None
        else:
            restored = random.Random()
            restored.setstate(state)
            ctx._rng = restored

    return restore


def seed(value: int) -> None:
    tf.random.set_seed(value)


def deterministic() -> Callable[[], None]:
    """Turn on op determinism; return a function that puts the previous setting back."""
    from tensorflow.python.framework import config as tf_config

    before = bool(tf_config.is_op_determinism_enabled())
    tf_config.enable_op_determinism()

    def restore() -> None:
        if not before:
            tf_config.disable_op_determinism()

    return restore
