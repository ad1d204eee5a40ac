"""Files the console hands out: CSV (UTF-8 with BOM, for Excel) and XLSX, named in Chinese."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import Response

from dizuo.billing import reports as billing_reports

__all__ = ["download"]


def download(rows: list[dict[str, Any]], fmt: Literal["csv", "xlsx"], name: str) -> Response:
    """Return *rows* as an attachment named *name*."""
    return Response(billing_reports.render(fmt, rows), headers=billing_reports.attachment(name, fmt))
