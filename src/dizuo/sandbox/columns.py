"""What the sandbox knows of a dataset's columns, and a query's refusal: the parts of the query
policy that the rest of the sandbox names without loading the SQL parser (:mod:`.policy`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Column", "Refused", "Sensitivity"]

Sensitivity = Literal["identifier", "quasi", "sensitive", "public"]


class Refused(Exception):
    """A query that may not run: the error *code*, why (Chinese, English) and where (1-based)."""

    def __init__(self, code: str, zh: str, en: str, line: int | None = None, col: int | None = None) -> None:
        super().__init__(en)
        self.code, self.zh, self.en, self.line, self.col = code, zh, en, line, col


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    sensitivity: Sensitivity
    bounds: tuple[float, float] | None = None
