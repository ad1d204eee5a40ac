"""``POST /v1/aigc/verify`` and ``POST /v1/aigc/export``: AIGC labels checked, answers written out.

No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.

``verify`` takes what a user has: a chat completion's JSON, a stream as read (its ``data:`` lines),
a file the platform exported, or a bare content id; it answers whether this platform produced it,
when, and whether it changed since, and names the organization to that organization's own keys
only. ``export`` writes an answer the caller got from this platform (its seal checked, its content
unchanged, its organization the caller's) as a DOCX, XLSX, PDF or HTML file labeled explicitly and
implicitly. Files sent in are read in a child process with limits, as knowledge-base documents are.
"""

import asyncio
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import Response

from dizuo.compliance.files import MEDIA_TYPES, TITLE, Answer, Kind, export, read_file
from dizuo.compliance.labels import Labeling
from dizuo.compliance.verify import Result, check, found_in, read_found, record_check
from dizuo.errors import InvalidRequest, PermissionDenied
from dizuo.gateway.uploads import read_limited
from dizuo.kb.isolation import IsolatedParser
from dizuo.store import Database
from dizuo.validate import parse_json

__all__ = ["PREFIX", "install_aigc_routes"]

PREFIX = "/v1/aigc"
_REASONS = {
    Result.CHANGED: ("内容与标识不符（生成后被修改过）", "its content differs from what its label seals"),
    Result.FORGED: ("标识不是本平台签发的", "its label was not issued by this platform"),
    Result.FOREIGN: ("标识属于其他服务提供者", "its label is another provider's"),
    Result.UNLABELED: ("没有 aigc 标识", "it carries no aigc label"),
    Result.SEALED: ("没有回答内容", "it has no content"),
}


def _not_exportable(result: Result) -> InvalidRequest:
    zh, en = _REASONS.get(result, ("无法核验", "it cannot be checked"))
    return InvalidRequest("aigc_not_exportable", param="aigc", reason_zh=zh, reason_en=en)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def install_aigc_routes(
    app: FastAPI, scoped: Any, db: Database, labeling: Labeling, read: IsolatedParser
) -> None:
    """Add the label routes to *app* (the knowledge-base app, whose *scoped* makes the API-key
    dependency); *labeling* is the platform's (its key checks labels even where it labels no answer)."""
    auth = scoped(None)

    @app.post(PREFIX + "/verify")
    async def verify(request: Request, who: Annotated[Any, Depends(auth)]) -> dict[str, Any]:
        data = await read_limited(request, read.max_bytes, "body")
        if not data.strip():
            raise InvalidRequest("missing_param", param="body")
        labeler = labeling.labeler

        def run() -> dict[str, Any]:
            found = read_found(data, lambda raw: read_file(raw, read))
            verdict = check(db, labeler, found)
            record_check(db, verdict, f"key:{who.info.key_id}")
            owner = verdict.record.get("organization") or {}
            return verdict.public(show_org=owner.get("id") == who.org)

        return await asyncio.to_thread(run)

    @app.post(PREFIX + "/export", response_model=None)
    async def export_answer(
        request: Request,
        who: Annotated[Any, Depends(auth)],
        format: Annotated[Literal["docx", "xlsx", "pdf", "html"], Query()] = "docx",
    ) -> Response:
        body = parse_json(await read_limited(request, read.max_bytes, "body"))

        def run() -> bytes:
            found = found_in(body)
            verdict = check(db, labeling.labeler, found)
            if verdict.result is not Result.GENUINE or found.text is None:
                raise _not_exportable(verdict.result)
            owner = verdict.record.get("organization")
            if owner is not None and owner["id"] != who.org:
                raise PermissionDenied(
                    "aigc_not_exportable",
                    param="aigc",
                    reason_zh="该回答属于其他组织",
                    reason_en="the answer belongs to another organization",
                )
            assert found.label is not None  # a genuine verdict had one
            answer = Answer(
                found.text,
                found.label,
                title=_text(body.get("title")) or TITLE,
                question=_text(body.get("question")),
                model=verdict.record.get("model") or _text(body.get("model")),
            )
            return export(answer, Kind(format), labeling.labeler, labeling.notice)

        content = await asyncio.to_thread(run)
        name = quote(f"{body.get('title') or 'aigc-answer'}.{format}")
        return Response(
            content,
            media_type=MEDIA_TYPES[format],
            headers={"content-disposition": f"attachment; filename*=UTF-8''{name}"},
        )
