"""One script for searching: traditional Chinese is searched as simplified.

Questions are asked in simplified characters, while policy texts copied from Hong Kong, Taiwan or
converted web pages arrive in traditional script (資訊安全、伺服器、軟體). Both sides of a search (the
terms and vectors a chunk is indexed by, and those of the question) are converted by OpenCC when
they are written in traditional script: characters and Taiwan's phrases (``tw2sp``: 軟體→软件,
資訊→信息, 伺服器→服务器). Text in simplified script is left exactly as it is: the phrase table
would also rewrite simplified words (程序→进程). The stored text, shown and cited, stays as the
document wrote it.
"""

from __future__ import annotations

import threading

__all__ = ["simplified"]

TRADITIONAL = 2  # characters a text must have in traditional script to be converted
_local = threading.local()


def _converters() -> tuple[object, object]:
    found = getattr(_local, "converters", None)
    if found is None:  # one pair per thread: conversions run in worker threads
        import opencc

        found = _local.converters = (opencc.OpenCC("t2s"), opencc.OpenCC("tw2sp"))
    return found


def simplified(text: str) -> str:
    """*text* in simplified script when it is written in traditional; otherwise *text* itself."""
    if text.isascii():
        return text
    characters, phrases = _converters()
    plain: str = characters.convert(text)  # type: ignore[attr-defined]
    if sum(a != b for a, b in zip(text, plain, strict=False)) < TRADITIONAL:
        return text
    return str(phrases.convert(text))  # type: ignore[attr-defined]
