"""MCP connections kept between an agent's calls (``dizuo.agents.mcp``), with the real ``mcp`` SDK and
a real stdio server (``mcp_parts.py``): one process serves the calls that follow within the idle
time, one per calling organization; an idle, broken or closed connection's process ends."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from dizuo.agents.mcp import McpConnections
from dizuo.agents.service import McpEndpoint

SERVER = Path(__file__).with_name("mcp_parts.py")


def parts(starts: Path, name: str = "parts-db") -> McpEndpoint:
    return McpEndpoint(name, (sys.executable, str(SERVER), "--starts", str(starts)), None)


def started(starts: Path) -> list[int]:
    return [int(pid) for pid in starts.read_text().split()] if starts.exists() else []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A process that ended but was not reaped yet is a zombie: gone for our purpose.
    with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


async def ended(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def test_calls_within_the_idle_time_share_one_server_process(tmp_path: Path) -> None:
    connections = McpConnections(idle_seconds=60)
    starts = tmp_path / "starts"
    try:
        for part in ("A-1", "B-2", "C-3"):
            client, tools = await connections.tools("org-a/org-a", parts(starts), timeout=30)
            assert {tool.name for tool in tools} == {"part_history", "broken"}
            with connections.using(client):
                result = await client.call_tool("part_history", {"part": part})
            assert f"{part}：2025 年 3 月批次柱塞副卡滞 2 起" in result.content[0].text
        assert len(started(starts)) == 1
        # Another calling organization gets a process of its own.
        await connections.tools("org-a/org-b", parts(starts), timeout=30)
        assert len(started(starts)) == 2
    finally:
        await connections.close()
    assert all([await ended(pid) for pid in started(starts)])


async def test_an_idle_connection_is_closed_and_the_next_call_starts_the_server_again(tmp_path: Path) -> None:
    connections = McpConnections(idle_seconds=0.5)
    starts = tmp_path / "starts"
    try:
        await connections.tools("org-a/org-a", parts(starts), timeout=30)
        (first,) = started(starts)
        assert await ended(first)  # idle past 0.5 s: closed, its process gone
        await connections.tools("org-a/org-a", parts(starts), timeout=30)
        assert len(started(starts)) == 2
    finally:
        await connections.close()


async def test_a_broken_connection_is_dropped_and_a_new_registration_replaces_the_old(tmp_path: Path) -> None:
    connections = McpConnections(idle_seconds=60)
    starts = tmp_path / "starts"
    try:
        client, _ = await connections.tools("org-a/org-a", parts(starts), timeout=30)
        (first,) = started(starts)
        connections.drop(client)  # what a call does when the server broke off
        assert await ended(first)
        await connections.tools("org-a/org-a", parts(starts), timeout=30)
        assert len(started(starts)) == 2
        # The server's registration changed (another command): the old process goes.
        other = tmp_path / "other"
        await connections.tools("org-a/org-a", parts(other), timeout=30)
        assert await ended(started(starts)[1]) and len(started(other)) == 1
    finally:
        await connections.close()


async def test_a_server_that_cannot_start_raises_and_is_not_kept(tmp_path: Path) -> None:
    connections = McpConnections(idle_seconds=60)
    missing = McpEndpoint("gone-db", (sys.executable, str(tmp_path / "missing.py")), None)
    try:
        for _ in range(2):  # tried again on the next call, not remembered as live
            try:
                await connections.tools("org-a/org-a", missing, timeout=10)
            except Exception:  # noqa: BLE001  (the SDK's error for a process that exits at once)
                pass
            else:
                raise AssertionError("a server that exits at once offered tools")
        assert connections.started == 2
    finally:
        await connections.close()
