"""Every error message of the platform: the core's (``dizuo.errors``) and each feature's, which its
package adds when it is imported."""

from __future__ import annotations

import importlib
import pkgutil

import dizuo
from dizuo.errors import MESSAGES

__all__ = ["every_message"]


def every_message() -> dict[str, tuple[str, str]]:
    """code -> (zh-CN, English), once every package of dizuo is imported."""
    for found in pkgutil.walk_packages(dizuo.__path__, "dizuo."):
        if found.ispkg and ".migrations" not in found.name:
            importlib.import_module(found.name)
    return dict(MESSAGES)
