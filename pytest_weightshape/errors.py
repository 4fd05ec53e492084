"""Errors the harness raises for bad input. The pytest glue turns them into clean failures."""

from __future__ import annotations


class WeightShapeError(Exception):
    """A problem with a marker, a check call, a model or a golden, explained for the user.

    The message names what is wrong (the test, the variant, the file) and how to fix it;
    the plugin shows it without a plugin traceback.
    """


class SpecError(WeightShapeError):
    """The ``shape_variant`` marker or a ``check`` argument is invalid."""


class ModelError(WeightShapeError):
    """Building or running a variant's model failed, or it returned something unusable."""


class GoldenError(WeightShapeError):
    """A golden file cannot be read: truncated, not JSON, wrong schema or hand-edited types."""


class NewerGoldenError(GoldenError):
    """A golden written by a newer pytest-weightshape: never overwritten by an older one."""


def exception_line(exc: BaseException) -> str:
    """``TypeError: message``: an exception in one line, for messages that quote a user's."""
    return f"{type(exc).__name__}: {exc}"
