"""``GET /v1/compute/pools`` and ``dizuo compute pools``: the pools a key may use, with prices and
what their Ray clusters have free now; ``dizuo serve`` starts the embedded pool's Ray head and stops
it when it stops."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from dizuo.accounts import create_key
from tests.support.cli import dizuo
from tests.support.platform import GatewayApp
from tests.support.ray import RayHead, idle
from tests.support.servers import free_port, serving_first_key

NPU = {"accelerator": "ascend-910b", "resources": {"accelerator_resource": "NPU"}}

# One Ray head per test worker: the tests that use it run on one worker (pytest --dist loadgroup).
pytestmark = pytest.mark.xdist_group("ray")


async def test_a_key_sees_the_pools_cleared_for_its_data_with_prices_and_free_capacity(
    gateway_app: GatewayApp,
    ray_head: RayHead,
) -> None:
    await asyncio.to_thread(idle, ray_head)  # earlier tests' jobs on the shared head have ended
    platform = await gateway_app(
        pools=[
            {
                "name": "cq-npu",
                "region": "cq",
                "ray": ray_head.dashboard,
                "token": ray_head.token,
                "data_class_max": "important",
                "price": {"accelerator_hour": "9.80", "cpu_hour": "0.12"},
                **NPU,
            },
            {"name": "xj-npu", "region": "xj", "ray": f"http://127.0.0.1:{free_port()}", **NPU},
        ]
    )
    org = platform.org(scopes=["compute"])
    listed = await platform.http(org.key).get("/v1/compute/pools")
    assert listed.status_code == 200, listed.text
    pools = {pool["name"]: pool for pool in listed.json()["data"]}
    cq = pools["cq-npu"]
    assert cq["up"] is True and cq["price_cny_per_hour"] == {
        "accelerator": "9.80",
        "cpu": "0.12",
        "memory_gb": "0",
    }
    assert cq["capacity"]["nodes"] == 1
    assert cq["capacity"]["accelerators"] == {"total": 2, "free": 2}  # the head's pretend NPUs
    assert (pools["xj-npu"]["up"], pools["xj-npu"]["capacity"]) == (False, None)

    # A key whose data is important sees only the pool cleared for it; one without the scope, none.
    important = create_key(platform.db, org.name, data_class="important", scopes=["compute"]).key
    seen = (await platform.http(important).get("/v1/compute/pools")).json()["data"]
    assert [pool["name"] for pool in seen] == ["cq-npu"]
    models_only = create_key(platform.db, org.name, scopes=["models"]).key
    refused = await platform.http(models_only).get("/v1/compute/pools")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "scope_missing"


def test_serve_starts_the_embedded_pools_ray_head_and_stops_it(tmp_path: Path) -> None:
    try:
        from dizuo.compute.head import EmbeddedHead

        EmbeddedHead.executable()
    except Exception:
        if os.environ.get("CI"):
            raise
        pytest.skip("Ray is not installed here (scripts/install.sh installs the compute extra)")
    config = tmp_path / "dizuo.yaml"
    config.write_text("local: false\npools:\n  - {name: local, price: {cpu_hour: 0.05}}\n", encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZUO_")}
    env |= {"DIZUO_DATA_DIR": str(tmp_path / "data"), "DIZUO_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "dizuo", "serve", "--config", str(config), "--port", str(port)]
    before = set(Path("/tmp").glob("dizuo-ray-*"))
    with serving_first_key(command, port, env, cwd=tmp_path, seconds=180) as key:
        base = f"http://127.0.0.1:{port}/v1"
        said = dizuo("compute", "pools", "--json", "--base-url", base, "--api-key", key)
        assert said.returncode == 0, said.stderr
        (pool,) = json.loads(said.stdout)
        assert pool["name"] == "local" and pool["up"] is True and pool["capacity"]["cpus"]["total"] >= 1
        text = dizuo("compute", "pools", "--base-url", base, "--api-key", key).stdout
        assert text.startswith("local\tdefault\tCPU\t¥0/卡·时 ¥0.05/核·时"), text
        new = set(Path("/tmp").glob("dizuo-ray-*")) - before
        (folder,) = new  # the head's own folder
        assert _running(folder)  # its raylet, GCS, dashboard
    # The server stopped (SIGTERM, which uvicorn re-raises after its shutdown): its head went with it.
    deadline = time.monotonic() + 20
    while (folder.exists() or _running(folder)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not folder.exists() and not _running(folder)


def _running(folder: Path) -> list[int]:
    """The processes whose command line names *folder*."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(folder).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
