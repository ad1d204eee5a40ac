"""A real single-node Ray head on loopback, with pretend accelerators (``{"NPU": 2}``) on a CPU
machine: what a pool's cluster is in the compute tests.

Every port it opens is chosen free (two test workers start heads at once), its files live in a
temporary folder of its own, and it is stopped by its process group, never ``ray stop`` (which
stops every Ray process on the host).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import free_port

__all__ = ["RayHead", "ray_head"]

RAY = Path(sys.executable).parent / "ray"


@dataclass(frozen=True)
class RayHead:
    dashboard: str  # the address of its Ray Jobs API and dashboard: http://127.0.0.1:PORT
    resources: dict[str, float]


def _wait(url: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ray start exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                listed = json.loads(answer.read())["data"]["result"]["result"]
                if listed:
                    return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the Ray head did not answer at {url} within {seconds:.0f} s")


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """One Ray head for this test worker's session."""
    if not RAY.exists():
        if os.environ.get("CI"):
            pytest.fail("Ray is not installed: scripts/install.sh installs the compute extra")
        pytest.skip("Ray is not installed here (scripts/install.sh installs the compute extra)")
    folder = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths must fit
    resources = {"NPU": 2.0}
    ports = {name: free_port() for name in (
        "port", "dashboard-port", "ray-client-server-port", "node-manager-port", "object-manager-port",
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
        "metrics-export-port",
    )}  # fmt: skip
    low = free_port()
    command = [
        str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
        *(f"--{name}={port}" for name, port in ports.items()),
        f"--min-worker-port={low}", f"--max-worker-port={low + 50}",
        "--num-cpus=2", f"--resources={json.dumps(resources)}", "--object-store-memory=100000000",
        "--disable-usage-stats", f"--temp-dir={folder}",
    ]  # fmt: skip
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    dashboard = f"http://127.0.0.1:{ports['dashboard-port']}"
    try:
        _wait(f"{dashboard}/api/v0/nodes", process, 90)
        yield RayHead(dashboard, {"CPU": 2.0, **resources})
    finally:
        # The head's processes share its process group: SIGTERM stops them within a second; the
        # launcher outlives them under --block and goes with the SIGKILL after.
        for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        shutil.rmtree(folder, ignore_errors=True)
