"""Thin ASGI helpers for the hot path: one pass over headers, a bounded body read, raw sends.

The gateway speaks ASGI directly rather than through a framework's request objects: at a few
thousand requests a second per core every allocation shows in the profile (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from dizuo.errors import BodyTooLarge, DizuoError, InvalidRequest, Lang, pick_language

__all__ = [
    "BodyLimit",
    "Headers",
    "Receive",
    "Scope",
    "Send",
    "json_object",
    "read_body",
    "send_bytes",
    "send_error",
    "send_json",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"


@dataclass(slots=True)
class Headers:
    """The request headers the gateway looks at, read in one pass."""

    authorization: bytes = b""
    content_length: int = -1
    accept_language: bytes = b""
    data_class: bytes = b""
    request_id: bytes = b""
    batch_line: bytes = b""  # X-Dizuo-Batch-Line: the line of a batch a worker's call answers
    batch_fresh: bool = False  # X-Dizuo-Batch-Fresh: 1: the line was never sent before
    other: list[tuple[bytes, bytes]] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: list[tuple[bytes, bytes]]) -> Headers:
        """Pick the known headers out of ASGI's raw list (names arrive lower-cased)."""
        headers = cls()
        for name, value in raw:
            if name == b"authorization":
                headers.authorization = value
            elif name == b"content-length":
                try:
                    headers.content_length = int(value)
                except ValueError:
                    headers.content_length = -1
            elif name == b"accept-language":
                headers.accept_language = value
            elif name == b"x-dizuo-data-class":
                headers.data_class = value
            elif name == b"x-request-id":
                headers.request_id = value
            elif name == b"x-dizuo-batch-line":
                headers.batch_line = value
            elif name == b"x-dizuo-batch-fresh":
                headers.batch_fresh = value == b"1"
        return headers


def json_object(data: bytes) -> dict[str, Any] | None:
    """*data* as a JSON object; None when it is not one (an answer some upstream sent otherwise)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


async def read_body(receive: Receive, declared: int, limit: int) -> bytes:
    """Read the whole request body, refusing more than *limit* bytes with 413."""
    if declared > limit:
        raise BodyTooLarge(limit=limit)
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise BodyTooLarge(limit=limit)
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequest("invalid_json", detail="the client closed the connection mid-body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit=limit)
        parts.append(chunk)
    return b"".join(parts)


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a complete response."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, data: Any, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Serialize *data* with orjson and send it."""
    await send_bytes(send, status, orjson.dumps(data), JSON, extra)


async def send_error(
    send: Send, error: DizuoError, lang: Lang, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send *error* in the OpenAI envelope, with its own headers (e.g. retry-after)."""
    headers = list(extra or [])
    headers.extend((name.encode(), value.encode()) for name, value in error.headers.items())
    await send_bytes(send, error.status, error.body(lang), JSON, headers)


class BodyLimit:
    """Wrap an ASGI app so that no request body over *limit* bytes is ever buffered, before anything
    else (authentication included) looks at the request: a Content-Length over the limit is answered
    413 ``request_too_large`` at once, unread; a body without one is cut off as it passes the limit
    (the app sees :class:`BodyTooLarge` from ``receive`` and answers 413 through its error handler).

    Frameworks read a JSON or form body whole before their route's dependencies run: an
    unauthenticated 600 MB POST to the admin API took the server from 330 MB to 2.08 GB before
    its 401.
    """

    def __init__(self, app: Any, limit: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.larger = larger or {}  # path -> its own limit (uploads streamed to disk after authentication)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers.parse(scope["headers"])
        lang = pick_language(headers.accept_language)
        limit = self.larger.get(scope["path"], self.limit)
        if headers.content_length > limit:
            await send_error(send, BodyTooLarge(limit=limit), lang, [(b"connection", b"close")])
            return
        seen = 0
        exceeded = False

        async def bounded() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                exceeded = True
                raise BodyTooLarge(limit=limit)
            return message

        async def answer(message: Message) -> None:
            # Frameworks may turn any error met while reading a body into their own 400 (FastAPI
            # does): once the limit was passed, the answer is 413 whatever the app makes of it.
            if not exceeded:
                await send(message)
            elif message["type"] == "http.response.start":
                await send_error(send, BodyTooLarge(limit=limit), lang, [(b"connection", b"close")])

        await self.app(scope, bounded, answer)
