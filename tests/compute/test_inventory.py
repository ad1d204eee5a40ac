"""A pool's inventory is read from its real Ray cluster; a cluster that does not answer, or answers
something else, marks its pool down, and placement passes it over saying so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from dizuo.compute.inventory import DOWN, Inventories, parse_inventory
from dizuo.compute.placement import JobRequest, place
from dizuo.config import PoolConfig
from tests.support.ray import RayHead, idle
from tests.support.servers import free_port

NPU = {"accelerator": "ascend-910b", "resources": {"accelerator_resource": "NPU"}}

# One Ray head per test worker: the tests that use it run on one worker (pytest --dist loadgroup).
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


async def test_a_pools_nodes_and_free_accelerators_come_from_its_ray_cluster(
    ray_head: RayHead,
    session: aiohttp.ClientSession,
) -> None:
    await asyncio.to_thread(idle, ray_head)  # earlier tests' jobs on the shared head have ended
    live = PoolConfig.model_validate(
        {"name": "cq-npu", "region": "cq", "ray": ray_head.dashboard, "token": ray_head.token, **NPU}
    )
    gone = PoolConfig.model_validate(
        {"name": "xj-npu", "region": "xj", "ray": f"http://127.0.0.1:{free_port()}", **NPU}
    )
    inventories = await Inventories([live, gone], {}).current(session)
    cq = inventories["cq-npu"]
    assert cq.up and len(cq.total) == 1
    (node,) = cq.total
    assert (node.cpus, node.accelerators) == (2, 2)  # the head's --num-cpus and its pretend NPUs
    assert node.memory_gb > 0
    assert cq.free[0].accelerators == 2  # nothing runs on it
    assert inventories["xj-npu"] == DOWN

    # Placement: the live pool runs a job of two NPUs; three is more than any node holds.
    placed = place(JobRequest(accelerators=2, cpus=1, memory_gb=0.5), [live, gone], inventories)
    assert placed.chosen == "cq-npu"
    assert placed.considered[-1].reason_en == "the pool's cluster does not answer"
    too_big = place(JobRequest(accelerators=3, cpus=1, memory_gb=0.5), [live, gone], inventories)
    assert too_big.chosen is None
    assert too_big.considered[0].reason_en.startswith(
        "no node can hold the job (the largest: 2 accelerators, 2 CPUs"
    )


async def test_a_server_that_is_no_ray_dashboard_marks_its_pool_down(session: aiohttp.ClientSession) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html>502 Bad Gateway</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        pool = PoolConfig.model_validate({"name": "proxy", "ray": f"http://127.0.0.1:{port}"})
        assert (await Inventories([pool], {}).current(session))["proxy"] == DOWN
    finally:
        await runner.cleanup()


def test_only_live_nodes_count_and_what_is_free_is_total_less_used() -> None:
    nodes = {
        "data": {
            "result": {
                "result": [
                    {"state": "ALIVE", "resources_total": {"CPU": 8.0, "memory": 16 * 2**30, "NPU": 4.0}},
                    {"state": "DEAD", "resources_total": {"CPU": 64.0, "memory": 256 * 2**30, "NPU": 8.0}},
                ]
            }
        }
    }
    usage = {"CPU": [6.0, 8.0], "NPU": [3.0, 4.0], "memory": [4 * 2**30, 16 * 2**30]}
    status = {"data": {"clusterStatus": {"loadMetricsReport": {"usage": usage}}}}
    inventory = parse_inventory(nodes, status, "NPU")
    assert [(n.cpus, n.memory_gb, n.accelerators) for n in inventory.total] == [(8, 16, 4)]
    assert [(n.cpus, n.memory_gb, n.accelerators) for n in inventory.free] == [(2, 12, 1)]
    assert parse_inventory({"data": {}}, status, "NPU") == DOWN
    # A cluster whose monitor has not reported usage yet: what its live nodes have is free.
    quiet = {"data": {"clusterStatus": {"loadMetricsReport": {"usage": {}}}}}
    assert [(n.cpus, n.accelerators) for n in parse_inventory(nodes, quiet, "NPU").free] == [(8, 4)]
