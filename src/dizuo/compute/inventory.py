"""What each pool's Ray cluster has: its nodes' resources and what is free now, read over HTTP.

Two calls to the cluster's dashboard (the address of its Ray Jobs API): the state API's node list
(``/api/v0/nodes``: each live node's total CPUs, memory and custom resources, the pool's accelerator
among them) and the cluster status (``/api/cluster_status``: resources used and total across the
cluster, from which what is free now is taken as one node's worth). No ``import ray``: the server
reads clusters of any Ray version that serves these, and a pool whose cluster does not answer within
its timeout is marked down (placement passes it over with that reason), not removed. Readings are
kept a few seconds (:class:`Inventories`), so placing many jobs does not ask every cluster each time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import orjson

from dizuo.compute.placement import Inventory, Node
from dizuo.config import PoolConfig, resolve_secret

__all__ = ["Inventories", "bearer", "read_inventory"]

GIB = 2**30
DOWN = Inventory(up=False)


def _node(resources: Mapping[str, Any], accelerator: str) -> Node:
    return Node(
        float(resources.get("CPU", 0)),
        float(resources.get("memory", 0)) / GIB,
        float(resources.get(accelerator, 0)),
    )


def parse_inventory(nodes: Any, status: Any, accelerator: str, queued: int = 0) -> Inventory:
    """An inventory from the two answers' JSON (*nodes*: the state API's, *status*: the cluster
    status'); DOWN when they are not what a Ray dashboard answers."""
    try:
        listed = nodes["data"]["result"]["result"]
        usage = status["data"]["clusterStatus"]["loadMetricsReport"]["usage"]
    except (KeyError, TypeError):
        return DOWN
    total = tuple(
        _node(node.get("resources_total") or {}, accelerator)
        for node in listed
        if isinstance(node, dict) and node.get("state") == "ALIVE"
    )
    # A resource the cluster status does not report yet (its monitor reports a few seconds after
    # the head starts) is taken as wholly free: nothing has run there to use it.
    free_resources: dict[str, float] = {
        "CPU": sum(node.cpus for node in total),
        "memory": sum(node.memory_gb for node in total) * GIB,
        accelerator: sum(node.accelerators for node in total),
    }
    for name, pair in (usage or {}).items():
        if isinstance(pair, list) and len(pair) == 2:
            free_resources[name] = max(0.0, float(pair[1]) - float(pair[0]))
    return Inventory(total, (_node(free_resources, accelerator),) if total else (), True, queued)


async def read_inventory(
    session: aiohttp.ClientSession,
    pool: PoolConfig,
    address: str,
    timeout: float = 3.0,
    token: str | None = None,
) -> Inventory:
    """Read *pool*'s cluster at *address* (its dashboard, ``http://host:8265``, with its *token*);
    DOWN when it does not answer in *timeout* seconds or answers something else."""
    limit = aiohttp.ClientTimeout(total=timeout)
    headers = bearer(token)
    try:
        async with asyncio.timeout(timeout):
            answers = []
            for path in ("/api/v0/nodes?detail=1&limit=10000", "/api/cluster_status"):
                async with session.get(address + path, timeout=limit, headers=headers) as response:
                    if response.status != 200:
                        return DOWN
                    answers.append(orjson.loads(await response.read()))
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        return DOWN
    return parse_inventory(answers[0], answers[1], pool.resources.accelerator_resource)


def bearer(token: str | None) -> dict[str, str]:
    """The header that authenticates to a Ray cluster with token authentication (none without)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


class Inventories:
    """Each pool's inventory, read at most every *ttl* seconds (all pools at once, concurrently).
    Also where each pool's cluster is and its token: an embedded pool's are its own head's."""

    def __init__(
        self,
        pools: Sequence[PoolConfig],
        addresses: Mapping[str, str],
        ttl: float = 5.0,
        *,
        embedded: str | None = None,
        embedded_token: str | None = None,
    ) -> None:
        self.addresses = dict(addresses)  # pool name → dashboard address, where not the pool's own
        self.embedded = embedded  # the head dizuo serve started: every ray: embedded pool's cluster
        self.embedded_token = embedded_token
        self.ttl = ttl
        self._read: dict[str, Inventory] = {}
        self._lock = asyncio.Lock()
        self.set_pools(pools)

    def set_pools(self, pools: Sequence[PoolConfig]) -> None:
        """Follow these pools from now on (the catalog changed): read them afresh on the next look."""
        self.pools = list(pools)
        self.tokens = {
            pool.name: self.embedded_token
            if pool.ray == "embedded"
            else resolve_secret(pool.token, f"pools ({pool.name})", "token")
            for pool in pools
        }
        self._at = float("-inf")

    async def current(self, session: aiohttp.ClientSession) -> dict[str, Inventory]:
        """Every pool's inventory, read again when the last reading is older than the ttl."""
        async with self._lock:
            if time.monotonic() - self._at >= self.ttl:
                readings = await asyncio.gather(*(self._one(session, pool) for pool in self.pools))
                self._read = {pool.name: reading for pool, reading in zip(self.pools, readings, strict=True)}
                self._at = time.monotonic()
            return dict(self._read)

    def address(self, pool: PoolConfig) -> str | None:
        """The address of *pool*'s Ray Jobs API and dashboard; None for an embedded pool whose head
        is not running."""
        return self.addresses.get(pool.name) or (pool.ray if pool.ray != "embedded" else self.embedded)

    async def _one(self, session: aiohttp.ClientSession, pool: PoolConfig) -> Inventory:
        address = self.address(pool)
        if address is None:
            return DOWN  # an embedded pool whose head is not running
        return await read_inventory(session, pool, address, token=self.token(pool))

    def token(self, pool: PoolConfig) -> str | None:
        """The token of *pool*'s cluster (None: it runs without token authentication)."""
        return self.tokens.get(pool.name)
