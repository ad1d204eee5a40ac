"""Deployments added, changed and removed at run time, through the admin API and the CLI."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from dizuo.accounts.members import create_member, create_token
from dizuo.store import Database
from tests.support.cli import dizuo
from tests.support.platform import GatewayApp, PlatformUnderTest, on, upstream_deployment
from tests.support.upstream import FakeUpstream


def platform_admin(platform: PlatformUnderTest) -> httpx.AsyncClient:
    """The admin API of *platform*, signed in as a new platform admin."""
    name = f"ops-{uuid.uuid4().hex[:6]}"
    create_member(platform.db, name, "correct horse battery", "platform-admin")
    client = platform.http(create_token(platform.db, name))
    client.base_url = httpx.URL(f"{client.base_url}/admin/v1")
    return client


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    """Wait until *check* holds: a change made through the admin API reaches the gateway at its next
    look at the catalog."""
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "the change did not reach the gateway"
        await asyncio.sleep(0.1)


async def test_add_change_remove_through_the_admin_api(
    gateway_app: GatewayApp, upstream: FakeUpstream
) -> None:
    platform = await gateway_app()  # its catalog is looked at with its keys, every 0.2 s
    org = platform.org(balance="1")
    admin, calls = platform_admin(platform), platform.http(org.key)
    alias = f"runtime-{uuid.uuid4().hex[:6]}"

    async def chat() -> httpx.Response:
        body = {"model": alias, "messages": [{"role": "user", "content": "运行时部署"}]}
        return await calls.post("/v1/chat/completions", json=body)

    spec = {
        "name": f"{alias}-a",
        "model": alias,
        "provider": "openai-compatible",
        "base_url": upstream.base_url,
        "upstream_model": "echo",
        "region": "gz",
        "price": {"input": "1", "output": "1"},
    }
    assert (await chat()).status_code == 404
    added = await admin.post("/deployments", json=spec)
    assert added.status_code == 201, added.text
    assert added.json()["region"] == "gz"
    await eventually(lambda: _status(chat(), 200))

    changed = await admin.patch(f"/deployments/{alias}-a", json={"region": "cq", "weight": 4})
    assert changed.status_code == 200 and changed.json()["weight"] == 4
    await eventually(lambda: _region(chat(), "cq"))

    assert (await admin.delete(f"/deployments/{alias}-a")).status_code == 204
    await eventually(lambda: _status(chat(), 404))


async def _status(answer: Awaitable[httpx.Response], status: int) -> bool:
    return (await answer).status_code == status


async def _region(answer: Awaitable[httpx.Response], region: str) -> bool:
    return (await answer).headers.get("x-dizuo-region") == region


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {
                "name": "x1",
                "model": "m",
                "provider": "openai-compatible",
                "price": {"input": -1, "output": 1},
            },
            "price.input",
        ),
        ({"name": "x2", "model": "m", "provider": "qwen", "cloud": "moon"}, "cloud"),
        ({"name": "echo-1", "model": "m", "provider": "qwen"}, "name"),  # defined in the config file
    ],
)
async def test_bad_deployments_are_refused(gateway_app: GatewayApp, body: dict[str, Any], param: str) -> None:
    platform = await gateway_app([upstream_deployment("echo-model", name="echo-1")])
    response = await platform_admin(platform).post("/deployments", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_cli_adds_lists_and_removes(database_url: str, upstream: FakeUpstream, tmp_path: Path) -> None:
    config = tmp_path / "dizuo.yaml"  # the embedded models on (the default), one deployment of the file's
    config.write_text(
        yaml.safe_dump({"deployments": [on(upstream, upstream_deployment("echo-model", name="echo-1"))]}),
        encoding="utf-8",
    )
    migrated = Database(database_url)
    migrated.upgrade()
    migrated.dispose()
    env = {"DIZUO_DATABASE_URL": database_url, "DIZUO_CONFIG": str(config)}

    def deployments(*args: str) -> str:
        result = dizuo("admin", "deployments", *args, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    name = f"cli-dep-{uuid.uuid4().hex[:6]}"
    entry = tmp_path / "dep.yaml"
    entry.write_text(
        f"name: {name}\nmodel: {name}\nprovider: vllm\nbase_url: {upstream.base_url}\n"
        "cloud: private\ndata_class_max: important\n",
        encoding="utf-8",
    )
    assert deployments("add", "--file", str(entry)).strip() == name
    listed = {row["name"]: row for row in orjson.loads(deployments("list", "--json"))}
    assert listed[name]["data_class_max"] == "important" and "echo-1" in listed
    # The embedded models are served too, so they are listed (English-only chat, as the KB relies on).
    assert listed["local-chat"]["model"] == "local/smollm2-135m-instruct" and listed["local-chat"][
        "languages"
    ] == ["en"]
    assert "local-embedding" in listed
    deployments("update", name, "--set", "weight=7", "--set", "limits={rpm: 100}")
    listed = {row["name"]: row for row in orjson.loads(deployments("list", "--json"))}
    assert listed[name]["weight"] == 7 and listed[name]["limits"]["rpm"] == 100
    deployments("remove", name)
    assert name not in {row["name"] for row in orjson.loads(deployments("list", "--json"))}
