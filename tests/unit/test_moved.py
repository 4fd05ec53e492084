"""Old module paths keep working after the package was grouped into plugin/ and report/."""

import importlib
import subprocess
import sys

import pytest

from pytest_weightshape.moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_imports_the_very_module_at_its_new_path(old):
    module = importlib.import_module(old)
    new = importlib.import_module(MOVED[old])
    assert module is new
    assert new.__name__ == new.__spec__.name == MOVED[old]  # the real module is untouched


def test_old_names_users_touched_still_import_in_a_fresh_process():
    """As a user's conftest or type hints would, before anything else is loaded."""
    code = (
        "from pytest_weightshape.snapshot import WeightShapeExtension\n"
        "from pytest_weightshape.plugin.extension import WeightShapeExtension as New\n"
        "from pytest_weightshape.fixture import ShapeVariant\n"
        "from pytest_weightshape.plugin import ShapeVariant as Glue, WeightShapeWarning\n"
        "from pytest_weightshape.report import failure, missing, text_table\n"
        "from pytest_weightshape.reports import to_json\n"
        "from pytest_weightshape.cli import main\n"
        "import pytest_weightshape.records as records\n"
        "assert WeightShapeExtension is New and ShapeVariant is Glue\n"
        "assert records.__name__ == 'pytest_weightshape.report.records'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


def test_an_unknown_name_is_still_an_import_error():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("pytest_weightshape.no_such_module")


def test_names_that_moved_out_of_a_module_still_import_from_it():
    from pytest_weightshape import golden, run, stats, tolerance
    from pytest_weightshape.report import cli, formats, records

    assert golden.DEFAULT_CHECK == "default" and golden.same_digest("a", "a")
    assert run.make_inputs((2, 3), seed=0)[0].shape == (2, 3)
    assert stats.threads() >= 1 and tolerance.QUANTILES[0] == 0.01
    assert formats.CACHE_KEY == cli.CACHE_KEY == "weightshape/last-run"
    assert callable(formats.last_run) and callable(cli.configured_cache_dir)
    assert records.text(0.5) == "0.5"


def test_star_import_of_the_old_report_module_gives_its_names():
    namespace = {}
    exec("from pytest_weightshape.report import *", namespace)
    assert {"failure", "missing", "text_table", "MAX_ROWS"} <= set(namespace)


def test_running_an_old_path_as_a_module_works_as_before(tmp_path):
    """``python -m pytest_weightshape.cli`` imported the module and exited 0."""
    for old in ("pytest_weightshape.cli", "pytest_weightshape.snapshot"):
        done = subprocess.run(
            [sys.executable, "-m", old], cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr


def test_the_warning_keeps_its_public_name():
    from pytest_weightshape.plugin import WeightShapeWarning

    assert f"{WeightShapeWarning.__module__}.{WeightShapeWarning.__qualname__}" == (
        "pytest_weightshape.plugin.WeightShapeWarning"
    )
