"""Files the console hands out: CSV (UTF-8 with BOM, for Excel) and XLSX, named in Chinese, with
headers in the reader's language and times in the platform's time zone."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from fastapi.responses import StreamingResponse

from dizuo.billing import reports as billing_reports
from dizuo.console.i18n import Words

__all__ = ["download"]


def download(
    rows: Iterable[dict[str, Any]], fmt: Literal["csv", "xlsx"], name: str, words: Words
) -> StreamingResponse:
    """Return *rows* as an attachment named *name*, written as they are read."""
    pieces = billing_reports.stream(fmt, rows, title=name, lang=words.lang, zone=words.zone)
    return StreamingResponse(pieces, headers=billing_reports.attachment(name, fmt))
