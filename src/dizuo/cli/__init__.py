"""The ``dizuo`` command: ``serve``, ``providers``, the ``admin`` group (:mod:`dizuo.cli.admin`),
the ``guard`` group (:mod:`dizuo.cli.guard`)
the ``eval`` group (:mod:`dizuo.cli.evals`), the ``kb`` group (:mod:`dizuo.cli.kb`) and ``inspect``
(:mod:`dizuo.cli.inspect`)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from dizuo.cli.admin import admin
from dizuo.cli.agent import agent
from dizuo.cli.batch import batch
from dizuo.cli.common import fail
from dizuo.cli.compliance import aigc, audit, compliance
from dizuo.cli.compute import compute
from dizuo.cli.evals import DEFAULT_BASE_URL, evals
from dizuo.cli.guard import guard
from dizuo.cli.indicators import indicators
from dizuo.cli.inspect import inspect
from dizuo.cli.kb import kb
from dizuo.cli.sandbox import sandbox
from dizuo.cli.scenario import scenario, supplier
from dizuo.errors import ConfigError, DizuoError
from dizuo.settings import Settings

if TYPE_CHECKING:
    from dizuo.app import Platform
    from dizuo.compute.head import EmbeddedHead

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dizuo")
def main() -> None:
    """dizuo 底座: an OpenAI-compatible AI platform for a city or region."""


@main.command()
@click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False), help="YAML config file.")
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8000).")
@click.option("--workers", type=int, default=None, help="Worker processes (default 1).")
def serve(config: Path | None, host: str | None, port: int | None, workers: int | None) -> None:
    """Start the platform; with no config: SQLite under ./.dizuo and the embedded local models."""
    from dizuo.app import create_app, load_settings, prepare

    head = None
    try:
        settings = load_settings(config, host=host, port=port, workers=workers)
        # The port first: the first API key is shown once, so it must not be made for a server that
        # then cannot listen (a busy port used to print the key, fail, and never show it again).
        _check_port(settings.host, settings.port)
        first_key, usable = prepare(settings)
        head = _embedded_head(settings)
        if head is not None:
            settings = settings.model_copy(
                update={"embedded_ray": head.address, "embedded_ray_token": head.token}
            )
            os.environ["DIZUO_EMBEDDED_RAY"] = str(head.address)  # for workers, fresh processes
            os.environ["DIZUO_EMBEDDED_RAY_TOKEN"] = str(head.token)
        app = create_app(settings)  # validates the config before any worker starts
        app.gateway.upkeep.serve_alone()
        app.build_all()
    except (ConfigError, DizuoError) as exc:
        if head is not None:
            head.stop()
        fail(str(exc))
        return
    try:
        _serve(settings, app, first_key, usable)
    finally:
        if head is not None:
            head.stop()


def _embedded_head(settings: Settings) -> EmbeddedHead | None:
    """Start the Ray head of the pools with ``ray: embedded``, unless none asks or one is given."""
    from dizuo.compute.head import EmbeddedHead
    from dizuo.config import load_config

    pools = load_config(settings.config).pools
    if settings.embedded_ray is not None or not any(pool.ray == "embedded" for pool in pools):
        return None
    click.echo("dizuo: 正在启动内置 Ray 头节点 / starting the embedded Ray head…", err=True)
    # Ray's token authentication: no one else on the host can submit code to it.
    head = EmbeddedHead(token=secrets.token_urlsafe(32))
    head.start(watch=os.getpid())  # a signal or kill -9 ends serve without its finally: the watchdog stops it
    return head


def _serve(settings: Settings, app: Platform, first_key: str | None, usable: int) -> None:
    import uvicorn

    _banner(settings, app.router.aliases(), first_key, usable)
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": settings.log_level,
        "access_log": False,  # one log line per call costs more than the gateway itself at load
        "proxy_headers": False,  # applied by the platform to the apps that read the client's address
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
    }
    if settings.workers == 1:
        uvicorn.run(app, **common)
        return
    if settings.metering and not settings.redis_url:
        click.echo(
            "警告：多个工作进程未配置 DIZUO_REDIS_URL，每个进程各自预留额度，钱包可能被超额使用。\n"
            "warning: several workers without DIZUO_REDIS_URL hold money each on their own; together they "
            "can overspend a wallet. Set DIZUO_REDIS_URL (docs/billing.md#several-replicas).",
            err=True,
        )
    # Workers are fresh processes: hand them the settings through DIZUO_* variables.
    os.environ["DIZUO_DATA_DIR"] = str(settings.data_dir.resolve())
    os.environ["DIZUO_DATABASE_URL"] = settings.resolved_database_url
    if settings.config is not None:
        os.environ["DIZUO_CONFIG"] = str(settings.config.resolve())
    metrics_dir = settings.data_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
    uvicorn.run("dizuo.app:app_from_environment", factory=True, workers=settings.workers, **common)


def _check_port(host: str, port: int) -> None:
    """Fail clearly (exit 2) unless *host*:*port* can be listened on, as uvicorn will."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            fail(
                f"无法监听 {host}:{port}（{exc.strerror}）：端口已被占用？换一个端口，如 `dizuo serve --port {port + 1}`"
                f" / cannot listen on {host}:{port} ({exc.strerror}): is the port taken? Use another, e.g. "
                f"`dizuo serve --port {port + 1}`"
            )


def _banner(settings: Settings, aliases: list[str], first_key: str | None, usable: int = 1) -> None:
    url = f"http://{settings.host}:{settings.port}/v1"
    click.echo(f"dizuo 底座 → {url}  (database: {settings.resolved_database_url})", err=True)
    if url != DEFAULT_BASE_URL:
        click.echo(f"dizuo kb / dizuo eval: export DIZUO_BASE_URL={url}", err=True)
    click.echo(f"models / 模型: {', '.join(aliases) or '-'}", err=True)
    if settings.embedded_ray:
        click.echo(f"Ray（内置资源池 / embedded pools）: {settings.embedded_ray}", err=True)
    console = f"http://{settings.host}:{settings.port}/console/"
    click.echo(f"控制台 / console: {console}  (dizuo admin create-user --role platform-admin …)", err=True)
    if first_key:
        click.echo("", err=True)
        click.echo(
            "首个 API 密钥（只显示这一次，请妥善保存）/ First API key (shown once, keep it safe):", err=True
        )
        click.echo(first_key)
        click.echo("", err=True)
    elif usable == 0:
        click.echo("", err=True)
        click.echo(
            "组织 default 没有可用的 API 密钥，请创建一个 / the organization default has no usable API key; "
            "make one: dizuo admin create-key --org default",
            err=True,
        )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def providers(as_json: bool) -> None:
    """List the built-in providers with their default base URL and CNY price tables."""
    from dizuo.providers import registry

    rows: list[dict[str, Any]] = [
        {
            "name": spec.name,
            "title": spec.title,
            "base_url": spec.default_base_url,
            "auth": spec.auth,
            "cloud": spec.cloud,
            "prices_as_of": spec.prices_as_of,
            "prices_cny_per_million": {
                m: {"input": str(i), "output": str(o)} for m, (i, o) in spec.prices.items()
            },
        }
        for spec in registry.specs()
    ]
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    for row in rows:
        click.echo(f"{row['name']:<18} {row['cloud']:<8} {row['base_url'] or '-'}")
        for model, price in row["prices_cny_per_million"].items():
            click.echo(
                f"{'':<18} {model}: ¥{price['input']} in / ¥{price['output']} out per 1M ({row['prices_as_of']})"
            )


main.add_command(admin)
main.add_command(guard)
main.add_command(evals)
main.add_command(kb)
main.add_command(inspect)
main.add_command(audit)
main.add_command(compliance)
main.add_command(aigc)
main.add_command(compute)
main.add_command(batch)
main.add_command(agent)
main.add_command(indicators)
main.add_command(scenario)
main.add_command(sandbox)
main.add_command(supplier)
