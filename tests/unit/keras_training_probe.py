"""Trains small Keras models through ``KerasAdapter.train`` on the backend KERAS_BACKEND names
and prints what ``test_training_keras`` asserts, as one JSON object. Run as a script, one
subprocess per backend (KERAS_BACKEND is read when keras is imported)."""

import json
import sys
import warnings

import keras
import numpy as np

from pytest_weightshape.errors import ModelError
from pytest_weightshape.frameworks import adapter_for, seeded
from pytest_weightshape.training import Loss, Optimizer

MSE = Loss("mse", "mse")
CROSS_ENTROPY = Loss("cross_entropy", "cross_entropy")
RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 6)).astype(np.float32)


def sgd(lr=0.1):
    return Optimizer("sgd", "sgd", lr)


def train(model, target, loss=MSE, optimizer=None, steps=1, seed=0, inputs=None, keywords=None):
    adapter = adapter_for(model)
    given = (X,) if inputs is None and keywords is None else (inputs or ())
    converted = tuple(adapter.convert_input(x, model) for x in given)
    words = {k: adapter.convert_input(v, model) for k, v in (keywords or {}).items()}
    targets = target if isinstance(target, tuple) else (target,)
    targets = tuple(adapter.convert_input(t, model) for t in targets)
    optimizer = optimizer or sgd()
    return adapter.train(model, converted, words or None, targets, loss, optimizer, steps, seed)


def weights(model):
    return {a.name: a.value.copy() for a in adapter_for(model).parameters(model)}


def same_weights(source, target):
    """``target`` gets ``source``'s weights (Keras's get_weights warns under NumPy 2)."""
    adapter = adapter_for(source)
    adapter.set_parameters(target, {a.name: a.value for a in adapter.parameters(source)})


def host(tensor):
    if hasattr(tensor, "detach"):
        return tensor.detach().cpu().numpy()
    return np.asarray(tensor.numpy() if hasattr(tensor, "numpy") else tensor)


def built(make, seed=0):
    with seeded(seed):
        return make()


def sequential(*layers):
    return keras.Sequential([keras.Input((6,)), *layers])


def listed(trained):
    return {
        "losses": trained.losses,
        "gradients": {k: v.ravel().tolist() for k, v in (trained.gradients or {}).items()},
        "no_gradient": trained.no_gradient,
        "missing": trained.gradients_missing,
    }


def error_of(call):
    try:
        call()
    except ModelError as exc:
        return f"ModelError: {exc}"
    except Exception as exc:  # reported as such: the test wants a ModelError
        return f"{type(exc).__name__}: {exc}"
    return "no error"


def dense_sgd():
    """A bare Dense layer (built by its first call) of 10 and 5 units, mse, five SGD steps."""
    out = {}
    for units in (10, 5):
        target = RNG.standard_normal((8, units)).astype(np.float32)
        trained = train(built(lambda u=units: keras.layers.Dense(u)), target, steps=5)
        out[units] = listed(trained)
    return out


def hand_gradient():
    """Dense + mse, one SGD step: loss, gradients and update against float64 NumPy."""
    model = built(lambda: sequential(keras.layers.Dense(4)))
    before = weights(model)
    target = RNG.standard_normal((8, 4)).astype(np.float32)
    trained = train(model, target, optimizer=sgd(0.1))
    after = weights(model)
    kernel, bias = before["dense/kernel"].astype(np.float64), before["dense/bias"]
    residual = X.astype(np.float64) @ kernel + bias - target
    scale = 2.0 / residual.size
    expected = {"dense/kernel": X.T.astype(np.float64) @ residual * scale}
    expected["dense/bias"] = residual.sum(axis=0) * scale
    relative = {
        k: float(np.abs(trained.gradients[k] - v).max() / np.abs(v).max())
        for k, v in expected.items()
    }
    applied = {
        k: float(np.abs(after[k] - (before[k] - np.float32(0.1) * trained.gradients[k])).max())
        for k in expected
    }
    loss = float(np.mean(residual**2))
    return {
        "gradient_relative_error": relative,
        "loss_relative_error": abs(trained.losses[0] - loss) / loss,
        "sgd_update_error": applied,
    }


def dropout_batchnorm():
    """Dropout + BatchNorm: two runs from the same weights are bit-identical; the seed moves
    the masks; the training forward differs from inference; the model is back in inference
    use after training with its seed generators' states put back."""

    def make():
        return sequential(
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(3),
        )

    target = RNG.standard_normal((8, 3)).astype(np.float32)
    first, second, third = built(make), built(make), built(make)
    same_weights(first, second)
    same_weights(first, third)
    adapter = adapter_for(first)
    inference = adapter.outputs(adapter.forward(first, (adapter.convert_input(X, first),)), first)
    states = [v.value for v in first.non_trainable_variables if "seed_generator" in v.path]
    states_before = [host(s).tolist() for s in states]
    a = train(first, target, steps=3)
    b = train(second, target, steps=3)
    other_seed = train(third, target, steps=3, seed=1)
    states = [v.value for v in first.non_trainable_variables if "seed_generator" in v.path]
    states_after = [host(s).tolist() for s in states]
    after_a, after_b = weights(first), weights(second)
    x = adapter.convert_input(X, first)
    once = adapter.outputs(adapter.forward(first, (x,)), first)[0].value
    twice = adapter.outputs(adapter.forward(first, (x,)), first)[0].value
    before = weights(built(make))
    return {
        "losses": a.losses,
        "identical_losses": a.losses == b.losses,
        "identical_gradients": sorted(a.gradients) == sorted(b.gradients)
        and all(np.array_equal(a.gradients[k], b.gradients[k]) for k in a.gradients),
        "identical_weights": all(np.array_equal(after_a[k], after_b[k]) for k in after_a),
        "identical_forward": np.array_equal(a.forward[0].value, b.forward[0].value),
        "other_seed_differs": other_seed.losses[0] != a.losses[0],
        "training_forward_differs": not np.array_equal(a.forward[0].value, inference[0].value),
        "moving_mean_moved": bool(
            np.any(
                after_a["batch_normalization/moving_mean"]
                != before["batch_normalization/moving_mean"]
            )
        ),
        "inference_after_is_deterministic": np.array_equal(once, twice),
        "seed_states_restored": states_before == states_after and len(states_before) == 1,
        "no_gradient": a.no_gradient,
        "gradients": list(a.gradients),
    }


def dropout_masks_across_variants():
    """Dropout on the input, before the layer whose width varies: variants of 10 and 5 units
    drop the same input elements at every step."""
    patterns = {}
    for units in (10, 5):

        def make(u=units):
            inp = keras.Input((6,))
            dropped = keras.layers.Dropout(0.5)(inp)
            return keras.Model(inp, [dropped, keras.layers.Dense(u)(dropped)])

        def picked(out, t):
            return keras.ops.mean(keras.ops.square(out[1]))

        trained = train(built(make), X, loss=Loss("custom", "custom:picked", picked))
        patterns[units] = (trained.forward[0].value == 0).tolist()
    return {"same_mask": patterns[10] == patterns[5], "dropped": int(np.sum(patterns[10]))}


def frozen_and_off_path():
    """A frozen layer and a head off the loss's path take no gradient and do not move."""
    body, head = keras.layers.Dense(4, name="body"), keras.layers.Dense(3, name="head")
    model = built(lambda: sequential(body, head))
    body.trainable = False
    before = weights(model)
    frozen = train(model, RNG.standard_normal((8, 3)).astype(np.float32), steps=2)
    after = weights(model)

    def two_heads():
        inp = keras.Input((6,))
        used = keras.layers.Dense(4, name="used")(inp)
        unused = keras.layers.Dense(2, name="unused")(inp)
        return keras.Model(inp, [used, unused])

    results = {}
    for kind in ("sgd", "adam"):
        heads = built(two_heads)
        start = weights(heads)
        off = train(
            heads,
            RNG.standard_normal((8, 4)).astype(np.float32),
            optimizer=Optimizer(kind, kind, 0.1),
            steps=2,
        )
        end = weights(heads)
        results[kind] = {
            "no_gradient": off.no_gradient,
            "gradients": list(off.gradients),
            "unused_kept": all(np.array_equal(start[k], end[k]) for k in start if "unused" in k),
            "used_moved": all(
                not np.array_equal(start[k], end[k]) for k in start if k.startswith("used/")
            ),
        }
    return {
        "no_gradient": frozen.no_gradient,
        "gradients": list(frozen.gradients),
        "frozen_kept": all(np.array_equal(before[k], after[k]) for k in before if "body" in k),
        "head_moved": all(not np.array_equal(before[k], after[k]) for k in before if "head" in k),
        "two_heads": results,
    }


def optimizer_not_shared():
    """A Keras optimizer instance is copied for every training; a factory is called for each."""

    def make():
        return sequential(keras.layers.Dense(3))

    target = RNG.standard_normal((8, 3)).astype(np.float32)
    first, second = built(make), built(make)
    same_weights(first, second)
    given = keras.optimizers.Adam(learning_rate=0.01)
    spec = Optimizer("custom", "custom:Adam", None, given)
    a = train(first, target, optimizer=spec, steps=3)
    b = train(second, target, optimizer=spec, steps=3)
    calls = []

    def factory():
        calls.append(1)
        return keras.optimizers.SGD(learning_rate=0.05)

    made = Optimizer("custom", "custom:factory", None, factory)
    third, fourth = built(make), built(make)
    same_weights(third, fourth)
    c = train(third, target, optimizer=made, steps=2)
    d = train(fourth, target, optimizer=made, steps=2)
    shared = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
    fifth, sixth = built(make), built(make)
    same_weights(fifth, sixth)
    once = Optimizer("custom", "custom:same", None, lambda: shared)
    e = train(fifth, target, optimizer=once, steps=2)
    f = train(sixth, target, optimizer=once, steps=2)
    seventh, eighth = built(make), built(make)
    same_weights(seventh, eighth)
    override = Optimizer("custom", "custom:SGD", 0.5, keras.optimizers.SGD(learning_rate=0.05))
    g = train(seventh, target, optimizer=override, steps=2)
    h = train(eighth, target, optimizer=sgd(0.5), steps=2)
    return {
        "lr_overrides_custom": g.losses == h.losses,
        "instance_losses_equal": a.losses == b.losses,
        "instance_untouched": (not given.built) and int(given.iterations) == 0,
        "factory_calls": len(calls),
        "factory_losses_equal": c.losses == d.losses,
        "shared_factory_losses_equal": e.losses == f.losses,
    }


def model_losses_and_cross_entropy():
    """The model's regularization joins the loss (as in ``fit``); cross_entropy on logits."""
    model = built(
        lambda: sequential(keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(0.1)))
    )
    start = weights(model)
    target = RNG.standard_normal((8, 3)).astype(np.float32)
    trained = train(model, target)
    kernel, bias = start["dense/kernel"].astype(np.float64), start["dense/bias"]
    residual = X.astype(np.float64) @ kernel + bias - target
    expected = np.mean(residual**2) + 0.1 * np.sum(kernel**2)
    logits_model = built(lambda: sequential(keras.layers.Dense(4)))
    w = weights(logits_model)
    classes = np.array([0, 1, 2, 3, 0, 1, 2, 3], dtype=np.int64)
    ce = train(logits_model, classes, loss=CROSS_ENTROPY)
    logits = X.astype(np.float64) @ w["dense/kernel"] + w["dense/bias"]
    top = logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    hand = float(np.mean(log_z - logits[np.arange(8), classes]))
    return {
        "regularized_loss_relative_error": abs(trained.losses[0] - expected) / expected,
        "cross_entropy_relative_error": abs(ce.losses[0] - hand) / hand,
        "cross_entropy_gradients": list(ce.gradients),
    }


def keywords():
    """A functional model with a named input, trained through keyword inputs."""
    model = built(_named_model)
    target = RNG.standard_normal((8, 3)).astype(np.float32)
    trained = train(model, target, keywords={"features": X}, steps=2)
    return {"losses": trained.losses, "gradients": list(trained.gradients)}


def _named_model():
    inp = keras.Input((6,), name="features")
    return keras.Model({"features": inp}, keras.layers.Dense(3)(inp))


def errors():
    def small():
        return built(lambda: sequential(keras.layers.Dense(3)))

    def optimizer_error(given, lr=None, name="custom:object"):
        """What training a small model with the custom optimizer ``given`` raised."""
        optimizer = Optimizer("custom", name, lr, given)
        return error_of(lambda: train(small(), np.zeros((8, 3), np.float32), optimizer=optimizer))

    frozen = small()
    frozen.trainable = False
    not_scalar = Loss("custom", "custom:square", lambda out, t: keras.ops.square(out - t))
    number = Loss("custom", "custom:number", lambda out, t: 1.0)
    raising = Loss("custom", "custom:raising", lambda out, t: out.missing_attribute)
    f32 = np.zeros((8,), np.float32)

    def two_outputs():
        inp = keras.Input((6,))
        return keras.Model(inp, [keras.layers.Dense(4)(inp), keras.layers.Dense(2)(inp)])

    target_only = Loss("custom", "custom:target_only", lambda out, t: keras.ops.sum(t))
    one_element = Loss(
        "custom",
        "custom:one_element",
        lambda out, t: keras.ops.reshape(keras.ops.mean(keras.ops.square(out - t)), (1,)),
    )
    integer_output = sequential(keras.layers.Dense(3), keras.layers.Lambda(lambda x: x > 0))
    return {
        "one_element": error_of(lambda: train(small(), np.zeros((8, 3), np.float32), one_element)),
        "target_only": error_of(lambda: train(small(), np.zeros((8, 3), np.float32), target_only)),
        "bool_output": error_of(lambda: train(integer_output, np.zeros((8, 3), np.float32))),
        "first_of_several": error_of(
            lambda: train(built(two_outputs), np.zeros((8, 2), np.float32))
        ),
        "mse_shape": error_of(lambda: train(small(), np.zeros((8, 2), np.float32))),
        "cross_entropy_float": error_of(lambda: train(small(), f32, loss=CROSS_ENTROPY)),
        "cross_entropy_shape": error_of(
            lambda: train(small(), np.zeros((8, 3), np.int64), loss=CROSS_ENTROPY)
        ),
        "cross_entropy_range": error_of(
            lambda: train(small(), np.full((8,), 7, np.int64), loss=CROSS_ENTROPY)
        ),
        "no_trainable": error_of(lambda: train(frozen, np.zeros((8, 3), np.float32))),
        "not_scalar": error_of(lambda: train(small(), np.zeros((8, 3), np.float32), not_scalar)),
        "number": error_of(lambda: train(small(), np.zeros((8, 3), np.float32), number)),
        "raising": error_of(lambda: train(small(), np.zeros((8, 3), np.float32), raising)),
        "not_optimizer": optimizer_error(object()),
        "factory_not_optimizer": optimizer_error(lambda: "sgd", name="custom:text"),
        "schedule_with_lr": optimizer_error(
            keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)), 0.1
        ),
        "callable_rate_with_lr": optimizer_error(
            lambda: keras.optimizers.SGD(learning_rate=lambda: 0.01), 0.05
        ),
    }


def portable():
    """The same model and weights on every backend: losses, gradients and weights after three
    SGD and three Adam steps (compared across backends by the test)."""
    out = {}
    for kind, lr in (("sgd", 0.1), ("adam", 0.01)):
        model = sequential(
            keras.layers.Dense(8, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(3),
        )
        rng = np.random.default_rng(1)
        for variable in model.trainable_variables:
            shape = tuple(variable.shape)
            variable.assign((0.3 * rng.standard_normal(shape)).astype(np.float32))
        start = weights(model)
        target = rng.standard_normal((8, 3)).astype(np.float32)
        trained = train(model, target, optimizer=Optimizer(kind, kind, lr), steps=3)
        end = weights(model)
        out[kind] = {
            **listed(trained),
            "updates": {k: (end[k] - start[k]).ravel().tolist() for k in start},
        }
    return out


class _NoTrainingArgument(keras.Model):
    """A subclassed model whose ``call`` takes no ``training`` (with a Dropout, which Keras
    then runs in inference mode, in ``fit`` too)."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(16)
        self.dropout = keras.layers.Dropout(0.5, seed=3)

    def call(self, x):
        return self.dropout(self.dense(x))


def subclassed_without_training():
    """Trained like ``fit`` trains it: no ``training=`` reaches ``call`` (jax's
    ``stateless_call`` passed it and raised); ``dropped`` is step 0's fraction of zero
    outputs."""

    def make():
        model = _NoTrainingArgument()
        model(X)
        return model

    model = built(make)
    trained = train(model, np.zeros((8, 16), np.float32), steps=2)
    forward = host(trained.forward[0])
    return {**listed(trained), "dropped": float(np.mean(forward == 0))}


SECTIONS = {
    "subclassed_without_training": subclassed_without_training,
    "dense_sgd": dense_sgd,
    "hand_gradient": hand_gradient,
    "dropout_batchnorm": dropout_batchnorm,
    "dropout_masks_across_variants": dropout_masks_across_variants,
    "frozen_and_off_path": frozen_and_off_path,
    "optimizer_not_shared": optimizer_not_shared,
    "model_losses_and_cross_entropy": model_losses_and_cross_entropy,
    "keywords": keywords,
    "errors": errors,
    "portable": portable,
}


def no_autodiff():
    """A backend without gradients (Keras's numpy backend) cannot train."""
    model = built(lambda: sequential(keras.layers.Dense(3)))
    return {"error": error_of(lambda: train(model, np.zeros((8, 3), np.float32)))}


def main():
    warnings.simplefilter("error")  # as the project's pytest configuration runs checks
    results = {"backend": keras.backend.backend()}
    sections = {"no_autodiff": no_autodiff} if "no-autodiff" in sys.argv else SECTIONS
    for name, section in sections.items():
        try:
            results[name] = section()
        except Exception as exc:  # one broken section must not hide the others' results
            results[name] = {"failed": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write("RESULTS " + json.dumps(results, default=bool) + "\n")


if __name__ == "__main__":
    main()
