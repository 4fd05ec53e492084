"""Records of checks and every rendering of them: failure messages, the terminal summary,
JSON, Markdown and HTML reports, the cached last run, and ``python -m pytest_weightshape``.

A record (:mod:`.records`) is plain JSON data built from a check's verdict where the check ran;
everything else here renders records, so a report can be rebuilt from a saved JSON report or
the cached last run without running anything. Nothing here imports pytest or a framework.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_ROWS", "failure", "missing", "text_table"]


def __getattr__(name: str) -> Any:
    """Names of the module this package replaced (``pytest_weightshape.report`` held one
    failure's message): ``failure``, ``missing`` and ``MAX_ROWS`` now live in :mod:`.messages`,
    ``text_table`` in :mod:`.text`."""
    if name in ("failure", "missing", "MAX_ROWS"):
        from . import messages

        return getattr(messages, name)
    if name == "text_table":
        from .text import text_table

        return text_table
    raise AttributeError(name)
