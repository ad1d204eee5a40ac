"""A lean HTTP/1.1 client for the calls to upstream model servers: asyncio protocols, llhttp's
parser (``httptools``, the one uvicorn uses), pooled keep-alive connections.

The gateway makes one upstream request for every call it answers, and the general-purpose client it
used before (aiohttp's) was the largest single part of the event loop's time a call
(docs/benchmarks.md). This client does only what an upstream call needs: ``POST``/``GET`` with a
whole body, the status and headers, the body whole or line by line (server-sent events), a connect
time limit and a read time limit between arrivals, TLS, ``Content-Length``/chunked/until-close
bodies, gzip and deflate, and keep-alive with a connection closed (not returned to the pool) when a
caller stops reading early, which is how an upstream learns to stop generating.

Errors: :class:`ConnectFailed` (the upstream could not be reached: refused, DNS, TLS),
:class:`Disconnected` (it hung up or sent something that is not HTTP), and the built-in
:class:`TimeoutError`. A pooled connection that the upstream closed while idle is detected and the
request is sent once more on a new one, before any byte of an answer came back.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import zlib
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httptools

__all__ = ["ConnectFailed", "Disconnected", "Response", "UpstreamClient"]

KEEPALIVE_SECONDS = 30.0  # an idle pooled connection older than this is closed, not reused
IDLE_PER_ORIGIN = 256  # idle connections kept for one origin; more are closed when returned
HIGH_WATER = 1 << 20  # unread body bytes at which the socket is paused (a slow reader of a stream)


class ConnectFailed(Exception):
    """The upstream could not be reached; *reason* says why in a few words ("Connection refused")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Disconnected(Exception):
    """The upstream hung up before its answer was complete, or sent something that is not HTTP."""


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int
    host_header: bytes

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


@lru_cache(maxsize=1024)
def _target(url: str) -> tuple[_Origin, bytes]:
    """The origin and the request target (path and query) of *url*; deployments' URLs repeat."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectFailed(f"not an http(s) URL: {url!r}")
    default = 443 if parts.scheme == "https" else 80
    port = parts.port or default
    host = parts.hostname
    shown = host.encode() if host.isascii() else host.encode("idna")
    if ":" in host:  # an IPv6 address goes in brackets
        shown = b"[" + shown + b"]"
    if port != default:
        shown += b":%d" % port
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _Origin(parts.scheme, host, port, shown), path.encode()


class _Connection(asyncio.Protocol):
    """One connection to an origin and the answer being read on it (one request at a time)."""

    def __init__(self, client: UpstreamClient, origin: _Origin) -> None:
        self.client = client
        self.origin = origin
        self.loop = client.loop
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.reused = False
        self.idle_since = 0.0
        self.paused = False
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.received = False  # any byte of this answer arrived
        self.failure: BaseException | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.decoder: Any = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is one without subclassing

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(Disconnected("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(Disconnected(f"not an HTTP answer ({exc})"))
        if self.paused is False and len(self.buffer) > HIGH_WATER and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.client._forget(self)
        if not self.complete and self.failure is None:
            if self.headers_done and b"content-length" not in self.headers and not self._chunked():
                self._finish()  # a body that runs until the connection closes
            else:
                self._fail(Disconnected("the upstream closed the connection"))
        self._wake()

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        encoding = self.headers.get(b"content-encoding", b"").lower()
        if encoding in (b"gzip", b"x-gzip"):
            self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == b"deflate":
            self.decoder = zlib.decompressobj()

    def on_body(self, body: bytes) -> None:
        if self.decoder is not None:
            try:
                body = self.decoder.decompress(body)
            except zlib.error as exc:
                self._fail(Disconnected(f"a body that does not decompress ({exc})"))
                return
        self.buffer += body

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it once this returns
        self._finish()

    # the reader's side

    def _chunked(self) -> bool:
        return b"chunked" in self.headers.get(b"transfer-encoding", b"").lower()

    def _finish(self) -> None:
        if self.decoder is not None:
            self.buffer += self.decoder.flush()
            self.decoder = None
        self.complete = True

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        if self.transport is not None:
            self.transport.abort()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def progress(self, timeout: float) -> None:
        """Wait until something arrives (or the connection ends), at most *timeout* seconds."""
        if self.failure is not None:
            raise self.failure
        if self.lost:
            raise Disconnected("the upstream closed the connection")
        waiter = self.waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None
        if self.failure is not None:
            raise self.failure

    def take(self) -> bytes:
        """The body read so far, leaving none."""
        data = bytes(self.buffer)
        self.buffer.clear()
        self._resume()
        return data

    def take_line(self) -> bytes | None:
        """The next line of the body, with its newline; None when no whole line has come yet."""
        end = self.buffer.find(b"\n")
        if end < 0:
            return None
        line = bytes(self.buffer[: end + 1])
        del self.buffer[: end + 1]
        self._resume()
        return line

    def _resume(self) -> None:
        if self.paused and len(self.buffer) <= HIGH_WATER // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def reusable(self) -> bool:
        return (
            self.complete
            and not self.lost
            and self.failure is None
            and self.transport is not None
            and not self.transport.is_closing()
            and self.keep_alive
        )

    def abort(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.abort()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _reason(exc: OSError) -> str:
    """Why a connection failed, in a few words and without the address ("Connection refused")."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or type(exc).__name__}"
    if isinstance(exc, socket.gaierror):
        return exc.strerror or "name not resolved"
    if exc.errno:
        return os.strerror(exc.errno)
    return type(exc).__name__


class Response:
    """An upstream's answer, its status and headers read; the body is read with :meth:`read` or
    :meth:`readline`. :meth:`close` ends it: the connection goes back to the pool when the answer
    was read whole, and is closed otherwise."""

    __slots__ = ("_conn", "_read_timeout", "closed", "headers", "status")

    def __init__(self, conn: _Connection, read_timeout: float) -> None:
        self._conn = conn
        self._read_timeout = read_timeout
        self.status = conn.status
        self.headers = conn.headers
        self.closed = False

    @property
    def content_type(self) -> str:
        """The media type, without parameters, lower-cased ("text/event-stream")."""
        raw = self.headers.get(b"content-type", b"application/octet-stream")
        return raw.split(b";", 1)[0].strip().lower().decode("latin-1")

    async def read(self) -> bytes:
        """The whole body (the connection is then free for the next request)."""
        conn = self._conn
        while not conn.complete:
            await conn.progress(self._read_timeout)
        data = conn.take()
        self.close()
        return data

    async def readline(self) -> bytes:
        """The next line of the body with its newline, the rest without one at the end, b"" after it."""
        conn = self._conn
        while True:
            line = conn.take_line()
            if line is not None:
                return line
            if conn.complete:
                rest = conn.take()
                if not rest:
                    self.close()
                return rest
            await conn.progress(self._read_timeout)

    def close(self) -> None:
        """End the answer: back to the pool if it came whole (a stream's last blank line may be left
        unread), closed otherwise (the upstream stops)."""
        if self.closed:
            return
        self.closed = True
        conn = self._conn
        if conn.reusable():  # the answer came whole: what was left unread of it is dropped
            conn.client._release(conn)
        else:
            conn.abort()


class UpstreamClient:
    """The pooled connections of one event loop to every upstream origin."""

    def __init__(self, keepalive: float = KEEPALIVE_SECONDS) -> None:
        self.loop = asyncio.get_running_loop()
        self.keepalive = keepalive
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None
        self.closed = False

    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes = b"",
        *,
        connect_timeout: float,
        read_timeout: float,
        gate: Awaitable[None] | None = None,
    ) -> Response:
        """Send a request and return the answer once its status and headers came.

        With a *gate*, the request's head is sent at once but its body only when the gate is done;
        if the gate fails, the connection is closed and the upstream never had a whole request."""
        origin, target = _target(url)
        lines = [b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (method.encode(), target, origin.host_header)]
        for name, value in headers.items():
            lines.append(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")))
        lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
        head = b"".join(lines)
        conn = await self._connection(origin, connect_timeout)
        if gate is not None:
            self._send(conn, head)
            try:
                await gate
            except BaseException:
                conn.abort()
                raise
            self._send(conn, body)
        else:
            self._send(conn, head + body)
        try:
            return await self._answer(conn, read_timeout)
        except Disconnected:
            if not conn.reused or conn.received:
                raise
        # The pooled connection was closed by the upstream while idle: once more on a new one.
        conn = await self._connect(origin, connect_timeout)
        self._send(conn, head + body)
        return await self._answer(conn, read_timeout)

    def _send(self, conn: _Connection, data: bytes) -> None:
        if conn.transport is None or conn.lost or conn.transport.is_closing():
            conn._fail(Disconnected("the upstream closed the connection"))
            return
        conn.transport.write(data)

    async def _answer(self, conn: _Connection, read_timeout: float) -> Response:
        try:
            while not conn.headers_done:
                await conn.progress(read_timeout)
        except BaseException:
            conn.abort()
            raise
        return Response(conn, read_timeout)

    async def _connection(self, origin: _Origin, connect_timeout: float) -> _Connection:
        idle = self._idle.get(origin.key)
        now = self.loop.time()
        while idle:
            conn = idle.pop()
            if conn.lost or conn.transport is None or conn.transport.is_closing():
                continue
            if now - conn.idle_since > self.keepalive:
                conn.abort()
                continue
            conn.reused = True
            return conn
        return await self._connect(origin, connect_timeout)

    async def _connect(self, origin: _Origin, connect_timeout: float) -> _Connection:
        if self.closed:
            raise ConnectFailed("the client is closed")
        tls: dict[str, Any] = {}
        if origin.scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = {"ssl": self._tls, "server_hostname": origin.host}
        conn = _Connection(self, origin)
        try:
            async with asyncio.timeout(connect_timeout):
                await self.loop.create_connection(lambda: conn, origin.host, origin.port, **tls)
        except TimeoutError:
            raise
        except OSError as exc:  # refused, unreachable, no such host, TLS (ssl.SSLError is one)
            raise ConnectFailed(_reason(exc)) from exc
        return conn

    def _release(self, conn: _Connection) -> None:
        if self.closed:
            conn.abort()
            return
        idle = self._idle.setdefault(conn.origin.key, deque())
        if len(idle) >= IDLE_PER_ORIGIN:
            conn.abort()
            return
        conn._reset()
        conn.reused = False
        conn.idle_since = self.loop.time()
        idle.append(conn)

    def _forget(self, conn: _Connection) -> None:
        idle = self._idle.get(conn.origin.key)
        if idle and conn in idle:
            idle.remove(conn)

    def idle_connections(self) -> int:
        """How many connections wait in the pool (for tests and metrics)."""
        return sum(len(idle) for idle in self._idle.values())

    async def close(self) -> None:
        """Close every pooled connection; later requests fail."""
        self.closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().abort()
        self._idle.clear()
