import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_weightshape import golden
from pytest_weightshape.errors import GoldenError
from pytest_weightshape.run import Observer
from pytest_weightshape.spec import parse_marker

from ..models import Dense


@pytest.fixture(scope="module")
def check_doc():
    spec = parse_marker((), {"units": [10, 5]})
    return Observer(spec, Dense, (8, 16)).observe()


def test_render_is_standard_json_that_round_trips(check_doc):
    text = golden.render_file("test_x", {"default": check_doc})
    assert "NaN" not in text and "Infinity" not in text
    test, checks = golden.parse_file(text, "g.json")
    assert test == "test_x" and checks == {"default": check_doc}
    assert golden.render_file(test, checks) == text  # byte-stable


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip_exactly(value):
    text = golden.render({"v": value, "shape": [1, 2]})
    assert json.loads(text)["v"] == value
    assert math.copysign(1, json.loads(text)["v"]) == math.copysign(1, value)


def test_non_finite_numbers_are_refused():
    with pytest.raises(GoldenError, match="non-finite"):
        golden.render({"v": float("nan")})


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda text: text[: len(text) // 2], "is not valid JSON"),
        (lambda text: "[]", "is not a JSON object"),
        (
            lambda text: text.replace('"schema_version": 1', '"schema_version": 99', 1),
            "schema_version 99",
        ),
        (lambda text: text.replace('"mean": ', '"mean": NaN, "x": ', 1), "not valid JSON"),
        (lambda text: text.replace('"checks"', '"chex"'), "lacks 'test'"),
        (
            lambda text: text.replace('"parameter_count": ', '"parameter_count": "many", "y": ', 1),
            "parameter_count must be an integer",
        ),
        (lambda text: text.replace('"shape": [', '"shape": ["a", ', 1), "shape must be a list"),
        (lambda text: text.replace('"base": true', '"base": false', 1), "exactly one variant"),
        (
            lambda text: text.replace('"count": ', '"count": [], "z": ', 1),
            "count must be a non-negative integer",
        ),
        (
            lambda text: text.replace('"mean": ', '"mean": [], "z": ', 1),
            "mean must be a number or null",
        ),
        (
            lambda text: text.replace('"seed": 0,', '"seed": 0, "seed": 1,', 1),
            "duplicate key 'seed'",
        ),
        (
            lambda text: text.replace('"std": ', '"std": "wide", "w": ', 1),
            "std must be a number or null",
        ),
    ],
)
def test_corrupt_goldens_name_the_file_and_the_fix(check_doc, mutate, message):
    text = mutate(golden.render_file("test_x", {"default": check_doc}))
    with pytest.raises(GoldenError) as info:
        golden.parse_file(text, "golden/tests/test_x/test_x.json")
    assert message in str(info.value)
    assert "golden/tests/test_x/test_x.json" in str(info.value)
    assert "--snapshot-update" in str(info.value)


@pytest.mark.parametrize(
    "name",
    [
        "test_a[../../etc]",
        "test_a[a/b]",
        "test_a[a\\b]",
        "test_a[c:d]",
        "test_a[*]",
        "test_a[ünï]",
        "test_a[" + "x" * 400 + "]",
        "test_a[\x00]",
        "..",
        ".hidden",
    ],
)
def test_safe_stem_is_one_safe_path_component(name):
    stem = golden.safe_stem(name)
    assert "/" not in stem and "\\" not in stem and stem not in {"", ".", ".."}
    assert not stem.startswith(".") and len(stem) <= golden.MAX_STEM
    assert stem.isascii() and stem.isprintable()


def test_safe_stem_keeps_plain_names_and_never_collides():
    assert golden.safe_stem("test_lstm[cpu-10]") == "test_lstm[cpu-10]"
    ids = [
        "test[a/b]",
        "test[a_b]",
        "test[a:b]",
        "test[a\\b]",
        "test[" + "y" * 300 + "]",
        "test[" + "y" * 301 + "]",
    ]
    assert len({golden.safe_stem(i) for i in ids}) == len(ids)


def test_golden_dir_mirrors_the_test_path(tmp_path):
    root = tmp_path
    test_file = root / "tests" / "m" / "test_x.py"
    assert golden.golden_dir(root, root / "golden", test_file, "tests.m.test_x") == (
        root / "golden" / "tests" / "m" / "test_x"
    )
    outside = golden.golden_dir(
        root / "a", root / "a" / "golden", root / "b" / "test_y.py", "b.test_y"
    )
    # named from the module, not the absolute path: the same on every checkout
    assert outside == root / "a" / "golden" / "_outside_rootdir" / "b.test_y"


def test_a_file_outside_rootdir_named_from_its_absolute_path_is_named_by_its_relative_path(
    tmp_path,
):
    """--import-mode=importlib names a test file in no package from its absolute path (dots
    as underscores): that name differs per machine, so the folder takes the path from rootdir
    instead, and two such files with one stem get two folders."""
    root = tmp_path / "project"
    names = {}
    for folder in ("unit", "integration.v2"):
        test_file = tmp_path / folder / "test_model.py"
        absolute = ".".join(p.replace(".", "_") for p in test_file.with_suffix("").parts[1:])
        names[folder] = golden.golden_dir(root, root / "golden", test_file, absolute)
    assert names == {
        "unit": root / "golden" / "_outside_rootdir" / "_up.unit.test_model",
        "integration.v2": root / "golden" / "_outside_rootdir" / "_up.integration_v2.test_model",
    }


def test_merge_write_keeps_other_checks_and_delete_removes_file(tmp_path, check_doc):
    path = tmp_path / "g" / "test_x.json"
    golden.merge_write(path, "test_x", {"default": check_doc})
    golden.merge_write(path, "test_x", {"second": check_doc})
    assert list(golden.read_checks(path)[1]) == ["default", "second"]
    golden.delete_checks(path, {"default"})
    assert list(golden.read_checks(path)[1]) == ["second"]
    golden.delete_checks(path, {"second"})
    assert not path.exists()
    assert [p.name for p in path.parent.iterdir()] == []  # no temp or lock files left


def test_merge_write_replaces_a_corrupt_file(tmp_path, check_doc):
    path = Path(tmp_path / "test_x.json")
    path.write_text("{truncated")
    golden.merge_write(path, "test_x", {"default": check_doc})
    assert golden.read_checks(path)[1] == {"default": check_doc}


# -- unreadable goldens and JSON's rules (a corrupt golden, never a crash) -------------------


def _valid(tmp_path, check_doc, name="g.json"):
    path = tmp_path / name
    path.write_text(golden.render_file("test_x", {"default": check_doc}), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda p: p.write_bytes(b"\xff\xfe{not utf-8"), "not UTF-8 text"),
        (lambda p: p.write_text("[" * 100_000 + "]" * 100_000), "nested too deeply"),
        (lambda p: (p.unlink(), p.mkdir()), "a folder stands at its path"),
        (
            lambda p: p.write_text(p.read_text().replace('"mean": ', '"mean": 1e999, "q": ', 1)),
            "number 1e999 is out of the float range",
        ),
    ],
)
def test_an_unreadable_golden_is_a_corrupt_golden(tmp_path, check_doc, spoil, message):
    path = _valid(tmp_path, check_doc)
    spoil(path)
    with pytest.raises(GoldenError) as info:
        golden.read_checks(path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert "--snapshot-update" in str(info.value)


def test_a_golden_without_read_permission_is_a_corrupt_golden(tmp_path, check_doc, monkeypatch):
    path = _valid(tmp_path, check_doc)

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(GoldenError, match="cannot be read \\(PermissionError: Permission denied"):
        golden.read_checks(path)


def test_a_byte_order_mark_and_crlf_line_ends_are_read(tmp_path, check_doc):
    path = _valid(tmp_path, check_doc)
    text = path.read_text(encoding="utf-8")
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    assert golden.read_checks(path) == ("test_x", {"default": check_doc})


def test_the_first_duplicate_key_is_named_in_a_large_object():
    keys = [f'"k{i}": {i}' for i in range(50_000)] + ['"k7": 0']
    with pytest.raises(GoldenError, match="duplicate key 'k7'"):
        golden.parse_file("{" + ", ".join(keys) + "}", "big.json")


def test_each_golden_is_parsed_once_until_it_changes(tmp_path, check_doc, monkeypatch):
    path = _valid(tmp_path, check_doc)
    parsed = []
    original = golden.parse_file
    monkeypatch.setattr(golden, "parse_file", lambda *a: parsed.append(a[1]) or original(*a))
    first = golden.read_checks(path)
    first[1]["mine"] = {}  # a caller's changes to what it got never reach the next reader
    assert golden.read_checks(path) == ("test_x", {"default": check_doc})
    assert parsed == [str(path)]
    golden.merge_write(path, "test_x", {"other": check_doc})  # a new file: read anew
    assert set(golden.read_checks(path)[1]) == {"default", "other"}
    assert len(parsed) == 2  # merge_write read it from memory; the file it wrote is read anew


def test_temporary_files_a_killed_writer_left_are_removed_by_the_next_write(tmp_path, check_doc):
    import os
    import time

    stale = tmp_path / ".g.json.k1ll3d.weightshape-tmp"
    fresh = tmp_path / ".g.json.wr1t1ng.weightshape-tmp"  # another writer's, mid-write
    other = tmp_path / ".notes.json.backup.tmp"  # a user's, not ours
    for p in (stale, fresh, other):
        p.write_text("{")
    old = time.time() - 2 * golden.STALE_SECONDS
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    golden.merge_write(tmp_path / "g.json", "test_x", {"default": check_doc})
    assert not stale.exists() and fresh.exists() and other.exists()


def test_a_pipe_at_a_golden_path_is_refused_without_reading_it(tmp_path):
    import os

    path = tmp_path / "g.json"
    os.mkfifo(path)  # reading it would block until a writer came
    with pytest.raises(GoldenError, match="it is not a regular file"):
        golden.read_checks(path)


def test_an_integer_beyond_the_float_range_is_refused(check_doc):
    text = golden.render_file("test_x", {"default": check_doc})
    text = text.replace('"mean": ', f'"mean": {10**400}, "huge": ', 1)
    with pytest.raises(GoldenError, match="401 digits\\) is out of the float range"):
        golden.parse_file(text, "g.json")


def test_removing_goldens_goes_on_past_one_that_cannot_be_removed(tmp_path, monkeypatch):
    paths = [tmp_path / name / "g.json" for name in ("a", "b", "c")]
    for path in paths:
        path.parent.mkdir()
        path.write_text("{}")
    original = Path.unlink

    def unlink(self, *args, **kwargs):
        if self == paths[0]:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink)
    failed = golden.remove_files(paths, tmp_path)
    assert [(p, type(e)) for p, e in failed] == [(paths[0], PermissionError)]
    assert paths[0].exists() and not paths[1].parent.exists() and not paths[2].parent.exists()
