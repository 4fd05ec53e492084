"""The finder that sets up a framework right after a builder first imports it."""

import random
import sys

import numpy as np
import pytest

from pytest_weightshape.frameworks.first_import import on_first_import


@pytest.fixture
def package(tmp_path, monkeypatch):
    """Importable modules ``fw_a`` (imports ``fw_b``), ``fw_b`` and ``fw_broken`` (raises)."""
    (tmp_path / "fw_a.py").write_text("import fw_b\nREADY = True\n")
    (tmp_path / "fw_b.py").write_text("READY = True\n")
    (tmp_path / "fw_broken.py").write_text("raise ImportError('no such backend')\n")
    (tmp_path / "fw_drawing.py").write_text(  # as importing TensorFlow or Keras does
        "import random, numpy\nrandom.random()\nnumpy.random.rand(3)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("fw_a", "fw_b", "fw_broken", "fw_drawing"):
        sys.modules.pop(name, None)


def test_each_open_context_acts_once_right_after_the_module_ran_outermost_first(package):
    seen = []
    finders = list(sys.meta_path)

    def act(who):
        return lambda name: seen.append((who, name, sys.modules[name].READY))

    watched = frozenset({"fw_a", "fw_b"})
    with on_first_import(watched, act("outer")), on_first_import(watched, act("inner")):
        import fw_a  # noqa: F401  (imports fw_b, which finishes first)
        import fw_b  # noqa: F401  (already imported: nothing more)
    assert seen == [
        ("outer", "fw_b", True),
        ("inner", "fw_b", True),
        ("outer", "fw_a", True),
        ("inner", "fw_a", True),
    ]
    assert sys.meta_path == finders  # the finder is gone with the last context


def test_a_module_already_imported_or_not_watched_is_left_alone(package):
    import fw_b  # noqa: F401

    seen = []
    finders = list(sys.meta_path)
    with on_first_import(frozenset({"fw_b"}), seen.append):
        assert sys.meta_path == finders  # nothing to watch: no finder at all
    with on_first_import(frozenset({"fw_broken"}), seen.append):
        import fw_a  # noqa: F401
    assert seen == []


def test_a_failing_import_acts_on_nothing_and_the_finder_still_goes(package):
    seen = []
    finders = list(sys.meta_path)
    broken = on_first_import(frozenset({"fw_broken"}), seen.append)
    with pytest.raises(ImportError, match="no such backend"), broken:
        import fw_broken  # noqa: F401
    assert seen == []
    assert sys.meta_path == finders


def test_what_the_import_drew_from_the_global_generators_is_put_back(package):
    random.seed(5)
    np.random.seed(5)
    expected = random.random(), np.random.rand()
    random.seed(5)
    np.random.seed(5)
    with on_first_import(frozenset({"fw_drawing"}), lambda name: None):
        import fw_drawing  # noqa: F401
    assert (random.random(), np.random.rand()) == expected


def test_a_module_that_cannot_be_set_up_says_where_it_came_from(package, tmp_path):
    def refuse(name):
        raise AttributeError(f"module {name!r} has no attribute 'nn'")

    with pytest.raises(ImportError) as caught, on_first_import(frozenset({"fw_b"}), refuse):
        import fw_b  # noqa: F401
    assert str(caught.value) == (
        f"fw_b imported from {tmp_path / 'fw_b.py'} could not be set up for the check "
        "(AttributeError: module 'fw_b' has no attribute 'nn'): is it the real fw_b?"
    )
