"""The embedded pool's Ray: a single-node head on loopback that ``dizuo serve`` starts and stops.

Started as one process group (``ray start --head --block``) on a block of free ports of its own
(below the kernel's ephemeral range, apart from other heads' blocks on the machine) with its
files in a short temporary folder of its own (Ray's socket paths must fit 107 bytes), and stopped by
that group: never ``ray stop``, which would stop every Ray process on the host, another tenant's
head included. Its dashboard (the Ray Jobs API) is the pool's address. With a *token*, the head runs Ray's token
authentication (``RAY_AUTH_MODE=token``, Ray 2.5x and later): every request to its dashboard and Jobs
API must carry ``Authorization: Bearer <token>``, so another local user cannot submit code to it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

from dizuo.compute.inventory import bearer
from dizuo.compute.watchdog import alive, stop_group
from dizuo.errors import ConfigError

__all__ = ["EmbeddedHead"]

PORTS = (
    "port", "dashboard-port", "ray-client-server-port", "node-manager-port", "object-manager-port",
    "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port",
)  # fmt: skip
WORKER_PORTS = 50  # Ray's workers listen on a range of their own


BLOCK = len(PORTS) + WORKER_PORTS + 1  # one head's ports: its own, then its workers'
RESERVED = Path(tempfile.gettempdir()) / "dizuo-ray-ports.json"  # the blocks this machine's heads hold


def _ephemeral() -> tuple[int, int]:
    """The kernel's range for ports chosen by bind(0) and outgoing connections (Linux's default)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def _held() -> Iterator[dict[str, list[int]]]:
    """The blocks this machine's heads hold (``{token: [first port, holder's pid]}``), under the
    registry's lock, without those of processes that are gone; written back when the block ends
    (not when it raises)."""
    with RESERVED.open("a+", encoding="utf-8") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        file.seek(0)
        try:
            held = {k: v for k, v in json.loads(file.read() or "{}").items() if alive(v[1])}
        except (ValueError, TypeError, IndexError):
            held = {}
        yield held
        file.seek(0)
        file.truncate()
        file.write(json.dumps(held))


def _reserve(token: str) -> int:
    """The first port of a block of :data:`BLOCK` free ports for one head, held under *token* in
    :data:`RESERVED` until :func:`_release`. Blocks lie outside the kernel's ephemeral range, where
    no bind(0) or outgoing connection takes a port between its choice and Ray's bind, and apart from
    the blocks of this machine's other heads (entries of processes that are gone are dropped)."""
    low, high = _ephemeral()
    first, last = (10000, low) if low - 10000 >= 10 * BLOCK else (high + 1, 65535)
    with _held() as held:
        taken = [v[0] for v in held.values()]
        for _ in range(500):
            start = random.randrange(first, last - BLOCK)
            if any(abs(start - other) < BLOCK for other in taken):
                continue
            if all(_bindable(port) for port in range(start, start + BLOCK)):
                held[token] = [start, os.getpid()]
                return start
        raise ConfigError(
            f"no {BLOCK} free ports in a row for the Ray head / 找不到 Ray 头节点所需的空闲端口"
        )


def _release(token: str) -> None:
    with _held() as held:
        held.pop(token, None)


class EmbeddedHead:
    """A Ray head of this process's own. *resources*: custom resources it announces (a CPU machine's
    pretend accelerators, ``{"NPU": 2}``); *cpus*: the CPUs it offers (default: Ray counts them)."""

    def __init__(
        self,
        resources: Mapping[str, float] | None = None,
        cpus: float | None = None,
        token: str | None = None,
    ) -> None:
        self.resources = dict(resources or {})
        self.cpus = cpus
        self.token = token
        self.address: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._folder: Path | None = None
        self._log = Path(os.devnull)  # what ray start printed
        self._block: str | None = None  # its ports' entry in RESERVED

    @property
    def folder(self) -> Path | None:
        """The head's folder (its logs under ``session_latest/logs``) while it runs."""
        return self._folder

    @staticmethod
    def executable() -> Path:
        """The ``ray`` command beside this Python; ConfigError naming the fix when it is missing."""
        ray = Path(sys.executable).parent / "ray"
        if not ray.exists():
            raise ConfigError(
                "资源池 ray: embedded 需要安装 Ray：pip install 'dizuo[compute]'（scripts/install.sh 会安装）/ "
                "a pool with ray: embedded needs Ray: pip install 'dizuo[compute]' (scripts/install.sh installs it)"
            )
        return ray

    def start(self, seconds: float = 120, *, watch: int | None = None) -> str:
        """Start the head and wait until its Jobs API answers with its node; return its address.
        With *watch* (a pid, the server's), a watchdog stops the head once that process is gone,
        however it ends (:mod:`dizuo.compute.watchdog`)."""
        ray = self.executable()
        self._folder = Path(tempfile.mkdtemp(prefix="dizuo-ray-", dir="/tmp"))
        self._block = self._folder.name
        start = _reserve(self._block)
        ports = dict(zip(PORTS, range(start, start + len(PORTS)), strict=True))
        low = start + len(PORTS)  # the workers' range, apart from the head's own ports (ray start checks)
        command = [
            str(ray), "start", "--head", "--block", "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
            *(f"--{name}={port}" for name, port in ports.items()),
            f"--min-worker-port={low}", f"--max-worker-port={low + WORKER_PORTS}",
            "--disable-usage-stats", f"--temp-dir={self._folder}",
        ]  # fmt: skip
        if self.cpus is not None:
            command.append(f"--num-cpus={self.cpus:g}")
        if self.resources:
            command.append(f"--resources={json.dumps(self.resources)}")
        env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
        env.pop("RAY_AUTH_TOKEN", None)
        env["RAY_AUTH_MODE"] = "disabled"
        if self.token is not None:
            env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}
        self._log = self._folder / "ray-start.log"
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: what stop() stops
            )
        if watch is not None:
            self._watchdog = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dizuo.compute.watchdog",
                    str(watch),
                    str(self._process.pid),
                    str(self._folder),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # outside the head's group and the server's
            )
        address = f"http://127.0.0.1:{ports['dashboard-port']}"
        try:
            self._wait(f"{address}/api/v0/nodes", seconds)
        except BaseException:
            self.stop()
            raise
        self.address = address
        return address

    def _wait(self, url: str, seconds: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                said = self._log.read_text(errors="replace").strip().splitlines()[-3:]
                raise ConfigError(
                    f"ray start exited with status {self._process.returncode} / Ray 头节点未能启动: "
                    + " | ".join(said)
                )
            headers = bearer(self.token)
            try:
                with urllib.request.urlopen(
                    urllib.request.Request(url, headers=headers), timeout=1
                ) as answer:
                    if json.loads(answer.read())["data"]["result"]["result"]:
                        return
            except (OSError, ValueError, KeyError, TypeError):
                pass
            time.sleep(0.3)
        raise ConfigError(
            f"the Ray head did not answer at {url} within {seconds:.0f} s / Ray 头节点未在时限内就绪"
        )

    def stop(self) -> None:
        """Stop the head's process group and remove its folder (:func:`~dizuo.compute.watchdog.stop_group`)."""
        process, self._process, self.address = self._process, None, None
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        folder, self._folder = self._folder, None
        if process is not None and folder is not None:
            stop_group(process.pid, folder, lambda grace: _exited(process, grace))
        elif folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        block, self._block = self._block, None
        if block is not None:
            _release(block)


def _exited(process: subprocess.Popen[bytes], seconds: float) -> bool:
    """Whether the launcher exited (and was reaped) within *seconds*."""
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        return False
    return True
