"""Issue 14 in whole sessions: keyword inputs, pruning with its masks kept, buffers, FLOPs
behind --weightshape-flops (and its ini twin), and the warning for a variant that changes
nothing. Each inner session is a subprocess (torch is imported there); a session checks the
recording and changed copies of it (modules of other names, the recorded goldens copied)
together, and each inner test's outcome and message is read apart (``run_each``)."""

import importlib.util
import json
import shutil
import textwrap

import pytest

from .helpers import assert_clean_failure, golden_of, run, run_each

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed"
)

PRUNED = textwrap.dedent(
    """
    import os

    import pytest
    import torch
    from torch import nn
    from torch.nn.utils import prune

    from pytest_weightshape import booleans, integers

    METHOD = os.environ.get("METHOD", "l1")
    VAR = float(os.environ.get("VAR", "1"))


    def build(amount):
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8))
        model[1].running_var.fill_(VAR)
        if amount:
            how = prune.l1_unstructured if METHOD == "l1" else prune.random_unstructured
            how(model[0], "weight", amount=amount)
        return model


    @pytest.mark.shape_variant(amount=[0.0, 0.5])
    def test_pruned(shape_variant):
        shape_variant.check(build, inputs=(2, 3, 8, 8))


    class Tokens(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.embed = nn.Embedding(20, width)

        def forward(self, input_ids, attention_mask):
            return (self.embed(input_ids) * attention_mask.unsqueeze(-1)).sum(dim=1)


    @pytest.mark.shape_variant(width=[4, 8])
    def test_tokens(shape_variant):
        p = float(os.environ.get("MASK_P", "0.8"))
        shape_variant.check(
            Tokens,
            inputs={
                "input_ids": integers((2, 6), high=20),
                "attention_mask": booleans((2, 6), p=p),
            },
        )
    """
)


def checks(pytester, test):
    data = json.loads(golden_of(pytester, "test_models", test).read_text())
    return data["checks"]["default"]["variants"]


def copy_golden(pytester, test, *modules):
    """test_models's golden of ``test``, copied for each of ``modules`` (the same test in a
    module of another name, checked in the same session)."""
    for module in modules:
        golden_of(pytester, module, test).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(golden_of(pytester, "test_models", test), golden_of(pytester, module, test))


def test_pruning_masks_buffers_and_keyword_inputs_life_cycle(pytester):
    pytester.makepyfile(test_models=PRUNED)
    run(pytester, "--snapshot-update").assert_outcomes(passed=2)
    pruned = checks(pytester, "test_pruned")["amount=0.5"]
    assert "0.weight_mask" in pruned["buffers"] and "0.weight_orig" not in pruned["parameters"]
    assert "flops" not in pruned  # off unless asked

    # one session checks the recording and three changed copies against its goldens
    pytester.makepyfile(
        test_random=PRUNED.replace('os.environ.get("METHOD", "l1")', '"random"'),
        test_var=PRUNED.replace('float(os.environ.get("VAR", "1"))', "2.0"),
        test_mask=PRUNED.replace('os.environ.get("MASK_P", "0.8")', '"0.3"'),
    )
    copy_golden(pytester, "test_pruned", "test_random", "test_var")
    copy_golden(pytester, "test_tokens", "test_mask")
    chosen = ("test_models.py", "test_random.py::test_pruned", "test_var.py::test_pruned")
    result, outcomes = run_each(pytester, *chosen, "test_mask.py::test_tokens")
    result.assert_outcomes(passed=2, failed=3)
    assert_clean_failure(result)
    assert outcomes["test_models::test_pruned"][0] == "passed"
    assert outcomes["test_models::test_tokens"][0] == "passed"

    # l1 -> random pruning: a weights change naming the tensor and its mask
    status, out = outcomes["test_random::test_pruned"]
    assert status == "failed"
    assert "0.weight std" in out and "0.weight_mask" in out
    assert "forward numerics changed" not in out

    # a changed running variance is named
    status, out = outcomes["test_var::test_pruned"]
    assert status == "failed"
    assert "buffers changed" in out and "1.running_var std" in out

    # another mask: the failure names the keyword input
    status, out = outcomes["test_mask::test_tokens"]
    assert status == "failed"
    assert "inputs changed: attention_mask" in out


def test_flops_flag_and_ini_record_flops(pytester):
    pytester.makepyfile(test_models=PRUNED)
    run(pytester, "--snapshot-update", "--weightshape-flops", "-k", "pruned")
    variants = checks(pytester, "test_pruned")
    assert variants["amount=0.0"]["flops"] == variants["amount=0.5"]["flops"] > 0
    assert variants["amount=0.5"]["divergence"]["parameters"]["flops_ratio"] == 1.0
    # a run without the flag passes against it (FLOPs are compared only when counted)
    run(pytester, "-k", "pruned").assert_outcomes(passed=1, deselected=1)
    pytester.makeini("[pytest]\nweightshape_flops = true\n")
    result = run(pytester, "-k", "pruned", "-v")
    result.assert_outcomes(passed=1, deselected=1)
    assert "flops" in result.stdout.str()  # the header names the switch


def test_unknown_keyword_and_unchanged_variant(pytester):
    pytester.makepyfile(
        test_models=PRUNED
        + textwrap.dedent(
            """

            @pytest.mark.shape_variant(width=[4, 8])
            def test_unknown(shape_variant):
                shape_variant.check(
                    Tokens, inputs={"input_ids": integers((2, 6), high=20), "mask": (2, 6)}
                )


            @pytest.mark.shape_variant(method=["l1", "random"])
            def test_nothing_pruned(shape_variant):
                shape_variant.check(lambda method: build(0.0), inputs=(2, 3, 8, 8))
            """
        )
    )
    result = run(pytester, "--snapshot-update", "-k", "unknown or nothing", "-W", "default")
    result.assert_outcomes(passed=1, failed=1, deselected=2)
    out = assert_clean_failure(result)
    assert "variant width=4: the model takes no keyword argument 'mask'" in out
    assert "Tokens.forward(input_ids, attention_mask)" in out
    assert "variant method=random has the base's weights, buffers and outputs" in out


KERAS = textwrap.dedent(
    """
    import os

    import keras
    import pytest

    from pytest_weightshape import booleans, integers

    VAR = float(os.environ.get("VAR", "1"))
    KEY = os.environ.get("KEY", "attention_mask")


    def build(units):
        ids = keras.Input((6,), name="input_ids", dtype="int64")
        mask = keras.Input((6,), name="attention_mask", dtype="bool")
        x = keras.layers.Embedding(20, units)(ids)
        x = x * keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
        bn = keras.layers.BatchNormalization(name="bn")
        out = bn(keras.ops.sum(x, axis=1))
        bn.moving_variance.assign(bn.moving_variance * VAR)
        return keras.Model([ids, mask], out)


    @pytest.mark.shape_variant(units=[4, 8])
    def test_keras_tokens(shape_variant):
        shape_variant.check(
            build, inputs={"input_ids": integers((2, 6), high=20), KEY: booleans((2, 6))}
        )


    class Scaled(keras.Model):
        def __init__(self, units):
            super().__init__()
            self.dense = keras.layers.Dense(units)

        def call(self, x, scale):
            return self.dense(x) * scale


    @pytest.mark.shape_variant(units=[4, 8])
    def test_keras_subclassed(shape_variant):
        result = shape_variant.check(Scaled, inputs=((2, 3), {"scale": (2, 1)}))
        assert list(result.variants["units=4"]["inputs"]) == ["input", "scale"]
    """
)


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="keras is not installed")
def test_keras_keyword_inputs_and_non_trainable_weights(pytester, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    pytester.makepyfile(test_models=KERAS)
    run(pytester, "--snapshot-update").assert_outcomes(passed=2)
    variant = checks(pytester, "test_keras_tokens")["units=4"]
    assert list(variant["inputs"]) == ["input_ids", "attention_mask"]
    assert "bn/moving_variance" in variant["parameters"]  # non-trainable weights are recorded

    # one session: a changed moving variance (test_var), an input named otherwise (test_key)
    pytester.makepyfile(
        test_var=KERAS.replace('float(os.environ.get("VAR", "1"))', "3.0"),
        test_key=KERAS.replace('os.environ.get("KEY", "attention_mask")', '"mask"'),
    )
    for test in ("test_keras_tokens", "test_keras_subclassed"):
        copy_golden(pytester, test, "test_var", "test_key")
    result, outcomes = run_each(pytester, "test_var.py", "test_key.py")
    result.assert_outcomes(failed=2, passed=2)
    assert_clean_failure(result)
    assert outcomes["test_var::test_keras_subclassed"][0] == "passed"
    assert outcomes["test_key::test_keras_subclassed"][0] == "passed"
    status, out = outcomes["test_var::test_keras_tokens"]
    assert status == "failed" and "bn/moving_variance std" in out
    status, out = outcomes["test_key::test_keras_tokens"]
    assert status == "failed"
    assert "the model has no input named 'mask': its inputs are input_ids, attention_mask" in out
