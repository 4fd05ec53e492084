"""Property-based tests: any input either works or yields the clear error, never a crash."""

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_weightshape import golden
from pytest_weightshape.compare import compare
from pytest_weightshape.errors import GoldenError, SpecError
from pytest_weightshape.report.messages import failure
from pytest_weightshape.run import Observer
from pytest_weightshape.spec import MARKER_SETTINGS, parse_marker
from pytest_weightshape.tolerance import Policy

from ..models import Dense

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
axis_values = st.lists(
    st.integers(-3, 3)
    | st.floats(allow_nan=True)
    | st.text(max_size=3)
    | st.none()
    | st.booleans(),
    max_size=4,
)
marker_values = axis_values | json_values


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    kwargs=st.dictionaries(
        st.sampled_from(["units", "bias", "padding", *MARKER_SETTINGS, "sed", "x y"]),
        marker_values,
        max_size=4,
    ),
    args=st.lists(json_scalars, max_size=1),
)
def test_marker_parser_works_or_explains(kwargs, args):
    try:
        spec = parse_marker(args, kwargs)
    except SpecError as exc:
        assert str(exc)
        return
    names = [v.name for v in spec.variants]
    assert len(names) == len(set(names)) and spec.variants[0].is_base
    assert sum(v.is_base for v in spec.variants) == 1


@pytest.fixture(scope="module")
def valid_text():
    spec = parse_marker((), {"units": [4, 3]})
    return golden.render_file("test_x", {"default": Observer(spec, Dense, (5, 16)).observe()})


@pytest.fixture(scope="module")
def other_check():
    """An observation that differs everywhere (another seed): failures get explained."""
    return Observer(parse_marker((), {"units": [4, 3], "seed": 1}), Dense, (5, 16)).observe()


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*prefix, i))


@settings(max_examples=1500, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), edits=st.integers(1, 3))
def test_hand_edited_goldens_are_read_or_refused_and_never_crash_the_comparer(
    valid_text, other_check, data, edits
):
    edited = json.loads(valid_text)
    for _ in range(edits):
        paths = list(_paths(edited))[1:]
        path = data.draw(st.sampled_from(paths))
        target = edited
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = data.draw(json_values)
    text = json.dumps(edited)
    try:
        _, checks = golden.parse_file(text, "golden/x.json")
    except GoldenError as exc:
        assert "golden/x.json" in str(exc)
        return
    same = json.loads(valid_text)["checks"]["default"]
    for check in checks.values():
        for a, b in ((check, same), (same, check), (check, other_check), (other_check, check)):
            verdict = compare(a, b, Policy())  # must not raise, in either direction
            assert verdict.ok == (not verdict.differences)
            failure(verdict, test="t", check="c", path="p", nodeid="n")


@given(st.text(max_size=200))
def test_arbitrary_text_is_refused_cleanly(text):
    try:
        golden.parse_file(text, "golden/y.json")
    except GoldenError as exc:
        assert "golden/y.json" in str(exc)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), factor=st.floats(-2, 2))
def test_comparer_decides_by_tolerance_alone(valid_text, data, factor):
    check = json.loads(valid_text)["checks"]["default"]
    current = copy.deepcopy(check)
    stats = current["variants"]["units=3"]["outputs"]["output"]["stats"]
    stat = data.draw(st.sampled_from(["mean", "std", "max", "q50", "mean_abs"]))
    policy = Policy()
    allowed = policy.allowed(
        stat,
        stats[stat],
        dtype="float32",
        scale=(stats["mean"] ** 2 + stats["std"] ** 2) ** 0.5,
        count=stats["count"],
    )
    stats[stat] += factor * allowed
    verdict = compare(check, current, policy)
    moved = [d for d in verdict.differences if d.where == "output"]
    if abs(factor) < 0.999:
        assert not moved
    elif abs(factor) > 1.001:
        assert [d.stat for d in moved] == [stat]
