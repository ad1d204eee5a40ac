"""Modules loaded on first use: large libraries that only some of a server's requests need.

A gateway process serves every endpoint, but most of its calls never search a knowledge base or
embed a text; numpy alone is 16 MB of a worker's memory. ``np = module("numpy")`` gives a stand-in
whose first attribute read imports the module through the ordinary import system (thread-safe, and
``sys.modules`` holds the real module, so other libraries' ``from numpy import …`` are untouched);
later reads go to the module. The standard library's ``LazyLoader`` is not used: before Python 3.12
it is not safe when two threads touch the module first at once (a half-initialised numpy). Type
checkers see the real import::

    if TYPE_CHECKING:
        import numpy as np
    else:
        np = module("numpy")
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

__all__ = ["module"]

_lock = threading.Lock()
_deferred: dict[str, _Deferred] = {}


class _Deferred:
    """Stands in for the module *name* until its first attribute read imports it."""

    __slots__ = ("_loaded", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._loaded: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        loaded = self._loaded
        if loaded is None:
            loaded = self._loaded = importlib.import_module(self._name)
        return getattr(loaded, attribute)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, {'loaded' if self._loaded is not None else 'not loaded yet'}>"


def module(name: str) -> Any:
    """The module *name*: the one imported already, or a stand-in that imports it on first use (the
    same stand-in for every caller). A module that does not exist is an error now."""
    found = sys.modules.get(name)
    if found is not None:
        return found
    with _lock:
        deferred = _deferred.get(name)
        if deferred is None:
            if importlib.util.find_spec(name) is None:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            deferred = _deferred[name] = _Deferred(name)
        return deferred
