"""Old module paths of 0.1.0 development builds, kept working after the package was grouped
into ``plugin/`` and ``report/``: ``import pytest_weightshape.snapshot`` gives the very module
``pytest_weightshape.plugin.extension`` (the same object, so its classes are the same classes).

An import hook, not files at the old paths: nothing at the top of the package imports the
pytest glue or the reports, and nothing is loaded until an old path is imported.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from types import CodeType, ModuleType
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

#: Old path -> new path.
MOVED: dict[str, str] = {
    "pytest_weightshape.fixture": "pytest_weightshape.plugin.fixture",
    "pytest_weightshape.finish": "pytest_weightshape.plugin.finish",
    "pytest_weightshape.snapshot": "pytest_weightshape.plugin.extension",
    "pytest_weightshape.records": "pytest_weightshape.report.records",
    "pytest_weightshape.reports": "pytest_weightshape.report.formats",
    "pytest_weightshape.html": "pytest_weightshape.report.html",
    "pytest_weightshape.cli": "pytest_weightshape.report.cli",
}


class _Alias:
    """Finds an old path and loads it as the module at its new path (a meta path finder and
    its loader)."""

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, cast("Loader", self))

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # a placeholder, replaced below

    def is_package(self, fullname: str) -> bool:
        return False

    def get_code(self, fullname: str) -> CodeType:
        """``python -m <old path>``: the new module, imported (none of the moved modules does
        anything when run as a script, and run under its old name its relative imports would
        not resolve)."""
        return compile(f"import {MOVED[fullname]}\n", f"<{fullname}: moved>", "exec")

    def exec_module(self, module: ModuleType) -> None:
        """Put the module at its new path under the old name too: the import system hands
        out what ``sys.modules`` holds under that name once this returns (the placeholder's
        attributes, such as ``__spec__``, are never set on the real module)."""
        sys.modules[module.__name__] = importlib.import_module(MOVED[module.__name__])


def install() -> None:
    """Answer imports of the old paths (once per process)."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
