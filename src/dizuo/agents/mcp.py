"""MCP servers kept connected between an agent's calls.

Starting a stdio MCP server costs about a second (a Python interpreter and its imports), and every
connection, stdio or streamable HTTP, begins with the protocol's handshake; an agent that calls the
server on every question paid both each time. A connection is kept per server, agent owner and
calling organization (a server process never serves two organizations' calls, so one that keeps
state keeps none across them), reused by the calls that follow, and closed once no call has used
it for ``agent_mcp_idle_seconds``, when the server's registration changes, when a call finds it
broken, or when the platform stops.

Each connection is held open by a task of its own: the ``mcp`` SDK's client must be closed by the
task that opened it, while the calls that use it come from any task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dizuo.agents.service import McpEndpoint

__all__ = ["McpConnections"]

log = logging.getLogger("dizuo.agents")


class _Connection:
    """One live client of one server for one organization."""

    def __init__(self, key: tuple[str, McpEndpoint], idle_seconds: float) -> None:
        self.key = key
        self.idle_seconds = idle_seconds
        self.client: Any = None
        self.tools: list[Any] | None = None  # what the server listed, once
        self.in_use = 0
        self.last_used = time.monotonic()
        self.ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.closing = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def hold(self, transport: Any) -> None:
        """Open the client, hand it out, and keep it until it is closed or has been idle too long."""
        from mcp import Client

        try:
            async with Client(transport) as client:
                self.client = client
                self.ready.set_result(client)
                while not self.closing.is_set():
                    left = self.last_used + self.idle_seconds - time.monotonic()
                    if left <= 0 and not self.in_use:
                        # Marked closing before the client's exit begins (the process may be gone
                        # while the exit still runs): a call meanwhile opens a new connection
                        # instead of being handed this one.
                        self.closing.set()
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.closing.wait(), timeout=max(left, 1.0))
        except BaseException as exc:
            if not self.ready.done():
                self.ready.set_exception(exc)
            elif not isinstance(exc, asyncio.CancelledError):
                log.info("an MCP connection for %s to %s ended: %r", self.key[0], self.key[1].name, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self.closing.set()


class McpConnections:
    """The live MCP connections of this process, by whose calls they serve and server."""

    def __init__(self, idle_seconds: float = 300.0) -> None:
        self.idle_seconds = idle_seconds
        self._live: dict[tuple[str, McpEndpoint], _Connection] = {}
        self.started = 0  # connections opened since the start (a figure for the tests and metrics)

    async def tools(self, scope: str, endpoint: McpEndpoint, timeout: float) -> tuple[Any, list[Any]]:
        """A live client of *endpoint* for *scope* (whose calls it serves) and the tools its server
        lists: the one kept, or a new one opened within *timeout* seconds (its error raised)."""
        connection = await self._get(scope, endpoint, timeout)
        if connection.tools is None:
            try:
                async with asyncio.timeout(timeout):
                    connection.tools = list((await connection.client.list_tools()).tools)
            except BaseException:
                self.drop(connection.client)
                raise
        return connection.client, connection.tools

    async def _get(self, scope: str, endpoint: McpEndpoint, timeout: float) -> _Connection:
        key = (scope, endpoint)
        connection = self._live.get(key)
        if connection is None or connection.closing.is_set():
            for other in [c for (s, e), c in self._live.items() if s == scope and e.name == endpoint.name]:
                other.closing.set()  # the server's registration changed: the old connection goes
            connection = _Connection(key, self.idle_seconds)
            self._live[key] = connection
            connection.task = asyncio.ensure_future(self._hold(connection, endpoint))
            self.started += 1
        connection.in_use += 1
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(connection.ready)
        except BaseException:
            connection.closing.set()
            raise
        finally:
            connection.in_use -= 1
            connection.last_used = time.monotonic()
        return connection

    async def _hold(self, connection: _Connection, endpoint: McpEndpoint) -> None:
        try:
            await connection.hold(_transport(endpoint))
        finally:
            if self._live.get(connection.key) is connection:
                del self._live[connection.key]

    @contextlib.contextmanager
    def using(self, client: Any) -> Iterator[None]:
        """Mark *client*'s connection in use for a tool's call (it is not closed for being idle
        meanwhile)."""
        connection = self._of(client)
        if connection is not None:
            connection.in_use += 1
        try:
            yield
        finally:
            if connection is not None:
                connection.in_use -= 1
                connection.last_used = time.monotonic()

    def drop(self, client: Any) -> None:
        """Close *client*'s connection (a call found it broken): the next call opens another."""
        connection = self._of(client)
        if connection is not None:
            connection.closing.set()
            self._live.pop(connection.key, None)

    def _of(self, client: Any) -> _Connection | None:
        return next((c for c in self._live.values() if c.client is client), None)

    async def close(self) -> None:
        """Close every connection (the platform stops): stdio servers' processes end."""
        live = list(self._live.values())
        for connection in live:
            connection.closing.set()
        tasks = [c.task for c in live if c.task is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=10)
            for task in pending:
                task.cancel()
        self._live.clear()


def _transport(endpoint: McpEndpoint) -> Any:
    """What :class:`mcp.Client` connects to: the server's URL, or its command to start."""
    if endpoint.url is not None:
        return endpoint.url
    from mcp import StdioServerParameters

    assert endpoint.command
    return StdioServerParameters(command=endpoint.command[0], args=list(endpoint.command[1:]))
