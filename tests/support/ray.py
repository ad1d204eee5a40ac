"""A real single-node Ray head on loopback, with pretend accelerators (``{"NPU": 2}``) on a CPU
machine: what a pool's cluster is in the compute tests. It is the platform's own embedded head
(:class:`dizuo.compute.head.EmbeddedHead`): free ports, a folder of its own, Ray's token
authentication, stopped by its process group."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dizuo.compute.head import EmbeddedHead
from dizuo.errors import ConfigError

__all__ = ["RayHead", "idle", "ray_head"]


@dataclass(frozen=True)
class RayHead:
    dashboard: str  # the address of its Ray Jobs API and dashboard: http://127.0.0.1:PORT
    resources: dict[str, float]
    token: str  # Ray's token authentication is on: every request carries it

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def idle(head: RayHead, seconds: float = 60) -> None:
    """Wait until the head's cluster reports none of its resources in use: jobs of earlier tests on
    the shared head give theirs back a few seconds after they end (Ray reports usage every few)."""
    deadline = time.monotonic() + seconds
    while True:
        request = urllib.request.Request(f"{head.dashboard}/api/cluster_status", headers=head.headers)
        with urllib.request.urlopen(request, timeout=5) as answer:
            usage = json.loads(answer.read())["data"]["clusterStatus"]["loadMetricsReport"]["usage"]
        if all(float(used) == 0 for name, (used, _total) in usage.items() if name in head.resources):
            return
        assert time.monotonic() < deadline, f"the Ray head is still busy: {usage}"
        time.sleep(0.5)


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """One Ray head for this test worker's session: 2 CPUs and 2 NPUs."""
    try:
        EmbeddedHead.executable()
    except ConfigError:
        if os.environ.get("CI"):
            pytest.fail("Ray is not installed: scripts/install.sh installs the compute extra")
        pytest.skip("Ray is not installed here (scripts/install.sh installs the compute extra)")
    head = EmbeddedHead(resources={"NPU": 2}, cpus=2, token=secrets.token_urlsafe(24))
    address = head.start(90)
    shared = RayHead(address, {"CPU": 2.0, "NPU": 2.0}, str(head.token))
    try:
        yield shared
    finally:
        kept = None if _answers(shared) else _keep_logs(head)
        head.stop()
    if kept is not None:
        pytest.fail(f"the shared Ray head stopped answering during the session; its logs: {kept}")


def _answers(head: RayHead) -> bool:
    try:
        request = urllib.request.Request(f"{head.dashboard}/api/version", headers=head.headers)
        with urllib.request.urlopen(request, timeout=10) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _keep_logs(head: EmbeddedHead) -> Path | None:
    """Copy a dead head's logs under test-artifacts/ before its folder is removed."""
    if head.folder is None:
        return None
    target = Path("test-artifacts") / f"ray-head-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    for log in head.folder.glob("**/logs/*"):
        if log.is_file():
            (target / log.name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(log, target / log.name)
    start = head.folder / "ray-start.log"
    if start.is_file():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(start, target / start.name)
    return target.resolve()
