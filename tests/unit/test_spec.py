import functools

import pytest

from pytest_weightshape.errors import SpecError
from pytest_weightshape.spec import format_value, parse_marker, variant_name


def names(spec):
    return [v.name for v in spec.variants]


def test_single_axis_first_value_is_base():
    spec = parse_marker((), {"hidden_size": [10, 20]})
    assert names(spec) == ["hidden_size=10", "hidden_size=20"]
    assert spec.base.kwargs == {"hidden_size": 10}
    assert [v.is_base for v in spec.variants] == [True, False]
    assert spec.seed == 0


def test_axes_are_zipped():
    spec = parse_marker((), {"kernel_size": [3, 5], "padding": [1, 2]})
    assert names(spec) == ["kernel_size=3,padding=1", "kernel_size=5,padding=2"]


def test_grid_crosses_axes_base_first():
    spec = parse_marker((), {"units": [10, 5], "bias": [True, False], "grid": True})
    assert names(spec) == [
        "units=10,bias=True",
        "units=10,bias=False",
        "units=5,bias=True",
        "units=5,bias=False",
    ]


def test_explicit_variants_list_and_mapping():
    spec = parse_marker((), {"variants": [{"units": 10}, {"units": 5, "bias": False}]})
    assert names(spec) == ["units=10", "units=5,bias=False"]
    named = parse_marker((), {"variants": {"wide": {"units": 10}, "narrow": {"units": 5}}})
    assert names(named) == ["wide", "narrow"]
    assert named.variants[1].kwargs == {"units": 5}


def test_settings_are_not_axes():
    spec = parse_marker(
        (),
        {
            "units": [10, 5],
            "seed": 7,
            "rtol": 1e-3,
            "atol": 0,
            "tolerance": {"std": 1e-2, "max": {"atol": 0.5}},
        },
    )
    assert spec.seed == 7
    assert spec.tolerance.rtol == 1e-3 and spec.tolerance.atol == 0.0
    assert spec.per_stat["std"].rtol == 1e-2
    assert spec.per_stat["max"].atol == 0.5 and spec.per_stat["max"].rtol is None


def named_init(tensor):
    return tensor


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3, "3"),
        (0.5, "0.5"),
        (1e-5, "1e-05"),
        ("xavier", "xavier"),
        (None, "None"),
        (True, "True"),
        ((3, 3), "(3,3)"),
        ([1, 2], "[1,2]"),
        (named_init, "named_init"),
        (functools.partial(named_init, gain=2), "named_init(gain=2)"),
        (float("nan"), "nan"),
    ],
)
def test_value_names_are_stable_and_readable(value, text):
    assert format_value(value) == text


def test_empty_kwargs_name():
    assert variant_name({}) == "default"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((1,), {"units": [1, 2]}, "keyword arguments only"),
        ((), {}, "needs at least one axis"),
        ((), {"units": []}, "axis 'units' is empty"),
        ((), {"units": 10}, "must be a list of values"),
        ((), {"seeds": 1}, "Did you mean the setting seed="),
        ((), {"units": [10, 5], "padding": [1]}, "pass grid=True"),
        ((), {"units": [10, 10]}, "same name 'units=10'"),
        ((), {"init": [lambda t: t, lambda t: t]}, "lambda has no stable name"),
        ((), {"units": [object(), object()]}, "no stable, short name"),
        ((), {"units": [1, 2], "variants": [{"units": 1}]}, "either axes"),
        ((), {"variants": []}, "variants= is empty"),
        ((), {"variants": {}}, "variants= is empty"),
        ((), {"variants": [{"units": 1}, 5]}, "variants[1] must be a dict"),
        ((), {"variants": "units"}, "must be a list of dicts"),
        ((), {"units": [1, 2], "grid": "yes"}, "grid= must be True or False"),
        ((), {"units": [1, 2], "seed": -1}, "seed= must be an integer"),
        ((), {"units": [1, 2], "seed": 1.5}, "seed= must be an integer"),
        ((), {"units": [1, 2], "rtol": -1}, "rtol= must be a finite number >= 0"),
        ((), {"units": [1, 2], "atol": "small"}, "atol= must be a number"),
        ((), {"units": [1, 2], "tolerance": {"sdt": 1e-3}}, "unknown statistic 'sdt'"),
        ((), {"units": [1, 2], "tolerance": {"std": {"rel": 1}}}, "takes 'rtol' and/or 'atol'"),
        ((), {"units": [1, 2], "tolerance": [1e-3]}, "tolerance= must be a dict"),
    ],
)
def test_invalid_markers_explain_the_fix(args, kwargs, message):
    with pytest.raises(SpecError, match=None) as info:
        parse_marker(args, kwargs)
    assert message in str(info.value)


def test_numpy_scalars_are_named_as_the_numbers_they_hold():
    """NumPy 2's repr (np.int64(8)) would give another name than NumPy 1's (8)."""
    np = pytest.importorskip("numpy")
    assert format_value(np.int64(8)) == "8"
    assert format_value(np.float32(0.1)) == "0.1"
    assert format_value(np.float64(0.5)) == "0.5"
    assert format_value(np.bool_(True)) == "True"
    assert variant_name({"units": np.int64(8), "rate": np.float64(0.25)}) == "units=8,rate=0.25"


def test_sets_are_named_in_sorted_order_whatever_the_hash_seed():
    import subprocess
    import sys

    code = (
        "from pytest_weightshape.spec import format_value;"
        "print(format_value({'relu', 'gelu', 'tanh', 'silu'}), format_value(frozenset({3, 1})))"
    )
    names = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**__import__("os").environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in range(4)
    }
    assert names == {"{gelu,relu,silu,tanh} {1,3}"}


def test_text_no_golden_can_hold_is_refused_up_front():
    """A lone surrogate (os.fsdecode of undecodable bytes) would fail at session end."""
    from pytest_weightshape.errors import SpecError
    from pytest_weightshape.spec import check_text

    with pytest.raises(SpecError, match="is not valid Unicode text"):
        format_value("x\ud800")
    with pytest.raises(SpecError, match="check name= 'a\\\\ud800' is not valid Unicode text"):
        check_text("a\ud800", "check name=")
    with pytest.raises(SpecError, match="variant name"):
        parse_marker((), {"variants": {"wide\udc80": {"units": 2}}})
