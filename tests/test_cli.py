"""The two commands as a user runs them: `dizuo serve` in its own process, and `dizuo admin`."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from dizuo.accounts import revoke_key
from dizuo.app import load_settings, prepare
from dizuo.routing import LOCAL_EMBEDDING
from dizuo.store import Database
from tests.support.servers import free_port, serving_first_key

DIZUO = [sys.executable, "-m", "dizuo"]
KEY = re.compile(r"^dz-[A-Za-z0-9_-]{43}$")


def env_for(home: Path, database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZUO_")}
    env["DIZUO_DATA_DIR"] = str(home)
    if database_url:
        env["DIZUO_DATABASE_URL"] = database_url
    return env


def test_create_key_prints_only_the_key(tmp_path: Path) -> None:
    result = subprocess.run(
        [*DIZUO, "admin", "create-key", "--org", "default"],
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    assert KEY.match(result.stdout.strip()), result.stdout
    assert result.stdout.count("\n") == 1


def test_create_key_for_unknown_org_fails_clearly(tmp_path: Path) -> None:
    result = subprocess.run(
        [*DIZUO, "admin", "create-key", "--org", "acme"],
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "dizuo admin create-org acme" in result.stderr


def test_bad_config_fails_before_serving(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("deployments:\n  - {name: a, model: m, provider: nope}\n", encoding="utf-8")
    result = subprocess.run(
        [*DIZUO, "serve", "--config", str(config), "--port", str(free_port())],
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "bad.yaml: deployments[0] (a): provider: unknown provider 'nope'" in result.stderr


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["serve", "--port", "0"], "settings.redis_url"),
        (["admin", "wallet", "--org", "default", "--json"], "DIZUO_REDIS_URL"),
    ],
)
def test_a_redis_url_the_gateway_cannot_use_stops_every_command_clearly(
    tmp_path: Path, command: list[str], shown: str
) -> None:
    env = env_for(tmp_path) | {"DIZUO_REDIS_URL": "rediss://cache.example:6380/0?ssl_min_version=3"}
    result = subprocess.run([*DIZUO, *command], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert shown in result.stderr and "ssl_min_version not supported" in result.stderr
    assert "Traceback" not in result.stderr and "pydantic.dev" not in result.stderr


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Run `dizuo serve --workers 2` as a user would; yield its URL and the first key it printed."""
    port = free_port()
    command = [*DIZUO, "serve", "--port", str(port), "--workers", "2"]
    with serving_first_key(command, port, env_for(tmp_path)) as key:
        yield f"http://127.0.0.1:{port}", key


def test_serve_with_workers_answers_with_the_printed_key(served: tuple[str, str]) -> None:
    url, key = served
    with openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as client:
        assert LOCAL_EMBEDDING in {m.id for m in client.models.list()}
        # Several calls so that both workers answer; each loaded the key and the encoder.
        for _ in range(4):
            vectors = client.embeddings.create(model=LOCAL_EMBEDDING, input="底座")
            assert len(vectors.data[0].embedding) == 512
    metrics = httpx.get(f"{url}/metrics").text
    assert (
        'dizuo_requests_total{endpoint="embeddings",model="local/use-multilingual-v3",status="200"} 4.0'
        in metrics
    )


def test_providers_lists_presets_with_prices() -> None:
    result = subprocess.run([*DIZUO, "providers"], capture_output=True, text=True, check=True)
    assert "deepseek" in result.stdout and "https://api.deepseek.com/v1" in result.stdout
    assert "¥" in result.stdout


def served_line(home: Path, stream: str, wanted: str, seconds: float = 60) -> str:
    """Start `dizuo serve` on a free port with its data in *home*; return the first line of its
    *stream* ("stdout" or "stderr") containing *wanted*, then stop it."""
    pipes = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, stream: subprocess.PIPE}
    process = subprocess.Popen(
        [*DIZUO, "serve", "--port", str(free_port())], env=env_for(home), text=True, **pipes
    )
    try:
        pipe = getattr(process, stream)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            line = pipe.readline()
            if wanted in line:
                return str(line)
            assert line or process.poll() is None, f"dizuo serve ended without printing {wanted!r}"
        raise AssertionError(f"dizuo serve printed no {wanted!r}")
    finally:
        process.terminate()
        process.wait(30)


def test_a_busy_port_fails_before_the_one_time_key_is_made(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run(
            [*DIZUO, "serve", "--port", str(port)],
            env=env_for(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert busy.returncode == 2 and busy.stdout == ""  # no key printed, and none made
    assert f"--port {port + 1}" in busy.stderr and "Traceback" not in busy.stderr
    # The next start, on a free port, shows the first key after all.
    assert KEY.match(served_line(tmp_path, "stdout", "dz-").strip())


def test_serve_names_the_command_when_the_default_org_has_no_usable_key(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    first_key, usable = prepare(settings)
    assert first_key is not None and usable == 1
    db = Database(settings.resolved_database_url)
    revoke_key(db, first_key[:10])
    db.dispose()
    assert "dizuo admin create-key --org default" in served_line(tmp_path, "stderr", "create-key")


# A server process built as `dizuo serve` builds it (a worker's factory), started through the ASGI
# lifespan as uvicorn starts it; it prints how many objects the garbage collector no longer scans,
# and the interpreter's switch interval.
_STARTED = """
import asyncio, gc, sys
from dizuo.app import app_from_environment, load_settings, prepare
from dizuo.settings import Settings

async def main():
    prepare(load_settings(Settings().config))
    app = app_from_environment()
    messages = [{"type": "lifespan.startup"}]
    sent = []
    async def receive():
        return messages.pop(0) if messages else await asyncio.Event().wait()
    async def send(message):
        sent.append(message["type"])
    task = asyncio.create_task(app({"type": "lifespan"}, receive, send))
    while not sent:
        await asyncio.sleep(0.01)
    print(sent[0], gc.get_freeze_count(), sys.getswitchinterval(), gc.get_threshold()[0])
    task.cancel()
    await app.gateway.shutdown()

asyncio.run(main())
"""


def test_a_server_process_takes_what_start_up_loaded_out_of_the_collector_s_view(tmp_path: Path) -> None:
    """Full collections over the start-up's millions of objects stopped calls for 20-60 ms about once
    every few thousand calls (docs/benchmarks.md); a server process freezes them once started. And its
    writer threads hand the interpreter back within half a millisecond, not 5: a call waited for a
    group commit being built (the rest of the one-connection p99). And the youngest generation is
    collected after thousands of kept objects, not 700: under load that was a collection every 11
    calls and a full one every 1,200."""
    config = tmp_path / "dizuo.yaml"
    config.write_text("local: false\ndeployments: []\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZUO_")}
    env |= {"DIZUO_DATA_DIR": str(tmp_path), "DIZUO_CONFIG": str(config)}
    done = subprocess.run(
        [sys.executable, "-c", _STARTED], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    state, frozen, switch, young = done.stdout.split()
    assert state == "lifespan.startup.complete"
    assert int(frozen) > 100_000
    assert float(switch) <= 0.0005
    assert int(young) >= 10_000
