"""``dizuo scenario``: the scenario lists, on the platform's machine (as ``dizuo admin``), acting as the
program office: create, list, show and move scenarios, and import last year's spreadsheet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from dizuo.cli.common import database, fail, platform_zone, reported
from dizuo.cli.remote import print_json

__all__ = ["scenario", "supplier"]

# The spreadsheet's columns (the first row), in Chinese or English, and the fields they fill.
HEADERS = {
    "需求方": "org", "org": "org",
    "场景名称": "title", "title": "title",
    "行业": "industry", "industry": "industry",
    "区县": "district", "district": "district",
    "场景描述": "description", "description": "description",
    "可用数据": "data_available", "data_available": "data_available",
    "预算下限": "budget_min", "budget_min": "budget_min",
    "预算上限": "budget_max", "budget_max": "budget_max",
    "预期成效": "expected", "expected": "expected",
    "联系人": "contact", "contact": "contact",
}  # fmt: skip
REQUIRED = ("org", "title", "industry", "district", "description")


def _service(db: Any) -> Any:
    from dizuo.scenarios.service import Scenarios

    return Scenarios(db)


def _mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping in *path*; exit 2 when the file holds anything else."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        fail("文件须是一个映射 / the file must be a mapping")
    return document


def _line(view: dict[str, Any]) -> str:
    return f"{view['id']}\t{view['status']}\t{view['list'] or '-'}\t{view['organization']}\t{view['industry_name']}\t{view['title']}"  # fmt: skip


@click.group("scenario")
def scenario() -> None:
    """Scenario lists (场景清单): needs, their review, the published lists, who took them."""


@scenario.command("create")
@click.option("--org", required=True, help="The demand side's organization.")
@click.option("--file", "path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def create_command(org: str, path: Path, as_json: bool) -> None:
    """A new scenario need of ORG from FILE (YAML: title, industry, district, description, …), a draft;
    prints its id."""
    from dizuo.accounts.service import get_org

    with reported(), database() as db:
        document = _mapping(path)
        made = _service(db).create(get_org(db, org).id, document, "cli")
    print_json(made) if as_json else click.echo(made["id"])


@scenario.command("list")
@click.option("--status", help="One stage (draft, submitted, under_review, selected, published …).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def list_command(status: str | None, as_json: bool) -> None:
    """Every scenario, newest first: id, stage, list, demand side, industry, title."""
    with reported(), database() as db:
        views = _service(db).listed(None, status)
    if as_json:
        print_json({"object": "list", "data": views})
        return
    for view in views:
        click.echo(_line(view))


@scenario.command("show")
@click.argument("scenario_id")
def show_command(scenario_id: str) -> None:
    """One scenario with its moves (JSON)."""
    with reported(), database() as db:
        print_json(_service(db).show(scenario_id, None))


@scenario.command("move")
@click.argument("scenario_id")
@click.argument("to")
@click.option("--reason", default="", help="Why (needed to reject or close).")
@click.option("--list", "list_name", help="Publishing: the list, such as 2026年第一批.")
@click.option("--taker", help="Taking: the organization that took it (揭榜).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def move_command(
    scenario_id: str, to: str, reason: str, list_name: str | None, taker: str | None, as_json: bool
) -> None:
    """Move a scenario to the stage TO, as the program office; refused (exit 2) with the moves there
    are when it cannot."""
    from dizuo.accounts.service import get_org

    with reported(), database() as db:
        taker_id = get_org(db, taker).id if taker else None
        view = _service(db).move(scenario_id, to, "cli", office=True, reason=reason, list_name=list_name, taker_org_id=taker_id)  # fmt: skip
    print_json(view) if as_json else click.echo(_line(view))


def _reviews(db: Any) -> Any:
    from dizuo.scenarios.reviews import Reviews

    return Reviews(db)


def _criterion_line(c: dict[str, Any]) -> str:
    return f"{c['key']}\t{c['weight']}\t{c['name_zh']}\t{c['name_en']}"


@scenario.command("rubric")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Set the rubric: a YAML or JSON file with criteria: [{key, name_zh, name_en, weight}], the weights summing to 100.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def rubric_command(path: Path | None, as_json: bool) -> None:
    """The review rubric (评分表): each criterion's key, weight (out of 100) and names; with --file,
    set it first (reviews already made keep the rubric they were scored against)."""
    with reported(), database() as db:
        reviews = _reviews(db)
        criteria = reviews.set_rubric(_mapping(path), "cli") if path else reviews.rubric()
    if as_json:
        print_json({"criteria": criteria})
        return
    for c in criteria:
        click.echo(_criterion_line(c))


@scenario.command("review")
@click.argument("scenario_id")
@click.option("--reviewer", required=True, help="The reviewer's username (a member with the reviewer role).")
@click.option("--score", "scores", multiple=True, required=True, metavar="KEY=N", help="A criterion's score, 0 to 10; once per criterion of the rubric.")  # fmt: skip
@click.option("--comment", default="", help="The reviewer's comment.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def review_command(
    scenario_id: str, reviewer: str, scores: tuple[str, ...], comment: str, as_json: bool
) -> None:
    """Record a reviewer's scores of a scenario under review (from a paper form, say); replaces that
    reviewer's earlier review. Prints the weighted total out of 100."""
    from sqlalchemy import select

    from dizuo.accounts.tables import Member

    parsed: dict[str, float] = {}
    for item in scores:
        key, sep, value = item.partition("=")
        try:
            parsed[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            fail(f"--score 须写成 KEY=分数，如 value=8 / --score takes KEY=N, such as value=8: {item}")
    with reported(), database() as db:
        with db.session() as session:
            role = session.scalar(select(Member.role).where(Member.username == reviewer))
        if role != "reviewer":
            fail(f"没有评审专家 {reviewer} / no member {reviewer} with the reviewer role")
        view = _reviews(db).score(scenario_id, reviewer, {"scores": parsed, "comment": comment})
    print_json(view) if as_json else click.echo(f"{view['id']}\t{view['reviewer']}\t{view['total']}")


@scenario.command("reviews")
@click.argument("scenario_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def reviews_command(scenario_id: str, as_json: bool) -> None:
    """Every review of a scenario and their spread, as the program office's chair sees them: each
    reviewer's total and scores, then each criterion's mean, lowest, highest and standard deviation."""
    with reported(), database() as db:
        document = _reviews(db).listed(scenario_id, None)
    if as_json:
        print_json(document)
        return
    keys = [c["key"] for c in document["rubric"]]
    click.echo("reviewer\ttotal\t" + "\t".join(keys))
    for review in document["reviews"]:
        marks = "\t".join(str(review["scores"].get(key, "-")) for key in keys)
        click.echo(f"{review['reviewer']}\t{review['total']}\t{marks}")
    spread = document["spread"]
    if spread is None:
        click.echo("（尚无评分 / no reviews yet）")
        return
    for name, figures in (("total", spread["total"]), *spread["criteria"].items()):
        click.echo(f"{name}\tmean {figures['mean']}\tmin {figures['min']}\tmax {figures['max']}\tstdev {figures['stdev']}")  # fmt: skip


def _milestones(db: Any) -> Any:
    from dizuo.scenarios.milestones import Milestones

    return Milestones(db, platform_zone())


def _milestone_line(view: dict[str, Any]) -> str:
    return f"{view['id']}\t{view['due']}\t{view['state']}\t{view['done_on'] or '-'}\t{view['title']}"


@scenario.group("milestone")
def milestone() -> None:
    """Milestones of a taken scenario's construction (里程碑), kept as the program office."""


@milestone.command("add")
@click.argument("scenario_id")
@click.option("--title", required=True, help="What is to be done.")
@click.option("--due", required=True, help="The day it is due, YYYY-MM-DD.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def milestone_add(scenario_id: str, title: str, due: str, as_json: bool) -> None:
    """Plan a milestone of a scenario that is taken or in construction; prints its id."""
    with reported(), database() as db:
        view = _milestones(db).add(scenario_id, title, due, "cli", None)
    print_json(view) if as_json else click.echo(view["id"])


@milestone.command("done")
@click.argument("scenario_id")
@click.argument("milestone_id")
@click.option("--evidence", required=True, help="What shows it done (a report, a link), or @FILE.")
@click.option("--on", "done_on", help="The day it was done, YYYY-MM-DD (default: today).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def milestone_done(
    scenario_id: str, milestone_id: str, evidence: str, done_on: str | None, as_json: bool
) -> None:
    """Record a milestone done, with its evidence; says whether it was late."""
    if evidence.startswith("@"):
        evidence = Path(evidence[1:]).read_text(encoding="utf-8")
    with reported(), database() as db:
        view = _milestones(db).done(scenario_id, milestone_id, evidence, "cli", None, done_on)
    print_json(view) if as_json else click.echo(_milestone_line(view))


@scenario.command("milestones")
@click.argument("scenario_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def milestones_command(scenario_id: str, as_json: bool) -> None:
    """A scenario's milestones by day: id, due, state (open, late, done, done_late), done on, title."""
    with reported(), database() as db:
        views = _milestones(db).listed(scenario_id, None)
    if as_json:
        print_json({"object": "list", "data": views})
        return
    for view in views:
        click.echo(_milestone_line(view))


def _applications(db: Any) -> Any:
    from dizuo.scenarios.applications import Applications

    return Applications(db, _service(db))


def _application_line(view: dict[str, Any]) -> str:
    return f"{view['id']}\t{view['status']}\t{view['organization']}"


@scenario.command("apply")
@click.argument("scenario_id")
@click.option("--org", required=True, help="The organization that applies (the supplier).")
@click.option("--proposal", required=True, help="Its proposal, or @FILE to read it from a file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def apply_command(scenario_id: str, org: str, proposal: str, as_json: bool) -> None:
    """ORG applies to take a published scenario (揭榜) with its proposal; prints the application's id."""
    from dizuo.accounts.service import get_org

    if proposal.startswith("@"):
        proposal = Path(proposal[1:]).read_text(encoding="utf-8")
    with reported(), database() as db:
        made = _applications(db).apply(scenario_id, get_org(db, org).id, proposal, "cli")
    print_json(made) if as_json else click.echo(made["id"])


@scenario.command("applications")
@click.argument("scenario_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def applications_command(scenario_id: str, as_json: bool) -> None:
    """The applications to take a scenario: id, status, organization."""
    with reported(), database() as db:
        views = _applications(db).listed(scenario_id, None)
    if as_json:
        print_json({"object": "list", "data": views})
        return
    for view in views:
        click.echo(_application_line(view))


@scenario.command("shortlist")
@click.argument("scenario_id")
@click.argument("application_id")
def shortlist_command(scenario_id: str, application_id: str) -> None:
    """Put an application on the scenario's shortlist."""
    with reported(), database() as db:
        click.echo(_application_line(_applications(db).shortlist(scenario_id, application_id, None, "cli")))


@scenario.command("award")
@click.argument("scenario_id")
@click.argument("application_id")
@click.option("--reason", default="", help="Why (recorded with the decision).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def award_command(scenario_id: str, application_id: str, reason: str, as_json: bool) -> None:
    """Award the scenario to an application: taken by its organization, the others declined."""
    with reported(), database() as db:
        view = _applications(db).award(scenario_id, application_id, None, "cli", reason)
    print_json(view) if as_json else click.echo(_line(view))


@scenario.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(path: Path) -> None:
    """Import scenario needs from a spreadsheet (.xlsx; first row: 需求方, 场景名称, 行业, 区县,
    场景描述, 可用数据, 预算下限, 预算上限, 预期成效, 联系人) as drafts. Every bad line is printed with
    its number and nothing is imported (exit 2)."""
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        sheet = load_workbook(path, read_only=True, data_only=True).worksheets[0]
    except (InvalidFileException, OSError, KeyError, ValueError) as exc:
        fail(f"无法读取 {path.name}：{exc} / cannot read {path.name}: {exc}")
    rows = sheet.iter_rows(values_only=True)
    header = [str(cell or "").strip() for cell in next(rows, ())]
    fields = [HEADERS.get(name) for name in header]
    missing = [name for name in REQUIRED if name not in fields]
    if missing:
        fail(f"第 1 行缺少列 / line 1 lacks the columns: {', '.join(missing)}")
    found = []
    for line, cells in enumerate(rows, start=2):
        if all(cell is None or str(cell).strip() == "" for cell in cells):
            continue
        found.append(
            (line, {f: "" if c is None else str(c).strip() for f, c in zip(fields, cells, strict=False) if f})
        )
    from dizuo.scenarios.service import ImportRefused

    with reported(), database() as db:
        try:
            made = _service(db).import_rows(found, "cli")
        except ImportRefused as refused:
            for problem in refused.problems:
                click.echo(problem, err=True)
            fail(
                f"{len(refused.problems)} 行有误，未导入任何场景 / {len(refused.problems)} bad lines: nothing imported"
            )
    click.echo(f"imported {len(made)} scenarios")


def _suppliers(db: Any) -> Any:
    from dizuo.admin.scenarios import platform_grades, platform_usage
    from dizuo.evalbench.service import EvalService
    from dizuo.scenarios.suppliers import Suppliers
    from dizuo.settings import Settings

    return Suppliers(db, platform_grades(db, EvalService(db, Settings().data_dir)), platform_usage(db))


@scenario.command("match")
@click.argument("scenario_id")
@click.option("--k", default=10, show_default=True, help="How many suppliers.")
@click.option("--min-grade", type=click.Choice(["A", "B", "C", "D"]), help="Only suppliers offering a model or agent graded at least this.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def match_command(scenario_id: str, k: int, min_grade: str | None, as_json: bool) -> None:
    """The suppliers for a scenario, best first: score, organization and why."""
    with reported(), database() as db:
        found = _suppliers(db).for_scenario(scenario_id, k, min_grade)
    if as_json:
        print_json({"object": "list", "data": found})
        return
    for each in found:
        click.echo(f"{each['score']:.4f}\t{each['organization']}\t{each['why']['zh']}")


@click.group("supplier")
def supplier() -> None:
    """The supply catalog (供给能力目录): suppliers' capabilities, and matching them to scenarios."""


@supplier.command("put")
@click.option("--org", required=True, help="The supplier's organization.")
@click.option("--file", "path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def supplier_put(org: str, path: Path, as_json: bool) -> None:
    """Create or replace ORG's catalog entry from FILE (YAML: name, summary, industries, regions,
    cases, certifications, models)."""
    from dizuo.accounts.service import get_org

    with reported(), database() as db:
        document = _mapping(path)
        view = _suppliers(db).put(get_org(db, org).id, document, "cli")
    print_json(view) if as_json else click.echo(f"{view['organization']}\t{view['name']}")


@supplier.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def supplier_list(as_json: bool) -> None:
    """The supply catalog: organization, capability, industries, regions."""
    with reported(), database() as db:
        views = _suppliers(db).listed()
    if as_json:
        print_json({"object": "list", "data": views})
        return
    for v in views:
        industries = ",".join(i["code"] for i in v["industries"]) or "*"
        click.echo(f"{v['organization']}\t{v['name']}\t{industries}\t{','.join(v['regions']) or '全市'}")


@supplier.command("show")
@click.argument("org")
def supplier_show(org: str) -> None:
    """One supplier's entry, its models and agents with their bench grades (JSON)."""
    from dizuo.accounts.service import get_org

    with reported(), database() as db:
        print_json(_suppliers(db).show(get_org(db, org).id))


@supplier.command("match")
@click.argument("org")
@click.option("--k", default=10, show_default=True, help="How many scenarios.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def supplier_match(org: str, k: int, as_json: bool) -> None:
    """The published scenarios for ORG, best first: score, scenario id and why."""
    from dizuo.accounts.service import get_org

    with reported(), database() as db:
        found = _suppliers(db).for_supplier(get_org(db, org).id, k)
    if as_json:
        print_json({"object": "list", "data": found})
        return
    for each in found:
        click.echo(f"{each['score']:.4f}\t{each['id']}\t{each['title']}\t{each['why']['zh']}")
