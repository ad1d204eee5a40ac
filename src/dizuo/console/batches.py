"""Batches: an organization's batches with their status, progress, counts and cost so far, and their
output and error files to download. An organization's members see its own; platform admins and
auditors see every organization's."""

import asyncio
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from dizuo.accounts.permissions import sees_all_orgs
from dizuo.accounts.service import visible_orgs
from dizuo.accounts.sessions import SignedIn
from dizuo.batches.service import Batches, BatchNotFound
from dizuo.console.web import PREFIX, Console

__all__ = ["routes"]


def routes(console: Console, batches: Batches) -> APIRouter:
    router = APIRouter()
    Signed = Annotated[SignedIn, Depends(console.signed_in)]

    @router.get(f"{PREFIX}/batches")
    async def listed(request: Request, signed: Signed, org: str = "") -> Response:
        org, org_id = await asyncio.to_thread(console.scoped_org, signed, org, "read batches")
        found = await asyncio.to_thread(batches.of, org_id)
        names = {o["id"]: o["name"] for o in await asyncio.to_thread(visible_orgs, console.db, signed.actor)}
        return console.render(
            request,
            "batches.html",
            signed,
            batches=found,
            org=org,
            names=names,
            orgs=sorted(names.values()) if sees_all_orgs(signed.actor) else [],
        )

    @router.get(f"{PREFIX}/batches/{{batch_id}}/{{which}}")
    async def download(signed: Signed, batch_id: str, which: str) -> Response:
        _, org_id = await asyncio.to_thread(console.scoped_org, signed, "", "read batches")
        batch = await asyncio.to_thread(batches.running, batch_id)
        file_id = {"output": batch.output_file_id, "errors": batch.error_file_id}.get(which)
        if (org_id is not None and batch.org_id != org_id) or file_id is None:
            raise BatchNotFound(id=batch_id)
        row, handle = await asyncio.to_thread(batches.files.content, batch.org_id, file_id)

        def pieces() -> Iterator[bytes]:
            with handle:
                while chunk := handle.read(1 << 20):
                    yield chunk

        name = f"{batch_id}_{which}.jsonl"
        return StreamingResponse(
            pieces(),
            media_type="application/x-ndjson; charset=utf-8",
            headers={
                "content-disposition": f'attachment; filename="{name}"',
                "content-length": str(row.bytes),
            },
        )

    return router
