"""``dizuo compute``: compute pools, over the platform's HTTP API with the organization's API key
(``--base-url`` / ``DIZUO_BASE_URL``, ``--api-key`` / ``DIZUO_API_KEY``), as ``dizuo kb`` does."""

from __future__ import annotations

from typing import Any

import click

from dizuo.cli.remote import Client, connected, print_rows

__all__ = ["compute"]


@click.group("compute")
def compute() -> None:
    """Compute pools for jobs on Ray: where they are, what they cost, what is free now."""


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
