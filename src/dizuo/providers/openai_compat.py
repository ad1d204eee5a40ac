"""The OpenAI-compatible family: OpenAI itself, the Chinese vendors' compatible modes, vLLM, SGLang,
Ollama and llama.cpp's server all speak this protocol; presets differ only in data.

The client's body is forwarded with only the needed rewrites (the model name, and
``stream_options.include_usage`` so that streams are always metered). Answers name the model the
client asked for (the alias), as OpenAI's do, not the upstream's own name for it. Stream events are
passed on as the upstream sends them, the model name swapped in their bytes; only chunks that
mention usage are parsed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from dizuo.errors import (
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
)
from dizuo.providers.base import Provider, Reply, Usage
from dizuo.providers.http1 import ConnectFailed, Disconnected, Response

__all__ = ["OpenAICompatible", "map_upstream_errors", "parse_usage"]

MAX_UPSTREAM_MESSAGE = 500
log = logging.getLogger("dizuo.upstream")


@contextmanager
def map_upstream_errors(deployment: str, read_timeout: float, started: bool = False) -> Iterator[None]:
    """Translate the upstream client's exceptions into dizuo's, raised ``from`` the original.

    *started* says whether bytes already reached the client, after which nothing is retryable.
    """
    try:
        yield
    except TimeoutError as exc:
        raise UpstreamTimeout(deployment=deployment, seconds=read_timeout, retryable=not started) from exc
    except ConnectFailed as exc:
        # The reason, not the address: "Connection refused", never the upstream's internal host.
        log.warning("upstream %s unreachable: %s", deployment, exc.reason)
        raise UpstreamError(
            "upstream_unreachable", deployment=deployment, detail=exc.reason, retryable=not started
        ) from exc
    except Disconnected as exc:
        log.info("upstream %s disconnected: %s", deployment, exc)
        raise UpstreamError(
            "upstream_disconnected", deployment=deployment, detail="Disconnected", retryable=not started
        ) from exc


def _upstream_message(raw: bytes) -> str:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:MAX_UPSTREAM_MESSAGE].decode("utf-8", "replace").strip() or "(empty body)"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:MAX_UPSTREAM_MESSAGE]
        if isinstance(error, str):
            return error[:MAX_UPSTREAM_MESSAGE]
        if data.get("message"):
            return str(data["message"])[:MAX_UPSTREAM_MESSAGE]
    return raw[:MAX_UPSTREAM_MESSAGE].decode("utf-8", "replace")


def failed(deployment: str, status: int, message: str, *, retryable: bool = True) -> UpstreamError:
    """An upstream failing (401/403: the platform's own credentials; 5xx; an error sent with 200):
    its words stay in the log. They are the platform's business, not the client's, and carry what
    no tenant should see: a provider's masked key, internal host names, a proxy's page."""
    log.warning("upstream %s failed with HTTP %d: %s", deployment, status, message)
    return UpstreamError(
        deployment=deployment,
        status=status,
        said_zh="详情已记入平台日志。请稍后重试；持续出现请联系平台运维人员",
        said_en="the details are in the platform's log. Retry shortly; if it persists, tell the platform's operators",
        retryable=retryable,
    )


def error_from_status(deployment: str, status: int, raw: bytes) -> UpstreamError:
    """Map an upstream HTTP error to ours: 400/422 are the client's, 429 is retryable elsewhere, the
    rest are the upstream failing (its message logged, not relayed)."""
    message = _upstream_message(raw)
    # The client's request is at fault (a context too long, a bad tool schema, a rate limit): the
    # upstream's own words go to the client.
    if status in (400, 422):
        return UpstreamRejected(
            deployment=deployment, status=status, said_zh=message, said_en=message, retryable=False
        )
    if status == 429:
        return UpstreamRateLimited(deployment=deployment, status=status, said_zh=message, said_en=message)
    return failed(deployment, status, message)


def parse_usage(data: dict[str, Any]) -> Usage | None:
    """Find usage in a response or chunk: top level, or inside the first choice (Moonshot's streams)."""
    usage = Usage.from_mapping(data.get("usage"))
    if usage is None:
        choices = data.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            usage = Usage.from_mapping(choices[0].get("usage"))
    return usage


class OpenAICompatible(Provider):
    """Adapter for every upstream that speaks ``POST {base_url}/chat/completions``."""

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.spec.auth == "bearer" and self.endpoint.api_key:
            headers["Authorization"] = f"Bearer {self.endpoint.api_key}"
        return headers

    async def _request(
        self,
        path: str,
        body: bytes = b"",
        gate: Awaitable[None] | None = None,
        *,
        method: str = "POST",
        seconds: float | None = None,
    ) -> Response:
        """Send a request to ``{base_url}{path}`` and return the answer, its headers read; within the
        deployment's time limits, or *seconds* for both where that is shorter."""
        endpoint = self.endpoint
        read, connect = self._timeouts(seconds)
        with map_upstream_errors(endpoint.deployment, read):
            return await self.transport.client.request(
                method,
                f"{endpoint.base_url}{path}",
                self._headers(),
                body,
                connect_timeout=connect,
                read_timeout=read,
                gate=gate,
            )

    def _timeouts(self, seconds: float | None) -> tuple[float, float]:
        """The read and connect time limits of a request: the deployment's, or *seconds* where shorter."""
        endpoint = self.endpoint
        if seconds is None:
            return endpoint.read_timeout, endpoint.connect_timeout
        return min(endpoint.read_timeout, seconds), min(endpoint.connect_timeout, seconds)

    async def _whole(
        self, path: str, body: bytes = b"", *, method: str = "POST", seconds: float | None = None
    ) -> bytes:
        """The whole answer to a request (:meth:`_request`); an upstream's error status raised as ours."""
        name = self.endpoint.deployment
        response = await self._request(path, body, method=method, seconds=seconds)
        try:
            with map_upstream_errors(name, self._timeouts(seconds)[0]):
                raw = await response.read()
        finally:
            response.close()
        if response.status >= 400:
            raise error_from_status(name, response.status, raw)
        return raw

    def _prepare(self, body: dict[str, Any], stream: bool) -> bytes:
        body["model"] = self.endpoint.upstream_model
        if stream and self.spec.stream_usage:
            options = body.get("stream_options")
            body["stream_options"] = (
                {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
            )
        return orjson.dumps(body)

    async def chat(
        self, body: dict[str, Any], stream: bool, gate: Awaitable[None] | None = None
    ) -> AsyncGenerator[Reply, None]:
        """POST the chat completion upstream and yield the body, or the stream's events.

        With a *gate*, the request is built and started at once, but its body is sent only when the
        gate is done: the upstream never has a complete request of a call refused meanwhile (it sees
        the connection close), and building the request is hidden in the gate's wait."""
        renamed = _Renamed.of(body.get("model"), self.endpoint.upstream_model)
        name, read_timeout = self.endpoint.deployment, self.endpoint.read_timeout
        response = await self._request("/chat/completions", self._prepare(body, stream), gate)
        try:
            if response.status >= 400:
                with map_upstream_errors(name, read_timeout):
                    raw = await response.read()
                raise error_from_status(name, response.status, raw)
            if not stream:
                with map_upstream_errors(name, read_timeout):
                    raw = await response.read()
                yield _answer(name, raw, "choices", renamed)
                return
            async for reply in self._events(response, renamed):
                yield reply
        finally:
            # Closing before the answer is whole closes the connection: the upstream stops generating.
            response.close()

    async def _events(self, response: Response, renamed: _Renamed | None) -> AsyncGenerator[Reply, None]:
        name, read_timeout = self.endpoint.deployment, self.endpoint.read_timeout
        started = False
        # A body that is no event stream (an error some vendors send with 200, a proxy's page): kept,
        # up to a point, to say what the upstream said instead.
        body: list[bytes] | None = [] if response.content_type != "text/event-stream" else None
        while True:
            with map_upstream_errors(name, read_timeout, started):
                line = await response.readline()
            if not line and not started and body:
                raise failed(name, response.status, _upstream_message(b"".join(body)))
            if not line:
                # EOF without [DONE]: the upstream hung up before finishing.
                raise UpstreamError(
                    "upstream_disconnected",
                    deployment=name,
                    detail="stream ended early",
                    retryable=not started,
                )
            if not line.startswith(b"data:"):
                if body is not None and not started and len(body) < 256:
                    body.append(line)
                continue  # blank separators, comments, event: lines
            payload = line[5:].strip()
            if payload == b"[DONE]":
                return
            if payload.startswith(b'{"error"'):
                error = orjson.loads(payload).get("error") or {}
                message = str(error.get("message", error))[:MAX_UPSTREAM_MESSAGE]
                raise failed(name, 200, message, retryable=not started)
            started = True
            if renamed is not None:
                payload = renamed.swap(payload)
            if b'"usage"' in payload:
                yield _usage_chunk(payload)
            else:
                yield Reply(payload)

    async def probe(self) -> None:
        """GET ``{base_url}/models``: cheap on every OpenAI-compatible server, and it checks the key."""
        await self._whole("/models", method="GET", seconds=min(10.0, self.endpoint.read_timeout))

    async def embed(self, body: dict[str, Any]) -> Reply:
        """POST the embeddings request upstream and return its body."""
        renamed = _Renamed.of(body.get("model"), self.endpoint.upstream_model)
        body["model"] = self.endpoint.upstream_model
        raw = await self._whole("/embeddings", orjson.dumps(body))
        return _answer(self.endpoint.deployment, raw, "data", renamed)


class _Renamed:
    """The model name of an answer put back to the alias the client sent."""

    __slots__ = ("alias", "needles")

    def __init__(self, alias: str, upstream: str) -> None:
        self.alias = alias
        name = orjson.dumps(upstream)
        # The two spellings upstreams use: compact (most servers) and with a space (Python's json).
        self.needles = (
            (b'"model":' + name, b'"model":' + orjson.dumps(alias)),
            (b'"model": ' + name, b'"model": ' + orjson.dumps(alias)),
        )

    @classmethod
    def of(cls, alias: Any, upstream: str) -> _Renamed | None:
        return cls(alias, upstream) if isinstance(alias, str) and alias != upstream else None

    def swap(self, payload: bytes) -> bytes:
        """A stream event with the alias for the upstream's model name (one C-speed scan)."""
        for needle, replacement in self.needles:
            if needle in payload:
                return payload.replace(needle, replacement, 1)
        return payload


def _answer(deployment: str, raw: bytes, field: str, renamed: _Renamed | None = None) -> Reply:
    """A whole 200 body as an answer: a JSON object with its *field* list (``choices``, ``data``).
    Anything else is the upstream failing (retryable: nothing reached the client): some vendors'
    gateways send errors with HTTP 200, and a proxy in front of a model server may send its own
    page. Passed on, it would be a success to the client, and billed."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get(field), list):
        raise failed(deployment, 200, _upstream_message(raw))
    if renamed is not None and data.get("model") != renamed.alias:
        data["model"] = renamed.alias
        raw = orjson.dumps(data)
    return Reply(raw, parse_usage(data), body=data)


def _usage_chunk(payload: bytes) -> Reply:
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return Reply(payload)
    if not isinstance(data, dict):
        return Reply(payload)
    usage = parse_usage(data)
    # A usage event is one even when its usage is unusable (Usage.from_mapping): it is no output.
    return Reply(payload, usage, usage_only="usage" in data and not data.get("choices"))
