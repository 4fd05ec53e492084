"""Keyword inputs (a mapping in ``inputs=``) and seeded integer/boolean draws (issue 14)."""

import numpy as np
import pytest

from pytest_weightshape import Draw, booleans, integers
from pytest_weightshape.compare import compare
from pytest_weightshape.errors import ModelError, SpecError
from pytest_weightshape.inputs import draw_inputs, make_inputs
from pytest_weightshape.run import Observer
from pytest_weightshape.spec import parse_marker
from pytest_weightshape.tolerance import Policy

torch = pytest.importorskip("torch")
nn = torch.nn


def observe(build, inputs, **marker):
    marker = marker or {"width": [4, 8]}
    return Observer(parse_marker((), marker), build, inputs).observe()


class Tokens(nn.Module):
    """A token model called as ``model(input_ids=..., attention_mask=...)``."""

    def __init__(self, width):
        super().__init__()
        self.embed = nn.Embedding(50, width)

    def forward(self, input_ids, attention_mask=None):
        x = self.embed(input_ids)
        if attention_mask is not None:
            x = x * attention_mask.unsqueeze(-1).to(x.dtype)
        return x.sum(dim=1)


def test_integers_and_booleans_draw_from_the_seeded_stream():
    ids, mask = make_inputs((integers((2, 8), high=50), booleans((2, 8), p=0.75)), seed=3)
    assert ids.dtype == np.int64 and ids.shape == (2, 8) and ids.min() >= 0 and ids.max() < 50
    assert mask.dtype == np.bool_ and mask.shape == (2, 8)
    rng = np.random.Generator(np.random.PCG64(3))
    assert np.array_equal(ids, rng.integers(0, 50, (2, 8), dtype="int64"))
    assert np.array_equal(mask, rng.random((2, 8)) < 0.75)
    again = make_inputs((integers((2, 8), high=50), booleans((2, 8), p=0.75)), seed=3)
    assert np.array_equal(again[0], ids) and np.array_equal(again[1], mask)
    (small,) = make_inputs(integers(5, high=3, low=1, dtype="int32"), seed=0)
    assert small.dtype == np.int32 and set(small.tolist()) <= {1, 2}
    (ones,) = make_inputs(booleans((3,), p=1.0), seed=0)
    assert ones.all()
    assert isinstance(integers((1,), 2), Draw)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: integers((2, 3), high=0), "high must be above low"),
        (lambda: integers((2, -3), high=5), "non-negative integers"),
        (lambda: integers((2, 3), high=5, dtype="float32"), "dtype must be one of"),
        (lambda: booleans((2,), p=1.5), "probability"),
    ],
)
def test_bad_draws_explain(make, message):
    with pytest.raises(SpecError, match=message):
        make()


def test_a_mapping_names_each_input_by_its_keyword():
    inputs = draw_inputs(
        {"input_ids": integers((1, 6), high=50), "attention_mask": booleans((1, 6))}, seed=0
    )
    assert [(i.name, i.keyword) for i in inputs] == [
        ("input_ids", "input_ids"),
        ("attention_mask", "attention_mask"),
    ]
    mixed = draw_inputs(((1, 4), {"mask": booleans((1, 4))}), seed=0)
    assert [(i.name, i.keyword) for i in mixed] == [("input", None), ("mask", "mask")]
    called = draw_inputs(lambda rng: {"x": rng.standard_normal((2,))}, seed=0)
    assert [(i.name, i.keyword) for i in called] == [("x", "x")]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "empty mapping"),
        ({1: (2, 3)}, "not a keyword argument name"),
        ({"x": "text"}, "keyword input 'x': inputs= got str"),
        (({"a": (1,)}, (2,)), "mapping before its last item"),
    ],
)
def test_bad_mappings_explain(inputs, message):
    with pytest.raises(SpecError, match=message):
        draw_inputs(inputs, seed=0)


def test_a_keyword_named_like_a_positional_input_is_refused():
    with pytest.raises(SpecError, match="also the name of a positional input"):
        draw_inputs(((2,), {"input": (2,)}), seed=0)


def test_torch_model_gets_keyword_inputs_each_fingerprinted_under_its_name():
    inputs = {"input_ids": integers((2, 6), high=50), "attention_mask": booleans((2, 6))}
    doc = observe(Tokens, inputs)
    base = doc["variants"]["width=4"]
    assert list(base["inputs"]) == ["input_ids", "attention_mask"]
    assert base["inputs"]["input_ids"]["dtype"] == "int64"
    assert base["inputs"]["attention_mask"]["dtype"] == "bool"
    assert base["outputs"]["output"]["shape"] == [2, 4]
    # a forgotten mask changes the outputs, and the failure names the input
    forgot = observe(Tokens, {"input_ids": integers((2, 6), high=50)})
    verdict = compare(doc, forgot, Policy())
    assert not verdict.ok
    assert any("attention_mask" in c and "inputs changed" in c for c in verdict.causes)
    other_mask = observe(
        Tokens, {"input_ids": integers((2, 6), high=50), "attention_mask": booleans((2, 6), p=0.9)}
    )
    verdict = compare(doc, other_mask, Policy())
    assert any(c.startswith("inputs changed: attention_mask") for c in verdict.causes)
    assert not any("input_ids" in c for c in verdict.causes)


def test_positional_and_keyword_inputs_together():
    class Masked(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.linear = nn.Linear(4, width)

        def forward(self, x, *, mask):
            return self.linear(x) * mask.unsqueeze(-1)

    doc = observe(Masked, ((3, 4), {"mask": booleans((3,), p=1.0)}))
    assert list(doc["variants"]["width=4"]["inputs"]) == ["input", "mask"]


def test_an_unknown_keyword_names_the_keyword_and_the_signature():
    with pytest.raises(ModelError) as info:
        observe(Tokens, {"input_ids": integers((1, 4), high=50), "token_type": booleans((1, 4))})
    text = str(info.value)
    assert "variant width=4" in text
    assert "'token_type'" in text
    assert "Tokens.forward(input_ids, attention_mask=None)" in text


def test_numpy_callable_gets_keyword_inputs():
    def build(width):
        weight = np.random.standard_normal((3, width)).astype(np.float32)

        def model(x, scale):
            return (x @ weight) * scale

        return model

    doc = observe(build, {"x": (2, 3), "scale": np.float32([2.0])})
    assert list(doc["variants"]["width=8"]["inputs"]) == ["x", "scale"]
    with pytest.raises(ModelError, match=r"no keyword argument 'bias'.*model\(x, scale\)"):
        observe(build, {"x": (2, 3), "scale": np.float32([2.0]), "bias": (1,)})


def test_typed_kwargs_accept_their_keys_only_and_plain_kwargs_accept_all():
    from typing import TypedDict, Unpack

    class Extra(TypedDict, total=False):
        output_attentions: bool

    class Typed(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.linear = nn.Linear(3, width)

        def forward(self, x, **kwargs: Unpack[Extra]):
            return self.linear(x)

    class Loose(Typed):
        def forward(self, x, **kwargs):
            return self.linear(x)

    observe(Typed, {"x": (2, 3), "output_attentions": np.bool_(True)})
    with pytest.raises(
        ModelError, match=r"no keyword argument 'mask'.*Typed.forward\(x, \*\*kwargs\)"
    ):
        observe(Typed, {"x": (2, 3), "mask": (2, 3)})
    observe(Loose, {"x": (2, 3), "mask": (2, 3)})  # nothing to check against


def test_a_misspelt_huggingface_mask_is_caught():
    transformers = pytest.importorskip("transformers")

    def build(width):
        config = transformers.BertConfig(
            vocab_size=50,
            hidden_size=width,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=16,
            max_position_embeddings=16,
        )
        return transformers.BertModel(config)

    with pytest.raises(ModelError) as info:
        observe(build, {"input_ids": integers((1, 6), high=50), "attention_mas": booleans((1, 6))})
    text = str(info.value)
    assert "no keyword argument 'attention_mas'" in text
    assert "BertModel.forward(input_ids=None, attention_mask=None" in text
