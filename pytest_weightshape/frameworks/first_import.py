"""Run an action right after a framework is first imported, while a check is open.

A builder may import its framework itself (``def build(units): import torch; ...``). A check
seeds, saves and sets up only the frameworks imported when it starts: importing every
installed framework up front would cost seconds. So while a check's contexts are open, a
finder at the front of ``sys.meta_path`` watches the top-level modules of the frameworks;
when one of them has run its module, each open context's action sets it up (saves its state,
seeds it, ...) before the builder goes on to draw from it: as if it had been imported before
the check. What the import itself drew from Python's and NumPy's global generators (TensorFlow
and Keras do) is put back too.
"""

from __future__ import annotations

import importlib.abc
import random
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

import numpy as np

#: The open contexts' actions, outermost first: called with the framework's module name.
_ACTIONS: list[Callable[[str], None]] = []
_LOCK = threading.RLock()


class _Finder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the spec the other finders give for a watched name so that
    the actions run once its module has run."""

    def __init__(self) -> None:
        self.names: frozenset[str] = frozenset()
        self._local = threading.local()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.names or getattr(self._local, "busy", False):
            return None
        self._local.busy = True
        try:
            spec = _spec_of_others(self, fullname, path, target)
        finally:
            self._local.busy = False
        loader: Any = spec.loader if spec is not None else None
        if spec is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            # importing TensorFlow or Keras draws from Python's and NumPy's global generators:
            # put back, the import is invisible to the check, as one made before it would be
            python, numpy = random.getstate(), np.random.get_state()
            run(module)
            random.setstate(python)
            np.random.set_state(numpy)
            with _LOCK:
                actions = list(_ACTIONS)
            for action in actions:
                try:
                    action(fullname)
                except Exception as exc:
                    where = getattr(module, "__file__", None) or "?"
                    raise ImportError(
                        f"{fullname} imported from {where} could not be set up for the check "
                        f"({type(exc).__name__}: {exc}): is it the real {fullname}?"
                    ) from exc

        loader.exec_module = exec_module  # this spec's own loader: made for this import
        return spec


def _spec_of_others(
    finder: _Finder, fullname: str, path: Sequence[str] | None, target: ModuleType | None
) -> ModuleSpec | None:
    for other in list(sys.meta_path):
        find = getattr(other, "find_spec", None)
        if other is finder or find is None:
            continue
        spec = find(fullname, path, target)
        if spec is not None:
            return spec  # type: ignore[no-any-return]
    return None


_FINDER = _Finder()


@contextmanager
def on_first_import(names: frozenset[str], action: Callable[[str], None]) -> Iterator[None]:
    """While the block runs, ``action(name)`` right after module ``name`` (one of ``names``,
    not imported yet) is first imported and has run."""
    names = frozenset(n for n in names if n not in sys.modules)
    if not names:
        yield
        return
    with _LOCK:
        _ACTIONS.append(action)
        _FINDER.names = _FINDER.names | names
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)
    try:
        yield
    finally:
        with _LOCK:
            _ACTIONS.remove(action)
            if not _ACTIONS:
                _FINDER.names = frozenset()
                if _FINDER in sys.meta_path:
                    sys.meta_path.remove(_FINDER)
