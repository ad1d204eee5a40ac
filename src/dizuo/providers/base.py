"""The provider contract: one adapter per upstream protocol.

A provider turns an OpenAI-shaped request body into :class:`Reply` objects. ``chat`` is one async
generator: for a plain call it yields one reply holding the whole JSON body; for a stream it yields
one reply per SSE event payload (without the ``data:`` framing, which the gateway owns).
Capabilities are class attributes. Providers make no routing or billing decisions.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Literal

import aiohttp

from dizuo.errors import UnsupportedFeature
from dizuo.providers.http1 import UpstreamClient

__all__ = [
    "MAX_TOKENS",
    "TEXT_FIELDS",
    "Endpoint",
    "Provider",
    "ProviderSpec",
    "Reply",
    "Transport",
    "Usage",
    "answer_texts",
]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> Usage | None:
        """Read an OpenAI ``usage`` object; None when absent or malformed, or when a count is not a
        whole number from 0 to :data:`MAX_TOKENS`: an upstream outside the platform (a private cloud,
        a partner's server) may report anything, and negative tokens would be a credit. The call is
        then charged by estimate, as when no usage came."""
        if not isinstance(data, Mapping):
            return None
        prompt = _count(data.get("prompt_tokens"))
        completion = _count(data.get("completion_tokens"))
        if prompt is None or completion is None:
            return None
        total = _count(data.get("total_tokens"))
        return cls(prompt, completion, total or prompt + completion)


# The most tokens one count of a call may have: a thousand times today's longest context windows, and
# what the usage records' integer columns hold.
MAX_TOKENS = 2**31 - 1


def _count(value: Any) -> int | None:
    """A token count as reported: absent or null is 0; a whole number (or a float or string of one)
    from 0 to MAX_TOKENS is itself; anything else is None."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, str) else value
        count = int(number)
    except (TypeError, ValueError, OverflowError):
        return None
    if count != number or not 0 <= count <= MAX_TOKENS:
        return None
    return count


TEXT_FIELDS = ("content", "reasoning_content")  # answer fields that are text (DeepSeek-R1 style reasoning)


def answer_texts(message: dict[str, Any]) -> list[tuple[dict[str, Any], str, str]]:
    """The texts of an answer message (or a stream delta): content, reasoning_content, and each
    tool call's arguments, as (container, key, text)."""
    found = [(message, key, message[key]) for key in TEXT_FIELDS if isinstance(message.get(key), str)]
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            found.append((function, "arguments", function["arguments"]))
    return found


@dataclass(slots=True)
class Reply:
    data: bytes
    usage: Usage | None = None
    # A stream chunk whose only content is usage (OpenAI's final chunk with "choices": []).
    usage_only: bool = False
    # A whole answer's JSON as the provider parsed it (the same as *data*), so that what reads it
    # next (the guard, the AIGC label) does not parse it again; None when not parsed.
    body: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What a provider needs to reach one deployment."""

    deployment: str
    base_url: str | None
    api_key: str | None
    upstream_model: str
    connect_timeout: float
    read_timeout: float
    options: Mapping[str, Any] = field(default_factory=dict)  # adapter-specific (threads, …)


@dataclass(frozen=True)
class ProviderSpec:
    """A registered provider: its adapter class and, for presets, the vendor's defaults."""

    name: str
    adapter: type[Provider]
    embedding_adapter: type[Provider] | None = None  # when embeddings need another class
    title: str = ""
    default_base_url: str | None = None
    auth: Literal["bearer", "none"] = "bearer"
    cloud: Literal["public", "private", "local"] = "public"
    # Whether the upstream honours stream_options.include_usage (else usage comes unasked or not at all).
    stream_usage: bool = True
    prices: Mapping[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # CNY per 1M in/out
    prices_as_of: str | None = None
    pricing_url: str | None = None
    notes: str = ""

    def adapter_for(self, mode: str) -> type[Provider]:
        """Return the adapter class that serves *mode* ("chat" or "embedding")."""
        if mode == "embedding" and self.embedding_adapter is not None:
            return self.embedding_adapter
        return self.adapter


class Transport:
    """The HTTP clients of one worker, each pooling its connections across deployments: the lean
    upstream client for model calls (:mod:`dizuo.providers.http1`) and an aiohttp session for the
    platform's other outgoing requests (webhooks)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._client: UpstreamClient | None = None

    @property
    def client(self) -> UpstreamClient:
        """Return the upstream client, creating it on first use inside the running loop."""
        if self._client is None or self._client.closed:
            self._client = UpstreamClient()
        return self._client

    @property
    def session(self) -> aiohttp.ClientSession:
        """Return the session, creating it on first use inside the running loop."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",)
            )
        return self._session

    async def close(self) -> None:
        """Close the pooled connections."""
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._session is not None:
            await self._session.close()
            self._session = None


class Provider:
    """Base of every adapter. Subclasses implement :meth:`chat` and, if they can, :meth:`embed`."""

    supports_tools: ClassVar[bool] = True
    supports_vision: ClassVar[bool] = False
    can_stream: ClassVar[bool] = True
    can_embed: ClassVar[bool] = True

    def __init__(self, endpoint: Endpoint, spec: ProviderSpec, transport: Transport) -> None:
        self.endpoint = endpoint
        self.spec = spec
        self.transport = transport

    async def start(self) -> None:
        """Load what the provider needs before the first call (models, sessions)."""

    async def close(self) -> None:
        """Release what :meth:`start` took."""

    def ready(self) -> bool:
        """Return whether the provider can take calls now."""
        return True

    async def probe(self) -> None:
        """Check the upstream answers; raise UpstreamError when it does not (active health checks)."""
        if not self.ready():
            from dizuo.errors import UpstreamError

            raise UpstreamError(
                "upstream_unreachable", deployment=self.endpoint.deployment, detail="not loaded"
            )

    def chat(
        self, body: dict[str, Any], stream: bool, gate: Awaitable[None] | None = None
    ) -> AsyncGenerator[Reply, None]:
        """Run a chat completion; *body* is the client's JSON, already validated. With a *gate* (the
        call's hold, being asked for), the call may be prepared at once, but nothing it sends may reach
        the upstream as a request until the gate is done."""
        raise NotImplementedError

    async def embed(self, body: dict[str, Any]) -> Reply:
        """Compute embeddings; *body* is the client's JSON."""
        raise UnsupportedFeature(model=body.get("model"), feature="embeddings")
