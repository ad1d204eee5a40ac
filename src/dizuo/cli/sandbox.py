"""``dizuo sandbox``: the data sandbox, on the platform's machine (as ``dizuo admin``), acting for a
data owner (registering datasets, granting and revoking) or an enterprise (requesting, querying).
Every act is recorded in the audit trail as ``cli``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dizuo.cli.common import database, fail, parse_date, reported, split
from dizuo.cli.remote import print_json

if TYPE_CHECKING:
    from dizuo.sandbox.service import Sandbox

__all__ = ["sandbox"]

JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


@contextmanager
def _sandbox() -> Iterator[tuple[Sandbox, Any]]:
    from dizuo.sandbox.service import Sandbox
    from dizuo.sandbox.store import QueryLimits
    from dizuo.settings import Settings

    settings = Settings()
    limits = QueryLimits(
        settings.sandbox_query_seconds, settings.sandbox_memory_mb, max_rows=settings.sandbox_max_rows
    )
    with reported(), database() as db:
        service = Sandbox.at(db, settings.data_dir, limits, settings.sandbox_store)
        try:
            yield service, db
        finally:
            service.close()


def _bounds(value: str | None) -> dict[str, tuple[float, float]]:
    """``月收入=0:100000,年龄=0:120`` as {column: (low, high)}."""
    found = {}
    for item in split(value) or []:
        name, _, span = item.partition("=")
        low, _, high = span.partition(":")
        try:
            found[name.strip()] = (float(low), float(high))
        except ValueError:
            fail(f"--bounds {item}：须写成 列=下界:上界 / --bounds {item}: write column=low:high")
    return found


@click.group("sandbox")
def sandbox() -> None:
    """Government data sandbox (政务数据沙盒): datasets, requests, grants and queries."""


@sandbox.group("dataset")
def dataset() -> None:
    """The sandbox's datasets: register, list, show."""


@dataset.command("add")
@click.argument("name")
@click.option("--owner", required=True, help="The data owner's organization.")
@click.option("--file", "path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path), help="CSV (UTF-8 or GB18030), XLSX or Parquet.")  # fmt: skip
@click.option("--class", "classification", required=True, type=click.Choice(["general", "important", "core"]), help="一般 / 重要 (核心: refused).")  # fmt: skip
@click.option("--personal", is_flag=True, help="It contains personal information.")
@click.option("--identifiers", help="Identifier columns (never queried): 身份证号,姓名,手机号")
@click.option("--quasi", help="Quasi-identifier columns: 区县,性别,出生日期")
@click.option("--sensitive", help="Sensitive columns: 月收入,诊断")
@click.option("--bounds", help="Numeric columns' bounds for noisy sums: 月收入=0:100000")
@click.option("--description", default="", help="What the dataset holds.")
@click.option("--schedule", default="", help="How often it is updated (每月, daily …).")
@JSON
def dataset_add(
    name: str,
    owner: str,
    path: Path,
    classification: str,
    personal: bool,
    identifiers: str | None,
    quasi: str | None,
    sensitive: str | None,
    bounds: str | None,
    description: str,
    schedule: str,
    as_json: bool,
) -> None:
    """Register the dataset NAME of OWNER from FILE (again: load new rows, which must have the
    registered columns). A text column that looks like ID or phone numbers must be an identifier."""
    from dizuo.accounts.service import get_org

    spec = {
        "name": name,
        "classification": classification,
        "personal": personal,
        "identifiers": split(identifiers) or [],
        "quasi": split(quasi) or [],
        "sensitive": split(sensitive) or [],
        "bounds": _bounds(bounds),
        "description": description,
        "schedule": schedule,
    }
    with _sandbox() as (service, db):
        view = service.add_dataset(get_org(db, owner).id, spec, path, path.name, "cli")
    if as_json:
        print_json(view)
    else:
        click.echo(f"{view['name']}\tv{view['version']}\t{view['rows']} rows\t{view['classification']}")


@dataset.command("list")
@JSON
def dataset_list(as_json: bool) -> None:
    """The catalog: name, owner, classification, rows, columns (never rows' values)."""
    with _sandbox() as (service, _):
        views = service.datasets()
    if as_json:
        print_json({"object": "list", "data": views})
        return
    for view in views:
        personal = " 个人信息" if view["personal"] else ""
        click.echo(f"{view['name']}\t{view['owner']}\t{view['classification']}{personal}\t{view['rows']}\t{','.join(c['name'] for c in view['columns'])}")  # fmt: skip


@dataset.command("show")
@click.argument("name")
def dataset_show(name: str) -> None:
    """One dataset's catalog entry, each column with its type and sensitivity (JSON)."""
    with _sandbox() as (service, _):
        print_json(service.dataset(name))


@sandbox.command("request")
@click.argument("dataset_name", metavar="DATASET")
@click.option("--org", required=True, help="The organization asking.")
@click.option("--purpose", required=True, help="What it will use the data for.")
@click.option("--until", help="The last day it needs the data (YYYY-MM-DD).")
@JSON
def request_command(dataset_name: str, org: str, purpose: str, until: str | None, as_json: bool) -> None:
    """ORG asks to use DATASET for PURPOSE; prints the request's id."""
    from dizuo.accounts.service import get_org
    from dizuo.sandbox.service import Grantee

    end = parse_date(until, "--until", end_of_day=True)
    with _sandbox() as (service, db):
        view = service.request(dataset_name, Grantee(get_org(db, org).id, "cli"), purpose, end)
    print_json(view) if as_json else click.echo(view["id"])


@sandbox.command("grant")
@click.argument("dataset_name", metavar="DATASET")
@click.option("--org", required=True, help="The organization granted.")
@click.option("--columns", required=True, help="The columns it may use: 区县,性别,月收入")
@click.option("--k", default=10, show_default=True, help="The fewest rows an aggregate may describe.")
@click.option("--rows", is_flag=True, help="Row-level results may leave (identifiers never).")
@click.option("--jobs", is_flag=True, help="Its compute jobs may read the columns in a pool (results held).")
@click.option("--epsilon", type=float, help="A privacy budget: counts and sums carry noise.")
@click.option("--query-budget", default=1000, show_default=True, help="Queries it may run.")
@click.option("--expires", help="The last day of the grant (YYYY-MM-DD).")
@click.option("--purpose", default="", help="The purpose it is granted for (default: the request's).")
@JSON
def grant_command(
    dataset_name: str,
    org: str,
    columns: str,
    k: int,
    rows: bool,
    jobs: bool,
    epsilon: float | None,
    query_budget: int,
    expires: str | None,
    purpose: str,
    as_json: bool,
) -> None:
    """Grant DATASET to ORG, as its owner, with conditions; prints the grant's id."""
    from dizuo.accounts.service import get_org
    from dizuo.sandbox.service import Grantee

    end = parse_date(expires, "--expires", end_of_day=True)
    conditions = {
        "columns": split(columns) or [],
        "k": k,
        "rows": rows,
        "jobs": jobs,
        "epsilon": epsilon,
        "query_budget": query_budget,
        "expires": end,
        "purpose": purpose,
    }
    with _sandbox() as (service, db):
        view = service.grant(dataset_name, get_org(db, org).id, conditions, Grantee("", "cli"))
    print_json(view) if as_json else click.echo(view["id"])


@sandbox.command("revoke")
@click.argument("grant_id")
def revoke_command(grant_id: str) -> None:
    """Revoke a grant at once: its next query is refused."""
    from dizuo.sandbox.service import Grantee

    with _sandbox() as (service, _):
        view = service.revoke(grant_id, Grantee("", "cli"))
    click.echo(f"{view['id']}\t{view['state']}\t{view['revoked_at']}")


@sandbox.command("grants")
@click.option("--org", help="Only the grants to this organization.")
@JSON
def grants_command(org: str | None, as_json: bool) -> None:
    """Grants, newest first: id, dataset, organization, state, queries and ε used."""
    from dizuo.accounts.service import get_org

    with _sandbox() as (service, db):
        views = service.grants(get_org(db, org).id if org else None)
    if as_json:
        print_json({"object": "list", "data": views})
        return
    for v in views:
        spent = f"ε {v['epsilon_spent']}/{v['epsilon']}" if v["epsilon"] is not None else "-"
        click.echo(f"{v['id']}\t{v['dataset']}\t{v['organization']}\t{v['state']}\t{v['queries_used']}/{v['query_budget']}\t{spent}")  # fmt: skip


@sandbox.command("query")
@click.argument("dataset_name", metavar="DATASET")
@click.argument("sql")
@click.option("--org", required=True, help="The organization querying (under its grant).")
@click.option("--epsilon", type=float, help="ε this query spends, under a privacy budget (default 0.1).")
@JSON
def query_command(dataset_name: str, sql: str, org: str, epsilon: float | None, as_json: bool) -> None:
    """Run SQL on DATASET (named as its table) for ORG; what passes disclosure control is printed
    (``--json``: {"columns", "rows", "suppressed"}). A refused query exits 2 with the reason and
    where in the SQL."""
    from dizuo.accounts.service import get_org
    from dizuo.sandbox.service import Grantee

    with _sandbox() as (service, db):
        answer = service.query(dataset_name, sql, Grantee(get_org(db, org).id, "cli"), epsilon)
    if as_json:
        print_json(answer)
        return
    click.echo("\t".join(answer["columns"]))
    for row in answer["rows"]:
        click.echo("\t".join("" if v is None else str(v) for v in row))
    for note in answer["notes"]:
        click.echo(f"注 / note: {note['zh']} / {note['en']}", err=True)


@sandbox.command("queries")
@click.option("--org", help="Only this organization's queries.")
@click.option("--limit", default=50, show_default=True)
@JSON
def queries_command(org: str | None, limit: int, as_json: bool) -> None:
    """The query log, newest first: when, who, decision, rows out, withheld, the SQL."""
    from dizuo.accounts.service import get_org

    with _sandbox() as (service, db):
        views = service.queries(get_org(db, org).id if org else None, limit=limit)
    if as_json:
        print_json({"object": "list", "data": views})
        return
    for v in views:
        click.echo(f"{v['created_at']}\t{v['organization']}\t{v['decision']}\t{v['reason'] or '-'}\t{v['rows_out']}\t{v['suppressed']}\t{v['sql']}")  # fmt: skip


@sandbox.command("demo-data")
@click.option("--rows", "count", default=100_000, show_default=True, help="How many residents.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def demo_data_command(count: int, out: Path) -> None:
    """Write synthetic residents (valid-looking ID and phone numbers, no real person) as a CSV to try
    the sandbox with."""
    from dizuo.sandbox.synthetic import write_csv

    write_csv(out, count)
    click.echo(str(out))


@sandbox.command("releases")
@click.option("--org", help="Only this organization's releases.")
@JSON
def releases_command(org: str | None, as_json: bool) -> None:
    """What sandbox compute jobs wrote out, newest first: id, dataset, organization, state, job, files."""
    from dizuo.accounts.service import get_org

    with _releases() as (jobs, db):
        views = jobs.releases(get_org(db, org).id if org else None)
    if as_json:
        print_json({"object": "list", "data": views})
        return
    for v in views:
        files = ",".join(f["name"] for f in v["files"]) or "-"
        click.echo(f"{v['id']}\t{v['dataset']}\t{v['organization']}\t{v['state']}\t{v['job']}\t{v['job_state'] or '-'}\t{files}")  # fmt: skip


@sandbox.group("release")
def release_group() -> None:
    """Review what a sandbox job wrote out: approve, refuse, download."""


@release_group.command("show")
@click.argument("release_id")
def release_show(release_id: str) -> None:
    """One release as JSON: its files (size, SHA-256, what the guard found) and what the job printed."""
    with _releases() as (jobs, _):
        print_json(jobs.release(release_id))


@release_group.command("approve")
@click.argument("release_id")
def release_approve(release_id: str) -> None:
    """Release the files (and what the job printed) to the job's organization, as the data owner."""
    from dizuo.sandbox.service import Grantee

    with _releases() as (jobs, _):
        view = jobs.decide(release_id, Grantee("", "cli"), approve=True)
    click.echo(f"{view['id']}\t{view['state']}")


@release_group.command("refuse")
@click.argument("release_id")
@click.option("--reason", required=True, help="Why: the job's organization reads it.")
def release_refuse(release_id: str, reason: str) -> None:
    """Refuse a release, with a reason; its files are deleted."""
    from dizuo.sandbox.service import Grantee

    with _releases() as (jobs, _):
        view = jobs.decide(release_id, Grantee("", "cli"), approve=False, reason=reason)
    click.echo(f"{view['id']}\t{view['state']}")


@release_group.command("download")
@click.argument("release_id")
@click.option(
    "--out", "folder", required=True, type=click.Path(file_okay=False), help="Where to write the files."
)
def release_download(release_id: str, folder: str) -> None:
    """Write a release's files into a folder (the platform reads any; an organization's members use
    the API, once it is released)."""
    with _releases() as (jobs, _):
        view = jobs.release(release_id)
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        for listed in view["files"]:
            content, _digest = jobs.file(release_id, listed["name"])
            (target / listed["name"]).write_bytes(content)
            click.echo(f"{listed['name']}\t{listed['size']}\t{listed['sha256']}")


@contextmanager
def _releases() -> Iterator[tuple[Any, Any]]:
    from dizuo.sandbox.jobs import SandboxJobs
    from dizuo.settings import Settings

    with _sandbox() as (service, db):
        yield SandboxJobs(service, Settings().sandbox_output_mb * 2**20), db
