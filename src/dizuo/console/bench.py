"""Evaluation runs (测试验证) and their reports, as the eval bench wrote them."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from dizuo.accounts.permissions import authorize
from dizuo.accounts.sessions import SignedIn
from dizuo.console.web import PREFIX, Console
from dizuo.errors import RouteNotFound
from dizuo.evalbench.service import EvalService

__all__ = ["routes"]


def routes(console: Console, evals: EvalService) -> APIRouter:
    router = APIRouter()
    Signed = Annotated[SignedIn, Depends(console.signed_in)]

    @router.get(f"{PREFIX}/evals")
    def runs(request: Request, signed: Signed) -> Response:
        authorize(signed.actor, "read evaluations")
        return console.render(request, "evals.html", signed, runs=evals.runs(), catalog=evals.catalog())

    @router.get(f"{PREFIX}/evals/{{run_id}}/report")
    def report(signed: Signed, run_id: str) -> Response:
        """The run's self-contained report (its own page, opened from the list)."""
        authorize(signed.actor, "read evaluations")
        path = evals.folder(run_id) / "report.html"
        if evals.get(run_id) is None or not path.exists():
            raise RouteNotFound(path=f"{PREFIX}/evals/{run_id}/report")
        return HTMLResponse(path.read_text(encoding="utf-8"))

    return router
