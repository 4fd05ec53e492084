"""TensorFlow's global seed, for checks that run while TensorFlow is imported.

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
