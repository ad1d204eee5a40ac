"""``dizuo scenario``: create, list, move as the program office, and import a spreadsheet all or
nothing, each bad line named."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import openpyxl
import yaml

from dizuo.accounts import create_org
from dizuo.store import Database
from tests.scenarios.conftest import Shell
from tests.support.cli import dizuo

NEED = {
    "title": "政务热线工单智能分派",
    "industry": "S",
    "district": "渝中区",
    "description": "12345 热线工单日均 8000 件，人工分派慢，需按诉求自动分派到责任单位。",
    "budget_max": "500000",
}


def workbook(path: Path, rows: list[list[object]]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["需求方", "场景名称", "行业", "区县", "场景描述", "预算上限", "联系人"])
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def test_the_cli_creates_moves_and_lists_scenarios(shell: Shell, tmp_path: Path) -> None:
    env, demand, supplier = shell.env, shell.demand, shell.supplier
    path = tmp_path / "场景.yaml"
    path.write_text(yaml.safe_dump(NEED, allow_unicode=True), encoding="utf-8")
    made = dizuo("scenario", "create", "--org", demand, "--file", str(path), env=env)
    assert made.returncode == 0, made.stderr
    sid = made.stdout.strip()
    for to in ("submitted", "under_review", "selected"):
        assert dizuo("scenario", "move", sid, to, env=env).returncode == 0
    wrong = dizuo("scenario", "move", sid, "taken", "--taker", supplier, env=env)
    assert wrong.returncode == 2 and "published" in wrong.stderr
    published = dizuo("scenario", "move", sid, "published", "--list", "2026年第二批", env=env)
    assert published.returncode == 0 and "2026年第二批" in published.stdout
    assert dizuo("scenario", "move", sid, "taken", "--taker", supplier, env=env).returncode == 0
    shown = json.loads(dizuo("scenario", "show", sid, env=env).stdout)
    assert shown["taker"] == supplier and shown["industry_name"] == "公共管理、社会保障和社会组织"
    listed = dizuo("scenario", "list", "--status", "taken", env=env).stdout
    assert sid in listed and "政务热线工单智能分派" in listed


def test_a_spreadsheet_is_imported_whole_or_not_at_all(empty_database_url: str, tmp_path: Path) -> None:
    db = Database(empty_database_url)
    db.upgrade()
    demand = f"船机厂-{uuid.uuid4().hex[:6]}"
    create_org(db, demand)
    db.dispose()
    env = {"DIZUO_DATABASE_URL": empty_database_url}
    long = "需要对质检报告进行自动审核，找出与规范不符之处。"
    bad = workbook(tmp_path / "坏.xlsx", [
        [demand, "质检报告审核", "制造业", "江津区", long, "800000", "王工"],
        [demand, "焊缝缺陷识别", "造船", "江津区", long, "", ""],
        ["不存在的公司", "仓储调度", "G", "两江新区", long, "", ""],
        [demand, "设备预测性维护", "C", "江津区", long, "一百万", ""],
    ])  # fmt: skip
    refused = dizuo("scenario", "import", str(bad), env=env)
    assert refused.returncode == 2
    assert (
        "line 3: industry" in refused.stderr
        and "line 4: org" in refused.stderr
        and "line 5: budget_max" in refused.stderr
    )
    assert "line 2" not in refused.stderr
    assert dizuo("scenario", "list", env=env).stdout == ""  # nothing imported
    missing = workbook(tmp_path / "缺列.xlsx", [])
    sheet_book = openpyxl.load_workbook(missing)
    sheet = sheet_book.active
    assert sheet is not None
    sheet.delete_cols(3)  # no 行业 column
    sheet_book.save(missing)
    lacking = dizuo("scenario", "import", str(missing), env=env)
    assert lacking.returncode == 2 and "industry" in lacking.stderr
    good = workbook(tmp_path / "好.xlsx", [
        [demand, "质检报告审核", "制造业", "江津区", long, "800000", "王工"],
        [demand, "焊缝缺陷识别", "C", "江津区", long, None, None],
    ])  # fmt: skip
    imported = dizuo("scenario", "import", str(good), env=env)
    assert imported.returncode == 0 and "imported 2 scenarios" in imported.stdout
    rows = json.loads(dizuo("scenario", "list", "--json", env=env).stdout)["data"]
    assert sorted(r["title"] for r in rows) == ["焊缝缺陷识别", "质检报告审核"] and {
        r["status"] for r in rows
    } == {"draft"}
