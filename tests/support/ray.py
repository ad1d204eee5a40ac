"""A real single-node Ray head on loopback, with pretend accelerators (``{"NPU": 2}``) on a CPU
machine: what a pool's cluster is in the compute tests. It is the platform's own embedded head
(:class:`dizuo.compute.head.EmbeddedHead`): free ports, a folder of its own, stopped by its process
group."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from dizuo.compute.head import EmbeddedHead
from dizuo.errors import ConfigError

__all__ = ["RayHead", "ray_head"]


@dataclass(frozen=True)
class RayHead:
    dashboard: str  # the address of its Ray Jobs API and dashboard: http://127.0.0.1:PORT
    resources: dict[str, float]


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """One Ray head for this test worker's session: 2 CPUs and 2 NPUs."""
    try:
        EmbeddedHead.executable()
    except ConfigError:
        if os.environ.get("CI"):
            pytest.fail("Ray is not installed: scripts/install.sh installs the compute extra")
        pytest.skip("Ray is not installed here (scripts/install.sh installs the compute extra)")
    head = EmbeddedHead(resources={"NPU": 2}, cpus=2)
    address = head.start(90)
    try:
        yield RayHead(address, {"CPU": 2.0, "NPU": 2.0})
    finally:
        head.stop()
