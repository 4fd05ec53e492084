import copy

import pytest

from pytest_weightshape.compare import compare
from pytest_weightshape.report.messages import failure
from pytest_weightshape.run import Observer
from pytest_weightshape.spec import parse_marker
from pytest_weightshape.tolerance import Override, Policy

from ..models import Dense


def observe(build=Dense, inputs=(8, 16), **marker):
    spec = parse_marker((), {"units": [10, 5], **marker})
    return Observer(spec, build, inputs).observe()


@pytest.fixture(scope="module")
def doc():
    return observe()


def test_identical_documents_match(doc):
    verdict = compare(doc, copy.deepcopy(doc), Policy())
    assert verdict.ok and verdict.compared > 50 and verdict.worst == 0


def test_float_beyond_tolerance_fails_with_numbers(doc):
    current = copy.deepcopy(doc)
    stats = current["variants"]["units=5"]["outputs"]["output"]["stats"]
    stats["std"] *= 1 + 1e-3
    verdict = compare(doc, current, Policy())
    assert not verdict.ok
    (d,) = verdict.differences
    assert (d.variant, d.where, d.stat) == ("units=5", "output", "std")
    assert d.difference == pytest.approx(
        stats["std"] - doc["variants"]["units=5"]["outputs"]["output"]["stats"]["std"]
    )
    assert d.allowed < abs(d.difference)
    # same inputs, weights and environment: the model's own computation changed
    assert verdict.causes[0].startswith("environment unchanged: the model's computation changed")
    # a looser per-statistic tolerance accepts it
    assert compare(doc, current, Policy(per_stat={"std": Override(rtol=1e-2)})).ok


def test_within_tolerance_passes(doc):
    current = copy.deepcopy(doc)
    current["variants"]["units=5"]["outputs"]["output"]["stats"]["std"] *= 1 + 1e-7
    verdict = compare(doc, current, Policy())
    assert verdict.ok and 0 < verdict.worst < 1


def test_shape_change_is_exact_and_named_as_cause(doc):
    current = copy.deepcopy(doc)
    current["variants"]["units=5"]["outputs"]["output"]["shape"] = [8, 6]
    verdict = compare(doc, current, Policy())
    assert any(d.stat == "shape" and d.allowed is None for d in verdict.differences)
    assert verdict.causes[0].startswith("shape or structure changed")


def test_changed_initial_weights_are_named(doc):
    current = observe(build=lambda units: Dense(units, scale=1.001))
    verdict = compare(doc, current, Policy())
    assert not verdict.ok
    cause = " ".join(verdict.causes)
    assert "initial weights changed" in cause and "kernel std" in cause
    assert "inputs changed" not in cause


def test_changed_inputs_are_named(doc):
    current = observe(seed=1)
    verdict = compare(doc, current, Policy())
    assert "inputs changed" in " ".join(verdict.causes)


def test_missing_and_extra_variants_and_outputs(doc):
    current = copy.deepcopy(doc)
    del current["variants"]["units=5"]
    current["variants"]["units=10"]["outputs"]["extra"] = current["variants"]["units=10"][
        "outputs"
    ]["output"]
    verdict = compare(doc, current, Policy())
    presence = {(d.where, d.stat): (d.golden, d.current) for d in verdict.differences}
    assert presence[("variants", "units=5")] == (True, False)
    assert presence[("outputs", "extra")] == (False, True)


def test_nan_appearing_fails_even_with_loose_tolerance(doc):
    current = copy.deepcopy(doc)
    current["variants"]["units=10"]["outputs"]["output"]["stats"]["nan_count"] = 1
    verdict = compare(doc, current, Policy(default=Override(rtol=1.0, atol=1e9)))
    assert [d.stat for d in verdict.differences] == ["nan_count"]


def test_failure_text_has_table_cause_environment_and_fix(doc):
    current = copy.deepcopy(doc)
    current["environment"]["numpy"] = "9.9.9"
    current["variants"]["units=5"]["outputs"]["output"]["stats"]["max"] += 1.0
    verdict = compare(doc, current, Policy())
    text = failure(
        verdict,
        test="test_dense",
        check="default",
        path="golden/t/test_dense.json",
        nodeid="t.py::test_dense",
    )
    assert "variant units=5 / output" in text
    assert "statistic" in text and "golden" in text and "allowed" in text and "max" in text
    assert "likely cause: forward numerics changed" in text
    numpy_before = doc["environment"]["numpy"]
    assert f"likely culprit: numpy {numpy_before} -> 9.9.9" in text
    assert f"numpy {numpy_before} -> 9.9.9" in text.split("environment (golden -> now):")[1]
    assert "pytest --snapshot-update t.py::test_dense" in text


def test_seed_change_is_named_first(doc):
    verdict = compare(doc, observe(seed=3), Policy())
    assert verdict.causes[0] == (
        "the marker's seed changed (0 -> 3): inputs and initial weights are drawn anew"
    )


def test_changed_name_lists_show_what_appeared_and_went(doc):
    current = copy.deepcopy(doc)
    div = current["variants"]["units=5"]["divergence"]["parameters"]
    div["changed_shapes"] = [*div["changed_shapes"][:1], "extra: [1] -> [2]"]
    verdict = compare(doc, current, Policy())
    rows = {(d.stat, d.golden, d.current) for d in verdict.differences}
    assert ("extra: [1] -> [2]", False, True) in rows
    assert (
        doc["variants"]["units=5"]["divergence"]["parameters"]["changed_shapes"][1],
        True,
        False,
    ) in rows


def test_models_without_parameters_do_not_claim_same_weights():
    def plain(units):
        return lambda x: x[:, :units] * 2.0

    golden = observe(build=plain)
    current = observe(build=lambda units: lambda x: x[:, :units] * 2.1)
    verdict = compare(golden, current, Policy())
    assert "no visible parameters" in verdict.causes[0]


def test_structural_failures_summarise_the_value_tables(doc):
    current = copy.deepcopy(doc)
    out = current["variants"]["units=5"]["outputs"]["output"]
    out["shape"] = [8, 6]
    out["stats"]["std"] += 1.0
    verdict = compare(doc, current, Policy())
    short = failure(verdict, test="t", check="default", path="p", nodeid="n")
    assert (
        "1 statistics also moved beyond tolerance" in short
        and "std" not in short.split("also")[0].split("shape")[-1]
    )
    full = failure(verdict, test="t", check="default", path="p", nodeid="n", verbose=True)
    assert "std" in full and "also moved" not in full


def test_a_measure_that_becomes_undefined_is_not_called_a_structural_change(doc):
    current = copy.deepcopy(doc)
    current["variants"]["units=5"]["divergence"]["outputs"]["output"]["std_ratio"] = None
    verdict = compare(doc, current, Policy())  # the base output became all zeros, say
    assert not verdict.ok
    causes = verdict.causes
    assert any("became defined or undefined" in c and "std_ratio" in c for c in causes)
    assert not any("shape or structure changed" in c for c in causes)


def test_digests_made_by_an_older_version_are_not_called_changed(doc):
    """Goldens recorded before 0.2 hold blake2b digests: they differ from today's CRC-32 ones
    without the bytes differing, so the failure must not blame inputs or weights, nor claim
    they are the same."""
    golden = copy.deepcopy(doc)
    for variant in golden["variants"].values():
        for tensors in (variant["inputs"], variant["parameters"]):
            for info in tensors.values():
                info["fingerprint"]["digest"] = "766a08d98188266d"  # blake2b, unprefixed
    current = copy.deepcopy(doc)
    current["variants"]["units=5"]["outputs"]["output"]["stats"]["mean"] += 1.0
    verdict = compare(golden, current, Policy())
    assert not verdict.ok
    cause = " ".join(verdict.causes)
    assert "inputs changed" not in cause and "initial weights changed" not in cause
    assert "cannot be told" in cause and "older pytest-weightshape" in cause
    assert "same inputs and initial weights" not in cause
    assert compare(golden, copy.deepcopy(doc), Policy()).ok  # digests never decide a verdict


def test_a_golden_that_names_numpy_scalars_the_old_way_says_how_to_migrate(doc):
    """Goldens recorded under NumPy 2 before scalars were named as numbers hold
    ``units=np.int64(10)``: the failure says why the names changed and what to do."""
    old = copy.deepcopy(doc)
    old["variants"] = {
        f"units=np.int64({name.split('=')[1]})": data for name, data in doc["variants"].items()
    }
    verdict = compare(old, doc, Policy())
    assert not verdict.ok
    assert verdict.causes[0].startswith(
        "variant names changed (units=np.int64(10) -> units=10, units=np.int64(5) -> units=5)"
    )
    assert "--snapshot-update" in verdict.causes[0]


def test_the_likely_cause_of_a_large_grid_lists_a_few_variants_and_counts_the_rest():
    units = list(range(30, 10, -1))
    golden_doc = observe(units=units)
    current = copy.deepcopy(golden_doc)
    for variant in current["variants"].values():
        for tensor in variant["parameters"].values():
            tensor["fingerprint"]["digest"] = "crc32:00000000"
            tensor["fingerprint"]["std"] *= 1.5
        variant["outputs"]["output"]["stats"]["std"] *= 1.5
    verdict = compare(golden_doc, current, Policy())
    (cause,) = [c for c in verdict.causes if c.startswith("initial weights changed")]
    assert cause.endswith("; +16 more variants") and len(cause) < 1000


def test_the_migration_hint_covers_numpy_booleans_and_complex_numbers():
    from pytest_weightshape.compare import _NUMPY_REPR, _as_number

    for old, new in [
        ("flag=np.True_", "flag=True"),
        ("c=np.complex128(1+2j)", "c=(1+2j)"),
        ("x=np.float32(0.1),t=np.str_('a')", "x=0.1,t=a"),
    ]:
        assert _NUMPY_REPR.sub(_as_number, old) == new


def _moved(doc, **environment):
    current = copy.deepcopy(doc)
    current["environment"].update(environment)
    current["variants"]["units=5"]["outputs"]["output"]["stats"]["max"] += 1.0
    return current


def test_unchanged_environment_blames_the_models_computation_not_kernels(doc):
    verdict = compare(doc, _moved(doc), Policy())
    (cause,) = verdict.causes
    assert cause.startswith(
        "environment unchanged: the model's computation changed (its code or configuration)"
    )
    for word in ("kernel", "framework version", "math library"):
        assert word not in cause
    assert verdict.environment_changes == []


def _as_torch(doc, **environment):
    golden = copy.deepcopy(doc)
    for variant in golden["variants"].values():
        variant["framework"] = "torch"
    golden["environment"].update(environment)
    return golden


@pytest.mark.parametrize(
    ("change", "culprit"),
    [
        ({"torch": "2.14.1"}, "torch 2.13.0 -> 2.14.1 (the framework version: its kernels)"),
        ({"threads": 1}, "threads 2 -> 1 (the thread count"),
        ({"device": "cuda:0", "torch": "2.14.1"}, "device cpu -> cuda:0 (the device"),
    ],
)
def test_a_changed_environment_names_the_likely_culprit(doc, change, culprit):
    golden = _as_torch(doc, torch="2.13.0", threads=2, device="cpu")
    verdict = compare(golden, _moved(golden, **change), Policy())
    cause = verdict.causes[-1] if "device" not in change else verdict.causes[0]
    assert f"likely culprit: {culprit}" in cause, verdict.causes


def test_frameworks_a_check_did_not_use_are_not_diffed(doc):
    """An older golden recorded every imported framework; a subset run imported fewer."""
    golden = _as_torch(
        doc,
        torch="2.13.0",
        tensorflow="2.21.0",
        keras="3.15.1",
        keras_backend="tensorflow",
        tensorflow_gpus=0,
        onednn="default",
        jax="0.10.2",
    )
    current = copy.deepcopy(golden)
    for key in ("tensorflow", "keras", "keras_backend", "tensorflow_gpus", "onednn", "jax"):
        del current["environment"][key]
    current["environment"]["torch"] = "2.14.1"
    verdict = compare(golden, current, Policy())
    assert verdict.ok
    assert verdict.environment_changes == ["torch 2.13.0 -> 2.14.1"]
    # nothing relevant changed: nothing to report, no "(absent)"
    current["environment"]["torch"] = "2.13.0"
    moved = _moved(current)
    verdict = compare(golden, moved, Policy())
    assert verdict.environment_changes == []
    assert verdict.causes[0].startswith("environment unchanged")


def test_keras_checks_diff_their_backends_framework(doc):
    golden = copy.deepcopy(doc)
    for variant in golden["variants"].values():
        variant["framework"] = "keras"
    golden["environment"].update(
        keras="3.15.1", keras_backend="tensorflow", tensorflow="2.21.0", torch="2.13.0"
    )
    current = copy.deepcopy(golden)
    current["environment"].update(tensorflow="2.19.1", torch="2.14.1")
    changes = compare(golden, current, Policy()).environment_changes
    assert changes == ["tensorflow 2.21.0 -> 2.19.1"]  # torch is not the backend: not diffed
