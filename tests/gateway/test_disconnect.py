"""A client that goes away cancels the upstream request."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import orjson
import pytest

from tests.support.platform import RunningGateway, Serve, upstream_deployment
from tests.support.upstream import FakeUpstream


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """Clients that give up over a real socket: ``hang-model`` never answers, ``slow-model`` answers after its
    0.5 s read timeout, ``echo-model`` at once."""
    with serve(
        [
            upstream_deployment("hang-model", "hang"),
            upstream_deployment("slow-model", "slow", timeout={"read": 0.5}),
            upstream_deployment("echo-model"),
        ]
    ) as running:
        yield running


def _raw_request(gateway: RunningGateway, api_key: str, body: dict[str, object]) -> socket.socket:
    payload = orjson.dumps(body)
    host, port = gateway.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {api_key}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return sock


def test_disconnect_cancels_the_upstream_call(
    gateway: RunningGateway, api_key: str, upstream: FakeUpstream
) -> None:
    for stream in (False, True):
        upstream.cancelled.clear()
        upstream.hang_started.clear()
        sock = _raw_request(
            gateway,
            api_key,
            {"model": "hang-model", "stream": stream, "messages": [{"role": "user", "content": "x"}]},
        )
        assert upstream.hang_started.wait(5), "the upstream never got the call"
        sock.close()
        assert upstream.cancelled.wait(5), (
            f"the upstream call went on after the client left (stream={stream})"
        )


def test_gateway_keeps_serving_after_disconnects(gateway: RunningGateway, api_key: str) -> None:
    for _ in range(5):
        sock = _raw_request(
            gateway, api_key, {"model": "slow-model", "messages": [{"role": "user", "content": "x"}]}
        )
        time.sleep(0.05)
        sock.close()
    sock = _raw_request(
        gateway, api_key, {"model": "echo-model", "messages": [{"role": "user", "content": "x"}]}
    )
    sock.settimeout(5)
    assert sock.recv(12) == b"HTTP/1.1 200"
    sock.close()
