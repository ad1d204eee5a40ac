"""Uploads too large to take: 200 MB streamed, and what a refused one looks like."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx

SIZE_MB = 200


def _megabytes() -> Iterator[bytes]:
    block = b"0" * 2**20
    for _ in range(SIZE_MB):
        yield block


def assert_too_large_refused(client: httpx.Client, url: str, **kwargs: Any) -> None:
    """POST 200 MB to *url*; it must be refused with 413 ``document_too_large`` within seconds."""
    headers = {**kwargs.pop("headers", {}), "content-length": str(SIZE_MB * 2**20)}
    started = time.monotonic()
    try:
        answer = client.post(url, content=_megabytes(), headers=headers, **kwargs)
        assert answer.status_code == 413 and answer.json()["error"]["code"] == "document_too_large"
    except httpx.WriteError:
        pass  # the server answered 413 and closed before the client finished sending: also refused
    assert time.monotonic() - started < 30
