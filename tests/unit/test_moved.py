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
