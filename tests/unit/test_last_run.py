"""Where ``diff`` looks for the last run: the cache dir the pytest configuration file sets."""

import pytest

from pytest_weightshape.report.last_run import configured_cache_dir


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pytest.toml", '[pytest]\ncache_dir = "$CACHE_ROOT/c"\n'),
        ("pytest.ini", "[pytest]\ncache_dir = $CACHE_ROOT/c\n"),
        ("pyproject.toml", '[tool.pytest.ini_options]\ncache_dir = "$CACHE_ROOT/c"\n'),
        ("pyproject.toml", '[tool.pytest]\ncache_dir = "$CACHE_ROOT/c"\n'),
        ("tox.ini", "[pytest]\ncache_dir = $CACHE_ROOT/c\n"),
        ("setup.cfg", "[tool:pytest]\ncache_dir = $CACHE_ROOT/c\n"),
    ],
)
def test_diff_reads_cache_dir_from_every_pytest_configuration_file(
    tmp_path, monkeypatch, name, text
):
    monkeypatch.setenv("CACHE_ROOT", "out")
    (tmp_path / name).write_text(text)
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert configured_cache_dir(tmp_path / "a" / "b") == tmp_path / "out" / "c"


def test_diff_takes_the_configuration_file_pytest_would_take(tmp_path):
    (tmp_path / "tox.ini").write_text("[pytest]\ncache_dir = outer\n")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "pyproject.toml").write_text("[project]\nname = 'x'\n")  # no pytest table
    (inner / "setup.cfg").write_text("[metadata]\nname = x\n")  # no [tool:pytest]
    assert configured_cache_dir(inner) == tmp_path / "outer"
    (inner / "pytest.ini").write_text("[pytest]\naddopts = -q\n")  # counts, sets nothing
    assert configured_cache_dir(inner) is None
