"""Deployments added, changed and removed at run time, through the admin API and the CLI."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from dizuo.accounts.members import create_member, create_token
from dizuo.store import Database
from tests.conftest import RunningGateway
from tests.support.calls import post_chat
from tests.support.cli import dizuo
from tests.support.upstream import FakeUpstream


@pytest.fixture(scope="module")
def admin_token(gateway: RunningGateway) -> str:
    db = Database(gateway.settings.resolved_database_url)
    name = f"ops-{uuid.uuid4().hex[:6]}"
    create_member(db, name, "correct horse battery", "platform-admin")
    token = create_token(db, name)
    db.dispose()
    return token


def admin(gateway: RunningGateway, token: str, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(
        method,
        f"{gateway.url}/admin/v1{path}",
        json=body,
        timeout=30,
        headers={"Authorization": f"Bearer {token}"},
    )


def chat(gateway: RunningGateway, key: str, model: str) -> httpx.Response:
    return post_chat(gateway, key, model, "运行时部署")


def eventually(check: Any, seconds: float = 5.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "the change did not reach the gateway"
        time.sleep(0.1)


def test_add_change_remove_through_the_admin_api(
    gateway: RunningGateway, admin_token: str, api_key: str, upstream: FakeUpstream
) -> None:
    alias = f"runtime-{uuid.uuid4().hex[:6]}"
    spec = {
        "name": f"{alias}-a",
        "model": alias,
        "provider": "openai-compatible",
        "base_url": upstream.base_url,
        "upstream_model": "echo",
        "region": "gz",
        "price": {"input": "1", "output": "1"},
    }
    added = admin(gateway, admin_token, "POST", "/deployments", spec)
    assert added.status_code == 201, added.text
    assert added.json()["region"] == "gz"
    eventually(lambda: chat(gateway, api_key, alias).status_code == 200)

    changed = admin(gateway, admin_token, "PATCH", f"/deployments/{alias}-a", {"region": "cq", "weight": 4})
    assert changed.status_code == 200 and changed.json()["weight"] == 4
    eventually(lambda: chat(gateway, api_key, alias).headers.get("x-dizuo-region") == "cq")

    assert admin(gateway, admin_token, "DELETE", f"/deployments/{alias}-a").status_code == 204
    eventually(lambda: chat(gateway, api_key, alias).status_code == 404)


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
def test_bad_deployments_are_refused(
    gateway: RunningGateway, admin_token: str, body: dict[str, Any], param: str
) -> None:
    response = admin(gateway, admin_token, "POST", "/deployments", body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_cli_adds_lists_and_removes(gateway: RunningGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    env = {
        "DIZUO_DATABASE_URL": gateway.settings.resolved_database_url,
        "DIZUO_CONFIG": str(gateway.settings.config),
    }

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
