"""``POST /v1/apps/inspection/audit``: the inspection-report auditor over HTTP.

No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.

One ``multipart/form-data`` request carries the report (``report``), the standard (``standard``, one
or more files) and optionally the defect history (``defects``). The body is read no further than
the upload limit, then the audit runs in a worker thread; ``?format=html`` answers the page a
quality engineer reads, otherwise the JSON of ``dizuo inspect --json``. A report that fails its
audit is still a 200: the findings are the answer. Files that cannot be read are a 400/413 with
the same codes as knowledge-base uploads.
"""

import asyncio
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.types import Message

from dizuo.apps.inspection import audit_files, render_html
from dizuo.errors import InvalidRequest, pick_language
from dizuo.gateway.uploads import read_limited
from dizuo.kb.isolation import IsolatedParser

__all__ = ["PREFIX", "install_inspection_routes"]

PREFIX = "/v1/apps/inspection"
_MAX_FILES = 50


async def _files(form: Any, name: str) -> list[tuple[str, bytes]]:
    out = []
    for value in form.getlist(name):
        if not isinstance(value, UploadFile):
            raise InvalidRequest(
                "invalid_param", param=name, reason_zh="应为上传的文件", reason_en="must be an uploaded file"
            )
        out.append((value.filename or name, await value.read()))
    return out


def install_inspection_routes(app: FastAPI, scoped: Any, read: IsolatedParser) -> None:
    """Add the auditor's route to *app*; *scoped* makes the API-key dependency of a scope (the
    knowledge-base app's): the auditor needs ``apps`` and holds a concurrency slot while it runs."""
    auth = scoped("apps", hold=True)

    @app.post(PREFIX + "/audit", response_model=None)
    async def audit(
        request: Request,
        who: Annotated[Any, Depends(auth)],
        format: Annotated[Literal["json", "html"], Query()] = "json",
        lang: Annotated[Literal["zh", "en"] | None, Query()] = None,
    ) -> Response:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise InvalidRequest(
                "invalid_param",
                param="content-type",
                reason_zh="请以 multipart/form-data 上传 report、standard（及 defects）文件",
                reason_en="upload the report, standard (and defects) files as multipart/form-data",
            )
        body = await read_limited(request, read.max_bytes, "report, standard, defects")

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async with Request(request.scope, replay).form(max_files=_MAX_FILES, max_fields=_MAX_FILES) as form:
            report = await _files(form, "report")
            standards = await _files(form, "standard")
            defects = await _files(form, "defects")
        if len(report) != 1:
            raise (
                InvalidRequest("missing_param", param="report")
                if not report
                else InvalidRequest(
                    "invalid_param", param="report", reason_zh="只能上传一份报告", reason_en="give one report"
                )
            )
        if not standards:
            raise InvalidRequest("missing_param", param="standard")
        language = lang or pick_language(request.headers.get("accept-language"))
        result = await asyncio.to_thread(audit_files, report[0], standards, defects, language, read)
        doc = result.public()
        if format == "html":
            return HTMLResponse(render_html(doc, language))
        return JSONResponse(doc)
