"""Modules loaded on first use: large libraries that only some of a server's requests need.

A gateway process serves every endpoint, but most of its calls never search a knowledge base or
embed a text; numpy alone is 16 MB of a worker's memory. ``np = module("numpy")`` gives a module
whose first attribute read imports it (the standard library's :class:`importlib.util.LazyLoader`).
Type checkers see the real import::

    if TYPE_CHECKING:
        import numpy as np
    else:
        np = module("numpy")
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType

__all__ = ["module"]

_lock = threading.Lock()


def module(name: str) -> ModuleType:
    """The module *name*: the one imported already, or one that imports itself on first use."""
    with _lock:
        found = sys.modules.get(name)
        if found is not None:
            return found
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        lazy = importlib.util.module_from_spec(spec)
        sys.modules[name] = lazy
        loader.exec_module(lazy)
        return lazy
