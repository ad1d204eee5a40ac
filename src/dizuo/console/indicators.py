"""The monitoring indicators (监测指标) for the program office: a month's organizations registered and
active, the share using agents against the year's target, and calls, tokens, spend, voucher money
and compute hours by industry, district and size; the month as a workbook. Operators and auditors."""

import asyncio
import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from dizuo.accounts.permissions import authorize
from dizuo.accounts.sessions import SignedIn
from dizuo.billing.reports import attachment
from dizuo.console.web import PREFIX, Console
from dizuo.indicators import monthly, to_xlsx

__all__ = ["routes"]


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
        return console.render(request, "indicators.html", signed, document=document, month=month)

    @router.get(f"{PREFIX}/indicators.xlsx")
    async def workbook(request: Request, signed: Signed, month: str = "") -> Response:
        authorize(signed.actor, "read indicators")
        month = month or this_month()
        document = await asyncio.to_thread(monthly, console.db, month, console.zone)
        data = await asyncio.to_thread(to_xlsx, document, console.words(request).lang)
        name = ("监测指标-" if console.words(request).lang == "zh" else "indicators-") + month
        return Response(data, headers=attachment(name, "xlsx"))

    return router
