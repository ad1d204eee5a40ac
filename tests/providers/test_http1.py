"""The upstream HTTP/1.1 client against servers written byte by byte: what it reads, what it keeps
open, what it closes, and how each way an upstream can fail reaches the gateway."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from dizuo.providers.http1 import ConnectFailed, Disconnected, UpstreamClient
from tests.support.servers import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Served"], Awaitable[None]]


@dataclass
class Served:
    """What the server saw: one entry a connection, the requests (head and body) read on it."""

    connections: list[list[bytes]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request, head and body, or None when the client closed the connection first."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    try:
        body = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return head + body


def answer(body: bytes, *extra: bytes, status: bytes = b"200 OK") -> bytes:
    head = b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n" % len(body)
    return head + b"".join(line + b"\r\n" for line in extra) + b"\r\n" + body


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[tuple[str, Served]]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> tuple[str, Served]:
        served = Served()

        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served.connections.append([])
            try:
                await handler(reader, writer, served)
            finally:
                writer.close()
                served.closed.set()

        server = await asyncio.start_server(connected, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1", served

    yield start
    for server in servers:
        server.close()


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    upstream = UpstreamClient()
    yield upstream
    await upstream.close()


async def post(client: UpstreamClient, url: str, body: bytes = b"{}", read_timeout: float = 5) -> bytes:
    response = await client.request(
        "POST", url, {"Content-Type": "application/json"}, body, connect_timeout=2, read_timeout=read_timeout
    )
    try:
        return await response.read()
    finally:
        response.close()


async def echo_keepalive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, served: Served) -> None:
    while (request := await read_request(reader)) is not None:
        served.connections[-1].append(request)
        writer.write(answer(request.split(b"\r\n\r\n", 1)[1]))
        await writer.drain()


async def test_requests_reuse_one_connection_and_send_what_they_were_given(serve, client) -> None:
    url, served = await serve(echo_keepalive)
    assert await post(client, url + "/chat/completions", '{"q": "你好"}'.encode()) == '{"q": "你好"}'.encode()
    assert await post(client, url + "/chat/completions", b"second") == b"second"
    assert len(served.connections) == 1 and len(served.connections[0]) == 2
    head = served.connections[0][0].split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert f"Host: {url.split('/')[2]}".encode() in head
    assert b"Content-Length: 15" in head  # the UTF-8 bytes, not the characters
    assert client.idle_connections() == 1


async def test_a_pooled_connection_the_upstream_closed_is_replaced_without_an_error(serve, client) -> None:
    async def one_per_connection(reader, writer, served) -> None:
        request = await read_request(reader)
        assert request is not None
        served.connections[-1].append(request)
        writer.write(answer(b"ok"))  # keep-alive promised, then the server closes while idle
        await writer.drain()

    url, served = await serve(one_per_connection)
    assert await post(client, url) == b"ok"
    await served.closed.wait()
    await asyncio.sleep(0.05)
    assert await post(client, url) == b"ok"
    assert len(served.connections) == 2


async def test_chunked_server_sent_events_come_line_by_line_across_packets(serve, client) -> None:
    async def stream(reader, writer, served) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n")
        writer.write(b"Transfer-Encoding: chunked\r\n\r\n")
        for piece in (b'data: {"a":"\xe4\xbd', b'\xa0"}\n\ndata: [DO', b"NE]\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await read_request(reader)

    url, _ = await serve(stream)
    response = await client.request("POST", url, {}, b"{}", connect_timeout=2, read_timeout=5)
    assert response.status == 200 and response.content_type == "text/event-stream"
    lines = []
    while line := await response.readline():
        lines.append(line)
    assert lines == ['data: {"a":"你"}\n'.encode(), b"\n", b"data: [DONE]\n", b"\n"]
    response.close()
    assert client.idle_connections() == 1  # read whole: kept for the next call


async def test_a_stream_read_to_its_last_event_keeps_its_connection(serve, client) -> None:
    async def stream(reader, writer, served) -> None:
        while await read_request(reader) is not None:
            served.connections[-1].append(b"request")
            events = b"data: {}\n\ndata: [DONE]\n\n"
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(events), events))
            await writer.drain()

    url, served = await serve(stream)
    for _ in range(2):
        response = await client.request("POST", url, {}, b"{}", connect_timeout=2, read_timeout=5)
        while await response.readline() != b"data: [DONE]\n":
            pass
        response.close()  # as the provider does at [DONE], its blank line unread
        await asyncio.sleep(0.01)
    assert len(served.connections) == 1 and len(served.connections[0]) == 2


async def test_a_body_that_runs_until_the_connection_closes(serve, client) -> None:
    async def until_close(reader, writer, served) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()

    url, _ = await serve(until_close)
    assert await post(client, url) == b"all of it"
    assert client.idle_connections() == 0


async def test_gzip_answers_are_decompressed(serve, client) -> None:
    body = ('{"content": "' + "质检报告" * 500 + '"}').encode()

    async def zipped(reader, writer, served) -> None:
        await read_request(reader)
        writer.write(answer(gzip.compress(body), b"Content-Encoding: gzip"))
        await writer.drain()

    url, _ = await serve(zipped)
    assert await post(client, url) == body


async def test_stopping_early_closes_the_connection_so_the_upstream_stops(serve, client) -> None:
    async def endless(reader, writer, served) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        try:
            while True:
                writer.write(b"6\r\ndata:\n\r\n")
                await writer.drain()
                await asyncio.sleep(0.005)
        except ConnectionError:
            served.connections[-1].append(b"client went away")

    url, served = await serve(endless)
    response = await client.request("POST", url, {}, b"{}", connect_timeout=2, read_timeout=5)
    assert await response.readline() == b"data:\n"
    response.close()
    await asyncio.wait_for(served.closed.wait(), 5)
    assert served.connections[0] == [b"client went away"]
    assert client.idle_connections() == 0


async def test_a_failed_gate_leaves_the_upstream_without_a_whole_request(serve, client) -> None:
    async def reader_only(reader, writer, served) -> None:
        served.connections[-1].append(await read_request(reader) or b"incomplete")

    url, served = await serve(reader_only)

    async def refused() -> None:
        await asyncio.sleep(0.02)
        raise PermissionError("no money")

    with pytest.raises(PermissionError):
        await client.request(
            "POST", url, {}, b'{"model": "m"}', connect_timeout=2, read_timeout=5, gate=refused()
        )
    await asyncio.wait_for(served.closed.wait(), 5)
    assert served.connections[0] == [b"incomplete"]


async def test_a_gate_that_opens_sends_the_body(serve, client) -> None:
    url, served = await serve(echo_keepalive)

    async def opened() -> None:
        await asyncio.sleep(0.02)

    response = await client.request(
        "POST", url, {}, b"body", connect_timeout=2, read_timeout=5, gate=opened()
    )
    assert await response.read() == b"body"
    assert served.connections[0][0].endswith(b"Content-Length: 4\r\n\r\nbody")


async def test_a_refused_port_is_a_connect_failure_saying_why(client) -> None:
    with pytest.raises(ConnectFailed) as caught:
        await post(client, f"http://127.0.0.1:{free_port()}/v1")
    assert caught.value.reason == "Connection refused"


async def test_silence_after_the_headers_is_a_read_timeout_between_arrivals(serve, client) -> None:
    async def trickle_then_stall(reader, writer, served) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(4):  # 0.4 s of trickling: longer than the limit, but never silent for long
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.1)
        await asyncio.sleep(5)

    url, _ = await serve(trickle_then_stall)
    response = await client.request("POST", url, {}, b"{}", connect_timeout=2, read_timeout=0.3)
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await response.read()
    waited = asyncio.get_running_loop().time() - started
    assert waited >= 0.6  # the trickle kept it alive; the silence after it ended it
    response.close()


async def test_hanging_up_mid_answer_is_a_disconnect(serve, client) -> None:
    async def half(reader, writer, served) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()

    url, _ = await serve(half)
    with pytest.raises(Disconnected):
        await post(client, url)


async def test_a_name_that_does_not_resolve_is_a_connect_failure(client) -> None:
    with pytest.raises(ConnectFailed) as caught:
        await post(client, "http://no-such-upstream.invalid/v1")
    assert "no-such-upstream" not in caught.value.reason


async def test_an_answer_that_is_not_http_is_a_disconnect(serve, client) -> None:
    async def garbage(reader, writer, served) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    url, _ = await serve(garbage)
    with pytest.raises(Disconnected):
        await post(client, url)


async def test_a_large_answer_read_slowly_arrives_whole(serve, client) -> None:
    body = bytes(range(256)) * 20_000  # 5 MB: past the point where the socket is paused

    async def large(reader, writer, served) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        writer.write(body)
        await writer.drain()
        await read_request(reader)

    url, _ = await serve(large)
    response = await client.request("POST", url, {}, b"{}", connect_timeout=2, read_timeout=5)
    received = bytearray()
    await asyncio.sleep(0.2)
    while line := await response.readline():
        received += line
    assert bytes(received) == body
