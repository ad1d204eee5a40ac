"""Serving an ASGI app on a real loopback socket from a background thread."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from dizuo.accounts import create_key, create_org
from dizuo.accounts.tables import Organization
from dizuo.billing import parse_cny
from dizuo.billing.service import topup
from dizuo.store import Database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # as `dizuo serve` runs it: the platform applies them where they count
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="dizuo-test-server")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def one_deployment_config(
    path: Path,
    base_url: str,
    *,
    name: str = "echo-1",
    model: str = "echo-model",
    upstream_model: str = "echo",
    price: dict[str, str] | None = None,
) -> Path:
    """Write a `dizuo serve` config at *path* with one OpenAI-compatible deployment at *base_url*
    (¥1.5/M in, ¥2/M out unless *price* says), no local models."""
    deployment = {
        "name": name,
        "model": model,
        "provider": "openai-compatible",
        "base_url": base_url,
        "upstream_model": upstream_model,
        "price": price or {"input": "1.5", "output": "2"},
    }
    path.write_text(yaml.safe_dump({"local": False, "deployments": [deployment]}), encoding="utf-8")
    return path


def funded_org(
    database_url: str,
    prefix: str,
    limits: tuple[int | None, int | None, int | None] = (None, None, None),
    yuan: str = "1",
) -> tuple[Database, Organization, str]:
    """A new organization (named *prefix*-…) with *yuan* on its wallet and a key with *limits* (RPM,
    TPM, concurrency), in the migrated database at *database_url*: the database (to dispose of), the
    organization and the key."""
    db = Database(database_url)
    db.upgrade()
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    org = create_org(db, name)
    topup(db, name, parse_cny(yuan))
    return db, org, create_key(db, name, limits=limits).key


def wait_ready(url: str, process: subprocess.Popen[Any], seconds: float = 60) -> None:
    """Wait until the `dizuo serve` *process* answers ``GET {url}/readyz`` with 200; fail if it ends
    or takes longer than *seconds*."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, "dizuo serve ended before it was ready"
        assert time.monotonic() < deadline, "dizuo serve did not become ready"
        time.sleep(0.1)


FIRST_KEY = re.compile(r"dz-[A-Za-z0-9_-]{43}")


@contextmanager
def serving_first_key(
    command: list[str], port: int, env: dict[str, str], cwd: Path | None = None, seconds: float = 90
) -> Iterator[str]:
    """Run `dizuo serve` as *command* (listening on *port*) as a user does; yield the first API key
    it printed once it is ready, and stop it after."""
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        key = process.stdout.readline().strip()
        assert FIRST_KEY.fullmatch(key), f"serve printed {key!r} instead of the first key"
        wait_ready(f"http://127.0.0.1:{port}", process, seconds)
        yield key
    finally:
        process.terminate()
        process.wait(30)


def start_server(
    config: Path, home: Path, database_url: str, port: int, **settings: str
) -> subprocess.Popen[bytes]:
    """Start `dizuo serve` in its own process and wait until it is ready; *settings* are more
    ``DIZUO_*`` variables by their lower-case names."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZUO_")}
    env.update(
        {"DIZUO_DATA_DIR": str(home), "DIZUO_DATABASE_URL": database_url, "DIZUO_LOG_LEVEL": "warning"}
    )
    env.update({f"DIZUO_{name.upper()}": value for name, value in settings.items()})
    process = subprocess.Popen(
        [sys.executable, "-m", "dizuo", "serve", "--config", str(config), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_ready(f"http://127.0.0.1:{port}", process)
    return process
