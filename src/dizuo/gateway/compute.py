"""``GET /v1/compute/pools``: the compute pools an API key may use, with prices and free capacity.

No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.

A key sees the pools cleared for its data class (and, for core data, those in its organization's
region), each with its prices per hour and what its Ray cluster has now (nodes, accelerators, CPUs,
memory: total and free), read live and kept a few seconds; a pool whose cluster does not answer is
listed as down. Needs the ``compute`` scope.
"""

from collections.abc import Callable
from typing import Annotated, Any

import aiohttp
from fastapi import Depends, FastAPI

from dizuo.accounts.keys import KeyInfo
from dizuo.compute.inventory import Inventories
from dizuo.compute.placement import Inventory, clearance
from dizuo.config import PoolConfig

__all__ = ["PREFIX", "install_compute_routes", "pool_view"]

PREFIX = "/v1/compute"


def usable(key: KeyInfo, pool: PoolConfig) -> bool:
    """Whether *key*'s jobs may run on *pool*, by the rule placement applies."""
    return clearance(pool, key.data_class, key.org_region) is None


def _sum(inventory: Inventory, field: str) -> dict[str, float]:
    return {
        "total": sum(getattr(node, field) for node in inventory.total),
        "free": sum(getattr(node, field) for node in inventory.free),
    }


def pool_view(pool: PoolConfig, inventory: Inventory | None) -> dict[str, Any]:
    """A pool as the API and the CLI show it."""
    up = inventory is not None and inventory.up
    return {
        "name": pool.name,
        "region": pool.region,
        "accelerator": pool.accelerator,
        "accelerator_resource": pool.resources.accelerator_resource,
        "data_class_max": pool.data_class_max,
        "max_job_hours": pool.max_job_hours,
        "price_cny_per_hour": {
            "accelerator": str(pool.price.accelerator_hour),
            "cpu": str(pool.price.cpu_hour),
            "memory_gb": str(pool.price.memory_gb_hour),
        },
        "up": up,
        "capacity": None
        if not up or inventory is None
        else {
            "nodes": len(inventory.total),
            "accelerators": _sum(inventory, "accelerators"),
            "cpus": _sum(inventory, "cpus"),
            "memory_gb": {k: round(v, 2) for k, v in _sum(inventory, "memory_gb").items()},
        },
    }


def install_compute_routes(
    app: FastAPI, scoped: Any, pools: list[PoolConfig], inventories: Inventories
) -> None:
    """Add the compute routes to *app* (the knowledge-base app: its *scoped* makes the API-key
    dependency, its HTTP client reads the clusters)."""
    auth = scoped("compute")
    session: Callable[[], aiohttp.ClientSession] = app.state.session

    @app.get(PREFIX + "/pools")
    async def list_pools(who: Annotated[Any, Depends(auth)]) -> dict[str, Any]:
        shown = [pool for pool in pools if usable(who.info, pool)]
        current = await inventories.current(session()) if shown else {}
        return {"object": "list", "data": [pool_view(pool, current.get(pool.name)) for pool in shown]}
