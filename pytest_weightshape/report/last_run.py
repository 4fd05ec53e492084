"""The last run's observations in pytest's cache: written at session end, read by
``python -m pytest_weightshape diff`` (which runs no model and imports no framework).

The writer merges each run with the earlier runs' checks of tests it did not run, so accepting
one golden does not hide the others; the reader finds the cache where pytest keeps it.
"""

from __future__ import annotations

import configparser
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .records import RECORD_VERSION

#: Where the last run's records live in pytest's cache.
CACHE_KEY = "weightshape/last-run"


# -- writing (at session end) ---------------------------------------------------------------


def _cached(record: Mapping[str, Any]) -> dict[str, Any]:
    """What ``diff`` needs of a record: the values that moved, not every value compared."""
    kept = dict(record)
    kept["statistics"] = [s for s in record["statistics"] if not s["ok"]]
    kept.pop("distributions", None)
    kept.pop("divergence", None)
    kept["ran_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return kept


def last_run(
    previous: Any,
    records: Sequence[Mapping[str, Any]],
    rootdir: str,
    orphans: Sequence[str] = (),
) -> dict[str, Any]:
    """The cached observations for ``python -m pytest_weightshape diff``: this run's checks,
    plus those of earlier runs (same rootdir) for tests this run did not run, so accepting
    one golden does not hide the others that still differ."""
    ran = {r["nodeid"] for r in records}
    kept: list[Any] = []
    same = isinstance(previous, dict) and previous.get("version") == RECORD_VERSION
    if same and previous.get("rootdir") == rootdir:
        kept = [r for r in previous.get("checks", []) if r.get("nodeid") not in ran]
    return {
        "version": RECORD_VERSION,
        "rootdir": rootdir,
        "checks": kept + [_cached(r) for r in records],
        "orphans": list(orphans),
    }


# -- reading (``diff``) ---------------------------------------------------------------------


def find_last_run(cache_dir: Path | None) -> Path:
    """The cached last run: in ``cache_dir``; else in the ``cache_dir`` that the pytest
    configuration file pytest would pick from here sets; else in the nearest
    ``.pytest_cache`` upwards."""
    key = Path("v", *CACHE_KEY.split("/"))
    if cache_dir is not None:
        return cache_dir / key
    here = Path.cwd().resolve()
    configured = configured_cache_dir(here)
    if configured is not None:
        return configured / key
    for folder in (here, *here.parents):
        candidate = folder / ".pytest_cache" / key
        if candidate.is_file():
            return candidate
    return here / ".pytest_cache" / key


#: pytest's configuration files, in the order it looks for them in each folder, and where
#: each keeps its options (``None``: the file counts even without that section).
_CONFIG_FILES: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("pytest.toml", None),
    (".pytest.toml", None),
    ("pytest.ini", None),
    (".pytest.ini", None),
    ("pyproject.toml", ("tool", "pytest")),
    ("tox.ini", ("pytest",)),
    ("setup.cfg", ("tool:pytest",)),
)


def configured_cache_dir(start: Path) -> Path | None:
    """The ``cache_dir`` set in the first pytest configuration file found from ``start``
    upwards (pytest's rules: ``pytest.toml``, ``pytest.ini``, ``pyproject.toml`` with a
    ``[tool.pytest]`` table, ``tox.ini`` with ``[pytest]``, ``setup.cfg`` with
    ``[tool:pytest]``), resolved as pytest does: environment variables and ``~`` expanded,
    relative to the file's folder. ``None`` when that file does not set it."""
    for folder in (start, *start.parents):
        for name, section in _CONFIG_FILES:
            path = folder / name
            if not path.is_file():
                continue
            options = _pytest_options(path, section)
            if options is None:
                continue
            value = options.get("cache_dir")
            if not isinstance(value, str) or not value.strip():
                return None
            return folder / os.path.expanduser(os.path.expandvars(value.strip()))
    return None


def _pytest_options(path: Path, section: tuple[str, ...] | None) -> dict[str, Any] | None:
    """A configuration file's pytest options, or ``None`` if pytest would pass it by."""
    try:
        if path.suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - pytest depends on tomli there
                import tomli as tomllib
            table: Any = tomllib.loads(path.read_text(encoding="utf-8"))
            for part in section or ("pytest",):
                table = table.get(part) if isinstance(table, dict) else None
            if isinstance(table, dict) and isinstance(table.get("ini_options"), dict):
                table = table["ini_options"]
            return table if isinstance(table, dict) else ({} if section is None else None)
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(path, encoding="utf-8")
        name = (section or ("pytest",))[0]
        if parser.has_section(name):
            return dict(parser.items(name))
        return {} if section is None else None
    except (OSError, ValueError, configparser.Error):
        return None
