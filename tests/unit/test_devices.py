"""Resolving a requested device (no framework needed)."""

from pytest_weightshape.devices import Placement, kind, resolve


def test_resolution_without_gpus():
    assert resolve(None) == Placement("cpu") == resolve("cpu")
    assert resolve("auto").device in {"cpu", "cuda:0", "mps"}
    assert kind("cuda:3") == "cuda" and kind("gpu:0") == "cuda" and kind("cpu") == "cpu"
