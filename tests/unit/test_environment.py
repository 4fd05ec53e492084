import pytest

from pytest_weightshape import environment


def test_a_check_records_only_the_frameworks_its_models_used():
    pytest.importorskip("torch")  # imported: recorded only for checks that used it
    numpy_only = environment.collect("cpu", {"numpy"})
    assert "torch" not in numpy_only and "torch_tf32_matmul" not in numpy_only
    assert {"python", "platform", "numpy", "threads", "device"} <= set(numpy_only)
    torch_check = environment.collect("cpu", {"torch"})
    assert torch_check["torch"] and "torch_deterministic" in torch_check
    assert not {"tensorflow", "keras", "jax", "onednn"} & set(torch_check)


def test_keras_brings_its_backends_framework():
    assert environment.used(["keras"], "tensorflow") == {"keras", "tensorflow"}
    assert environment.used(["keras"], "jax") == {"keras", "jax"}
    assert environment.used(["torch", "numpy"]) == {"torch", "numpy"}


def test_differences_skip_keys_of_frameworks_not_used():
    golden = {"python": "3.11", "torch": "2.13.0", "tensorflow": "2.21.0", "jax": "0.10.2"}
    current = {"python": "3.11", "torch": "2.14.1"}
    assert environment.differences(golden, current, frozenset({"torch"})) == [
        "torch 2.13.0 -> 2.14.1"
    ]
    # without frameworks (older callers): every key
    assert "jax 0.10.2 -> (absent)" in environment.differences(golden, current)


def test_culprit_prefers_the_device_then_the_framework_then_switches():
    golden = {"device": "cpu", "torch": "2.13.0", "threads": 2, "numpy": "2.0"}
    used = frozenset({"torch"})
    assert environment.culprit(golden, dict(golden), used) is None
    assert environment.culprit(golden, {**golden, "threads": 1, "numpy": "2.1"}, used) == (
        "threads 2 -> 1 (the thread count: sums split and added in another order)"
    )
    both = {**golden, "threads": 1, "torch": "2.14.1"}
    assert environment.culprit(golden, both, used).startswith("torch 2.13.0 -> 2.14.1")
    assert environment.culprit(golden, {**golden, "device": "cuda"}, used).startswith("device")
