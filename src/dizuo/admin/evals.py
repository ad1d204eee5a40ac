"""Admin routes of the evaluation bench: ``/admin/v1/evals`` (start, list, read, compare, catalog).

No ``from __future__ import annotations``: FastAPI reads the route annotations at run time.
"""

from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response

from dizuo.accounts.members import Actor
from dizuo.admin.schemas import EvalIn
from dizuo.errors import RouteNotFound, invalid_param
from dizuo.evalbench import BankError, RunConfig, RunConflict, builtin_suites, compare_runs, load_suite
from dizuo.evalbench.runner import check_judge
from dizuo.evalbench.service import EvalService
from dizuo.evalbench.suites import parse_suite

__all__ = ["eval_routes"]


def eval_routes(
    prefix: str,
    evals: EvalService,
    actor: Callable[..., Actor],
    may: Callable[..., None],
    gateway_url: str,
) -> APIRouter:
    """Return the evaluation routes; *may* checks a role as the other admin routes do."""
    router = APIRouter()
    Caller = Annotated[Actor, Depends(actor)]

    def found(run_id: str) -> dict[str, Any]:
        run = evals.get(run_id)
        if run is None:
            raise RouteNotFound(path=f"{prefix}/evals/{run_id}")
        return run

    @router.get(f"{prefix}/evals/suites")
    def suites(who: Caller) -> list[dict[str, Any]]:
        """The built-in suites."""
        may(who, "read evaluations")
        return [suite.listing() for suite in builtin_suites()]

    @router.post(f"{prefix}/evals", status_code=202)
    def start(body: EvalIn, who: Caller) -> dict[str, Any]:
        """Start a run in the background (platform admins); poll ``GET /evals/{id}`` for its end."""
        may(who, "run evaluations")
        if (body.suite is None) == (body.bank is None):
            raise invalid_param("suite", "请给出 suite 或 bank 之一", "give either suite or bank")
        try:
            if body.bank is not None:
                data = body.bank.content.encode()
                suite = parse_suite(data, f"bank:{body.bank.name}", body.bank.name, body.bank.format)
            else:
                assert body.suite is not None
                if "/" in body.suite or "." in body.suite:
                    raise BankError(body.suite, ["suite names a built-in suite; send a file as bank"])
                suite = load_suite(body.suite)
        except BankError as exc:
            raise invalid_param(
                "bank" if body.bank else "suite", f"题库有误：{exc}", f"the suite has problems: {exc}"
            ) from exc
        config = RunConfig(
            model=body.model,
            base_url=body.base_url or gateway_url,
            api_key=body.api_key,
            concurrency=body.concurrency,
            judge=body.judge,
            max_tokens=body.max_tokens,
            keywords=tuple(body.keywords),
        )
        try:
            check_judge(suite, config)
        except RunConflict as exc:
            raise invalid_param("judge", str(exc), str(exc)) from exc
        return evals.start(suite, config, who.username)

    @router.get(f"{prefix}/evals")
    def runs(
        who: Caller, model: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 200
    ) -> list[dict[str, Any]]:
        """Runs, newest first, with score, grade and requirement verdicts."""
        may(who, "read evaluations")
        return evals.runs(model=model, limit=limit)

    @router.get(f"{prefix}/evals/catalog")
    def catalog(who: Caller) -> list[dict[str, Any]]:
        """Each model's grade for the catalog, from its latest run of each suite."""
        may(who, "read evaluations")
        return evals.catalog()

    @router.get(f"{prefix}/evals/compare")
    def compare(a: str, b: str, who: Caller) -> dict[str, Any]:
        """Compare run b with run a, item by item."""
        may(who, "read evaluations")
        found(a), found(b)
        try:
            return compare_runs(evals.folder(a), evals.folder(b))
        except FileNotFoundError as exc:
            raise invalid_param(
                "a", "评测尚未完成或文件不在本副本", "a run is not finished, or its files are elsewhere"
            ) from exc

    @router.get(f"{prefix}/evals/{{run_id}}")
    def one(run_id: str, who: Caller) -> Response:
        """One run: its status, and when done its whole results document."""
        may(who, "read evaluations")
        run = found(run_id)
        results = evals.folder(run_id) / "results.json"
        if run["status"] == "done" and results.exists():
            document = orjson.loads(results.read_bytes())
            return Response(orjson.dumps({**run, "results": document}), media_type="application/json")
        return Response(orjson.dumps(run), media_type="application/json")

    @router.get(f"{prefix}/evals/{{run_id}}/report", response_class=HTMLResponse)
    def report(run_id: str, who: Caller) -> HTMLResponse:
        """The run's self-contained HTML report."""
        may(who, "read evaluations")
        found(run_id)
        path = evals.folder(run_id) / "report.html"
        if not path.exists():
            raise RouteNotFound(path=f"{prefix}/evals/{run_id}/report")
        return HTMLResponse(path.read_text(encoding="utf-8"))

    return router
