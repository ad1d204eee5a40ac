"""The bench's HTTP client: OpenAI-compatible chat calls with retries, and a cache of answers.

The bench reaches models the way users do, over HTTP (through the gateway, or any
OpenAI-compatible base URL), so that it measures what users get.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path
from typing import Any

import aiohttp
import orjson

__all__ = [
    "AnswerCache",
    "CallFailed",
    "ChatClient",
    "FatalCallFailed",
    "fingerprint",
    "open_append",
    "read_lines",
]

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0


class CallFailed(Exception):
    """A chat call that failed after its retries; the item is recorded as an error."""


class FatalCallFailed(CallFailed):
    """A failure every item would meet (bad key, unknown model): the run stops."""


def _reason(status: int, body: bytes) -> str:
    try:
        error = orjson.loads(body).get("error", {})
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (orjson.JSONDecodeError, AttributeError):
        message = body[:200].decode("utf-8", "replace")
    return f"HTTP {status}: {message}"


class ChatClient:
    """POST ``{base_url}/chat/completions`` with retries on 408/409/429/5xx and broken connections."""

    def __init__(self, base_url: str, api_key: str | None, *, retries: int = 3, timeout: float = 120) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.headers = {"content-type": "application/json"}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"
        self.retries = retries
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ChatClient:
        self._session = aiohttp.ClientSession(
            timeout=self.timeout, connector=aiohttp.TCPConnector(limit=0, force_close=False)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Return the completion document for *body*; raise :class:`CallFailed` after the retries."""
        assert self._session is not None, "use 'async with ChatClient(…)'"
        data = orjson.dumps(body)
        delay = 0.5
        last = ""
        for attempt in range(self.retries + 1):
            wait = delay * 2**attempt
            try:
                async with self._session.post(self.url, data=data, headers=self.headers) as response:
                    raw = await response.read()
                    if response.status == 200:
                        return dict(orjson.loads(raw))
                    last = _reason(response.status, raw)
                    if response.status in (401, 403, 404):
                        raise FatalCallFailed(last)
                    if response.status not in RETRY_STATUSES:
                        raise CallFailed(last)
                    after = response.headers.get("retry-after")
                    if after and after.replace(".", "", 1).isdigit():
                        wait = min(float(after), MAX_RETRY_AFTER)
            except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                await asyncio.sleep(wait)
        raise CallFailed(f"{last} (after {self.retries + 1} tries)")


def fingerprint(body: dict[str, Any]) -> str:
    """The cache key of a request: its body (model, messages, tools and sampling settings)."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class AnswerCache:
    """Completions by request body, kept in a JSON Lines file so that a rerun asks nothing twice.

    Lines are appended and flushed one by one; a line cut by a crash is skipped when read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._answers: dict[str, dict[str, Any]] = {}
        for line in read_lines(path):
            if isinstance(line.get("key"), str) and isinstance(line.get("completion"), dict):
                self._answers[line["key"]] = line["completion"]
        self._file = open_append(path)

    def get(self, body: dict[str, Any]) -> dict[str, Any] | None:
        return self._answers.get(fingerprint(body))

    def put(self, body: dict[str, Any], completion: dict[str, Any]) -> None:
        key = fingerprint(body)
        with self._lock:
            self._answers[key] = completion
            self._file.write(orjson.dumps({"key": key, "completion": completion}) + b"\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __len__(self) -> int:
        return len(self._answers)


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    for raw in path.read_bytes().splitlines():
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue  # the tail of a line a crash cut short
        if isinstance(line, dict):
            lines.append(line)
    return lines


def open_append(path: Path) -> Any:
    """Open *path* for appending, after ending a line a crash may have left unfinished."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("ab")
    if handle.tell() > 0:
        with path.open("rb") as reader:
            reader.seek(-1, 2)
            if reader.read(1) != b"\n":
                handle.write(b"\n")
    return handle
