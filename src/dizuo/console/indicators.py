"""The monitoring indicators (监测指标) for the program office: a month's organizations registered and
active, the share using agents against the year's target, and calls, tokens, spend, voucher money
and compute hours by industry, district and size; the twelve months up to it (the share using agents
against the years' targets, drawn); the month as a workbook. Operators, the program office and
auditors. A closed month shows its snapshot."""

import asyncio
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from dizuo.accounts.permissions import authorize
from dizuo.accounts.sessions import SignedIn
from dizuo.billing.reports import attachment
from dizuo.console.web import PREFIX, Console
from dizuo.indicators import monthly, series, to_xlsx
from dizuo.scenarios.service import LISTED

__all__ = ["routes"]


WIDTH, HEIGHT = 600, 180  # the trend chart's drawing area, in SVG units


def _months_before(month: str, count: int) -> str:
    """The month *count* months before *month* (``YYYY-MM``; a bad one is left to the 400 later)."""
    try:
        year, number = (int(part) for part in month.split("-"))
    except ValueError:
        return month
    index = year * 12 + number - 1 - count
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _chart(points: list[dict[str, Any]]) -> dict[str, Any]:
    """The months' share using agents as an SVG polyline, the years' targets as dashed segments."""
    step = WIDTH / max(len(points) - 1, 1)

    def y(share: float) -> float:
        return round(HEIGHT - share * HEIGHT, 1)

    share = " ".join(f"{round(i * step, 1)},{y(p['agent_share'])}" for i, p in enumerate(points))
    targets = []
    for i, p in enumerate(points):
        if p["target"] is None:
            continue
        left, right = max(i * step - step / 2, 0), min(i * step + step / 2, WIDTH)
        targets.append({"x1": round(left, 1), "x2": round(right, 1), "y": y(p["target"])})
    return {
        "points": points,
        "share": share,
        "targets": targets,
        "width": WIDTH,
        "height": HEIGHT,
        "step": step,
    }


def routes(console: Console) -> APIRouter:
    router = APIRouter()
    Signed = Annotated[SignedIn, Depends(console.signed_in)]

    def this_month() -> str:
        return dt.datetime.now(console.zone).strftime("%Y-%m")

    @router.get(f"{PREFIX}/indicators")
    async def page(request: Request, signed: Signed, month: str = "") -> Response:
        authorize(signed.actor, "read indicators")
        month = month or this_month()
        document = await asyncio.to_thread(monthly, console.db, month, console.zone)
        points = await asyncio.to_thread(series, console.db, _months_before(month, 11), month, console.zone)
        return console.render(
            request,
            "indicators.html",
            signed,
            document=document,
            month=month,
            trend=_chart(points),
            listed=LISTED,
        )

    @router.get(f"{PREFIX}/indicators.xlsx")
    async def workbook(request: Request, signed: Signed, month: str = "") -> Response:
        authorize(signed.actor, "read indicators")
        month = month or this_month()
        document = await asyncio.to_thread(monthly, console.db, month, console.zone)
        data = await asyncio.to_thread(to_xlsx, document, console.words(request).lang)
        name = ("监测指标-" if console.words(request).lang == "zh" else "indicators-") + month
        return Response(data, headers=attachment(name, "xlsx"))

    return router
