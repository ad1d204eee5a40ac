"""``dizuo compute``: compute pools, over the platform's HTTP API with the organization's API key
(``--base-url`` / ``DIZUO_BASE_URL``, ``--api-key`` / ``DIZUO_API_KEY``), as ``dizuo kb`` does."""

from __future__ import annotations

import base64
import io
import sys
import zipfile
from pathlib import Path
from typing import Any

import click

from dizuo.cli.remote import Client, connected, print_json, print_rows

__all__ = ["compute"]


@click.group("compute")
def compute() -> None:
    """Compute pools and jobs on Ray: where they are, what they cost, what runs and what it cost."""


def _line(pool: dict[str, Any]) -> str:
    price = pool["price_cny_per_hour"]
    head = f"{pool['name']}\t{pool['region']}\t{pool['accelerator'] or 'CPU'}"
    cost = f"¥{price['accelerator']}/卡·时 ¥{price['cpu']}/核·时 ¥{price['memory_gb']}/GB·时"
    capacity = pool["capacity"]
    if capacity is None:
        return f"{head}\t{cost}\t不可用 / down"
    cards, cpus = capacity["accelerators"], capacity["cpus"]
    free = f"空闲 / free: {cards['free']:g}/{cards['total']:g} 卡, {cpus['free']:g}/{cpus['total']:g} 核"
    return f"{head}\t{cost}\t{free}\t≤{pool['data_class_max']}"


@compute.command("pools")
@connected
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def pools_command(base_url: str, api_key: str | None, as_json: bool) -> None:
    """The pools this key may use, with prices per hour and free capacity."""
    found = Client(base_url, api_key, "/compute").call("GET", "/pools")["data"]
    print_rows(found, as_json, _line)


def _working_dir(path: str) -> str:
    """The directory *path* as a zip archive in base64 (its files, relative to it), as jobs carry it."""
    root = Path(path)
    if not root.is_dir():
        raise click.BadParameter(f"{path} 不是目录 / is not a directory", param_hint="--working-dir")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for file in sorted(root.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts and ".git" not in file.parts:
                z.write(file, file.relative_to(root).as_posix())
    return base64.b64encode(archive.getvalue()).decode()


def _job_line(job: dict[str, Any]) -> str:
    cost = f"¥{job['cost']}" if job["cost"] is not None else f"held ¥{job['held']}"
    return f"{job['id']}\t{job['state']}\t{job['kind']}\t{job['pool'] or '-'}\t{cost}\t{job['name'] or job['entrypoint'][:60]}"


def _considered(job: dict[str, Any]) -> None:
    for verdict in job["considered"]:
        if verdict["feasible"]:
            said = f"可行 / feasible: 预计 / estimate ¥{verdict['estimate']}, 等待 / wait {verdict['wait']}"
        else:
            said = f"{verdict['reason']['zh']} / {verdict['reason']['en']}"
        click.echo(f"  {verdict['pool']}\t{verdict['region']}\t{said}")


@compute.command("submit")
@connected
@click.option(
    "--kind",
    type=click.Choice(["script", "eval", "kb-index", "sandbox"]),
    default="script",
    show_default=True,
)
@click.option("--entrypoint", help="The command a script or sandbox job runs (in its working directory).")
@click.option("--working-dir", type=click.Path(exists=True, file_okay=False), help="Sent with the job.")
@click.option("--name", help="A name to tell the job by.")
@click.option("--suite", help="eval: the evaluation suite.")
@click.option(
    "--model", help="eval: the model evaluated; kb-index: the embedding model (default: the one it has)."
)
@click.option("--kb", help="kb-index: the knowledge base.")
@click.option("--dataset", help="sandbox: the granted dataset the job reads ($DIZUO_SANDBOX_INPUT).")
@click.option("--accelerators", type=int, default=0, show_default=True)
@click.option("--accelerator-type", help="ascend-910b, a100 … (any, by default).")
@click.option("--cpus", type=float, default=1, show_default=True)
@click.option("--memory", default=None, help="8G, 512M … (default 4G).")
@click.option("--max-hours", type=float, default=1, show_default=True, help="Stopped after this long.")
@click.option("--expected-hours", type=float, default=None, help="What the estimate assumes.")
@click.option("--region", "regions", multiple=True, help="A region it may run in (repeat).")
@click.option("--pool", "pools", multiple=True, help="A pool it may run on (repeat).")
@click.option("--data-class", type=click.Choice(["general", "important", "core"]), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def submit_command(
    base_url: str,
    api_key: str | None,
    kind: str,
    entrypoint: str | None,
    working_dir: str | None,
    name: str | None,
    suite: str | None,
    model: str | None,
    kb: str | None,
    dataset: str | None,
    accelerators: int,
    accelerator_type: str | None,
    cpus: float,
    memory: str | None,
    max_hours: float,
    expected_hours: float | None,
    regions: tuple[str, ...],
    pools: tuple[str, ...],
    data_class: str | None,
    as_json: bool,
) -> None:
    """Submit a job: placed on the cheapest pool that can run it, its worst case held. A job no
    pool can run exits 2 with each pool's reason."""
    body: dict[str, Any] = {
        "kind": kind,
        "accelerators": accelerators,
        "cpus": cpus,
        "max_hours": max_hours,
    }
    optional = {
        "entrypoint": entrypoint,
        "name": name,
        "suite": suite,
        "model": model,
        "kb": kb,
        "dataset": dataset,
        "accelerator_type": accelerator_type,
        "memory": memory,
        "expected_hours": expected_hours,
        "regions": list(regions) or None,
        "pools": list(pools) or None,
        "data_class": data_class,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if working_dir:
        body["working_dir"] = _working_dir(working_dir)
    job = Client(base_url, api_key, "/compute").call("POST", "/jobs", body)
    if as_json:
        print_json(job)
        return
    click.echo(f"{job['id']}\t{job['state']}\t{job['pool']}\t预占 / held ¥{job['held']}")
    _considered(job)


@compute.command("jobs")
@connected
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def jobs_command(base_url: str, api_key: str | None, as_json: bool) -> None:
    """This organization's jobs, newest first."""
    print_rows(Client(base_url, api_key, "/compute").call("GET", "/jobs")["data"], as_json, _job_line)


@compute.command("show")
@connected
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def show_command(base_url: str, api_key: str | None, job_id: str, as_json: bool) -> None:
    """One job: its state, pool, times, cost and the pools considered."""
    job = Client(base_url, api_key, "/compute").call("GET", f"/jobs/{job_id}")
    if as_json:
        print_json(job)
        return
    click.echo(_job_line(job))
    for field in ("started", "ended", "seconds", "voucher_paid", "own_paid", "message"):
        if job.get(field) is not None:
            click.echo(f"  {field}: {job[field]}")
    _considered(job)


@compute.command("logs")
@connected
@click.argument("job_id")
@click.option("--follow", is_flag=True, help="Keep printing until the job ends.")
def logs_command(base_url: str, api_key: str | None, job_id: str, follow: bool) -> None:
    """What the job printed."""
    out = sys.stdout.buffer

    def write(piece: bytes) -> None:
        out.write(piece)
        out.flush()

    Client(base_url, api_key, "/compute").stream(
        f"/jobs/{job_id}/logs?follow={'true' if follow else 'false'}", write
    )


@compute.command("cancel")
@connected
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def cancel_command(base_url: str, api_key: str | None, job_id: str, as_json: bool) -> None:
    """Stop a job; it is charged for what ran."""
    job = Client(base_url, api_key, "/compute").call("POST", f"/jobs/{job_id}/cancel")
    if as_json:
        print_json(job)
    else:
        click.echo(_job_line(job))
