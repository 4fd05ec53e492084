"""pytest glue: the hooks and the ``shape_variant`` fixture, each a few lines into its module.

This package holds every import of pytest and syrupy in pytest-weightshape; the core modules
beside it import neither. A session that never uses the marker loads only this module,
:mod:`.options`, :mod:`.session` and :mod:`.syrupy_bridge`, with the package's errors, marker
signature and old-path hook (the standard library and pytest; no numpy, syrupy, torch or
tensorflow): the fixture's object and the measuring code
load with the first ``shape_variant`` fixture (:mod:`.fixture`), session end when there is
something to publish (:mod:`.finish`), and the core modules that validate an option when the
option is set.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import pytest

from ..marker import MARKER_SIGNATURE
from . import options
from .options import Settings as Settings  # re-exported: its home was this module
from .session import (
    EXTENSION_MODULE,
    SESSION,
    SETTINGS,
    Session,
    point_extension,
    restore_extension,
    session_of,
    settings_of,
)
from .session import WeightShapeWarning as WeightShapeWarning  # users filter it by this path

if TYPE_CHECKING:
    from .fixture import ShapeVariant


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER_SIGNATURE}: check a model's weight-shape "
        "variants against a golden file (pytest-weightshape)",
    )
    config.stash[SETTINGS] = options.read_settings(config)
    state = Session(config)
    config.stash[SESSION] = state
    config.pluginmanager.register(state, "weightshape-outcomes")
    if EXTENSION_MODULE in sys.modules:  # e.g. an enclosing session's: point it here now
        point_extension(config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [options.header_line(config, settings_of(config))]


@pytest.fixture
def shape_variant(request: pytest.FixtureRequest) -> ShapeVariant:
    """Checks the variants declared by ``@pytest.mark.shape_variant(...)`` against a golden."""
    if request.config.pluginmanager.get_plugin("syrupy") is None:
        pytest.fail(
            "pytest-weightshape keeps its goldens with syrupy, whose plugin is disabled in "
            "this session (-p no:syrupy): remove that option to run shape_variant checks",
            pytrace=False,
        )
    point_extension(request.config)
    from .fixture import create

    return create(request, request.getfixturevalue("snapshot"))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On the controller (or a plain run): unused goldens of deleted test files, the report
    file, the GitHub step summary, and the last run kept for ``python -m pytest_weightshape``."""
    state = session_of(session.config)
    if state is None:
        return
    state.take_not_written()  # syrupy's flush (tryfirst) is done
    if hasattr(session.config, "workerinput"):  # a worker leaves the rest to the controller
        return
    if state.has_work():
        from .finish import publish

        publish(session, state)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """A ``weightshape`` section: checks by status, the largest drift, goldens recorded
    under another environment that still hold, unused goldens, and where the report is."""
    state = session_of(config)
    if state is not None and state.has_news():
        from .finish import summary

        summary(terminalreporter, config, state)


def pytest_unconfigure(config: pytest.Config) -> None:
    restore_extension(config)


def __getattr__(name: str) -> Any:
    if name == "ShapeVariant":  # its home was this module; it now loads with the fixture
        from .fixture import ShapeVariant

        return ShapeVariant
    raise AttributeError(name)
