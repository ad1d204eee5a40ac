"""Registering datasets in the sandbox: the formats a data owner has (CSV in UTF-8 or GB18030, XLSX,
Parquet), what is refused (core data, ID numbers in a column not called an identifier, a new load
whose columns differ), and that a refusal changes nothing. Through the admin API with a member's
token, as an owner's admin does it; the CLI as the operator does it."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path
from typing import Any, cast

import duckdb
import pytest
from openpyxl import Workbook

from dizuo.accounts.members import create_member, create_token
from dizuo.sandbox.service import Grantee, Sandbox
from tests.sandbox.conftest import Residents
from tests.support.cli import dizuo
from tests.support.platform import GatewayApp, PlatformUnderTest, Tenant

IDENTIFIERS = "身份证号,姓名,手机号"


def member(platform: PlatformUnderTest, role: str, org: Tenant | None = None) -> dict[str, str]:
    username = f"{role}-{uuid.uuid4().hex[:6]}"
    create_member(platform.db, username, "correct horse battery", role, **({"org": org.name} if org else {}))
    return {"Authorization": f"Bearer {create_token(platform.db, username)}", "accept-language": "en"}


def small_file(
    folder: Path, rows: list[dict[str, Any]], name: str = "small.csv", encoding: str = "utf-8"
) -> Path:
    path = folder / name
    with path.open("w", encoding=encoding, newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


async def add(
    platform: PlatformUnderTest, headers: dict[str, str], path: Path, **form: Any
) -> tuple[int, dict[str, Any]]:
    answer = await platform.http().post(
        "/admin/v1/sandbox/datasets",
        headers=headers,
        params={"filename": path.name, **{key: str(value) for key, value in form.items()}},
        content=path.read_bytes(),
    )
    return answer.status_code, answer.json()


async def test_an_owner_registers_a_dataset_and_everyone_sees_its_schema_never_its_rows(
    gateway_app: GatewayApp, residents: Residents
) -> None:
    platform = await gateway_app()
    owner = platform.org()
    name = f"居民_{uuid.uuid4().hex[:6]}"
    status, made = await add(
        platform,
        member(platform, "org-admin", owner),
        residents.path,
        name=name,
        owner=owner.name,
        classification="important",
        personal="true",
        identifiers=IDENTIFIERS,
        quasi="区县,性别,出生日期,年龄",
        sensitive="月收入,参保类别",
        bounds=json.dumps({"月收入": [0, 100000]}),
        description="某市常住人口（合成数据）",
        schedule="每月",
    )
    assert status == 201, made
    assert made["rows"] == len(residents.rows) and made["owner"] == owner.name and made["version"] == 1
    kinds = {c["name"]: c["sensitivity"] for c in made["columns"]}
    assert kinds["身份证号"] == "identifier" and kinds["区县"] == "quasi" and kinds["家庭人数"] == "public"
    # The catalog, to another organization's developer and through an API key: no values anywhere.
    other = platform.org(scopes=["sandbox"])
    listed = (await platform.http().get("/admin/v1/sandbox/datasets", headers=member(platform, "org-developer", other))).json()  # fmt: skip
    by_key = (await platform.http(other.key).get(f"/v1/sandbox/datasets/{name}")).json()
    assert by_key == next(d for d in listed if d["name"] == name)
    text = json.dumps(listed, ensure_ascii=False)
    assert residents.rows[0]["身份证号"] not in text and residents.rows[0]["姓名"] not in text
    # Another organization's admin cannot register for this owner.
    refused, body = await add(platform, member(platform, "org-admin", other), residents.path, name="x", owner=owner.name, classification="general")  # fmt: skip
    assert refused == 403 and body["error"]["type"] == "permission_error"


async def test_core_data_and_undeclared_id_numbers_are_refused_and_nothing_is_stored(
    gateway_app: GatewayApp, residents: Residents, tmp_path: Path
) -> None:
    platform = await gateway_app()
    owner = platform.org()
    admin = member(platform, "org-admin", owner)
    name = f"居民_{uuid.uuid4().hex[:6]}"
    store = cast(Sandbox, platform.platform.knowledge.state.sandbox).store
    stored = store.files()
    status, body = await add(
        platform, admin, residents.path, name=name, owner=owner.name, classification="core"
    )
    assert status == 400 and body["error"]["code"] == "sandbox_core_data"
    # 手机号 is not called an identifier: the guard finds phone numbers in it.
    status, body = await add(
        platform,
        admin,
        residents.path,
        name=name,
        owner=owner.name,
        classification="important",
        identifiers="身份证号,姓名",
    )
    assert status == 400 and body["error"]["code"] == "sandbox_undeclared_identifier"
    assert "手机号" in body["error"]["message"] and "mobile numbers" in body["error"]["message"]
    listed = (await platform.http().get("/admin/v1/sandbox/datasets", headers=admin)).json()
    assert name not in [d["name"] for d in listed]
    assert store.files() == stored  # no rows kept of either


async def test_csv_in_gb18030_xlsx_and_parquet_load_alike(gateway_app: GatewayApp, tmp_path: Path) -> None:
    platform = await gateway_app()
    sandbox = cast(Sandbox, platform.platform.knowledge.state.sandbox)
    owner = platform.org()
    rows = [{"区县": "渝中区" if i % 3 else "江北区", "企业数": i, "行业": "制造业"} for i in range(30)]
    gbk = small_file(tmp_path, rows, "企业.csv", encoding="gb18030")
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(rows[0]))
    for row in rows:
        sheet.append(list(row.values()))
    xlsx = tmp_path / "企业.xlsx"
    book.save(xlsx)
    parquet = tmp_path / "企业.parquet"
    duckdb.execute(
        f"COPY (SELECT * FROM read_csv('{small_file(tmp_path, rows)}')) TO '{parquet}' (FORMAT parquet)"
    )
    for path in (gbk, xlsx, parquet):
        name = f"企业_{uuid.uuid4().hex[:6]}"
        made = sandbox.add_dataset(
            owner.id, {"name": name, "classification": "general"}, path, path.name, "数据局"
        )
        assert made["rows"] == 30 and [c["name"] for c in made["columns"]] == ["区县", "企业数", "行业"]
        sandbox.grant(name, owner.id, {"columns": ["区县", "企业数"], "k": 5}, Grantee(owner.id, "数据局"))
        answer = sandbox.query(name, f"SELECT 区县, sum(企业数) FROM {name} GROUP BY 区县 ORDER BY 区县", Grantee(owner.id, "数据局"))  # fmt: skip
        assert answer["rows"] == [
            ["江北区", sum(range(0, 30, 3))],
            ["渝中区", sum(i for i in range(30) if i % 3)],
        ]


async def test_a_new_load_must_match_the_registered_columns_or_nothing_changes(
    gateway_app: GatewayApp, tmp_path: Path
) -> None:
    platform = await gateway_app()
    sandbox = cast(Sandbox, platform.platform.knowledge.state.sandbox)
    owner = platform.org()
    name = f"企业_{uuid.uuid4().hex[:6]}"
    first = [{"区县": "渝中区", "企业数": i} for i in range(20)]
    sandbox.add_dataset(owner.id, {"name": name, "classification": "general"}, small_file(tmp_path, first), "a.csv", "数据局")  # fmt: skip
    sandbox.grant(name, owner.id, {"columns": ["区县", "企业数"], "k": 5}, Grantee(owner.id, "数据局"))
    swapped = [{"企业数": i, "区县": "渝中区"} for i in range(20)]
    with pytest.raises(Exception) as refused:
        sandbox.add_dataset(owner.id, {"name": name, "classification": "general"}, small_file(tmp_path, swapped, "b.csv"), "b.csv", "数据局")  # fmt: skip
    message = refused.value.message("en")  # type: ignore[attr-defined]
    assert "(column 1)" in message and "registered 区县 VARCHAR, the file has 企业数 BIGINT" in message
    count = sandbox.query(name, f"SELECT count(*) FROM {name}", Grantee(owner.id, "数据局"))
    assert count["rows"] == [[20]] and sandbox.dataset(name)["version"] == 1
    more = [{"区县": "江北区", "企业数": i} for i in range(35)]
    again = sandbox.add_dataset(owner.id, {"name": name, "classification": "general"}, small_file(tmp_path, more, "c.csv"), "c.csv", "数据局")  # fmt: skip
    assert again["version"] == 2 and again["rows"] == 35
    assert sandbox.query(name, f"SELECT count(*) FROM {name}", Grantee(owner.id, "数据局"))["rows"] == [[35]]
    assert [f for f in sandbox.store.files() if f.startswith(again["id"])] == [
        f"{again['id']}-v2" + (".duckdb" if sandbox.db.is_sqlite else "")
    ]  # the old rows are gone


async def test_requests_grants_and_the_log_through_the_admin_api(
    gateway_app: GatewayApp, residents: Residents
) -> None:
    platform = await gateway_app()
    sandbox = cast(Sandbox, platform.platform.knowledge.state.sandbox)
    owner, enterprise = platform.org(), platform.org()
    name = f"居民_{uuid.uuid4().hex[:6]}"
    sandbox.add_dataset(owner.id, {"name": name, "classification": "important", "identifiers": IDENTIFIERS.split(",")}, residents.path, "r.csv", "数据局")  # fmt: skip
    dev, owner_admin, auditor = member(platform, "org-developer", enterprise), member(platform, "org-admin", owner), member(platform, "auditor")  # fmt: skip
    http = platform.http()
    asked = await http.post("/admin/v1/sandbox/requests", headers=dev, json={"dataset": name, "org": enterprise.name, "purpose": "测算各区县养老服务需求"})  # fmt: skip
    assert asked.status_code == 201 and asked.json()["status"] == "pending"
    # The enterprise's developer cannot grant itself; the owner's admin can.
    body = {"dataset": name, "org": enterprise.name, "columns": ["区县", "年龄"], "k": 20}
    assert (await http.post("/admin/v1/sandbox/grants", headers=dev, json=body)).status_code == 403
    granted = await http.post("/admin/v1/sandbox/grants", headers=owner_admin, json=body)
    assert granted.status_code == 201 and granted.json()["purpose"] == "测算各区县养老服务需求"
    requests = (await http.get("/admin/v1/sandbox/requests", headers=dev)).json()
    assert [r["status"] for r in requests if r["dataset"] == name] == ["granted"]
    answer = await http.post("/admin/v1/sandbox/query", headers=dev, json={"dataset": name, "org": enterprise.name, "sql": f"SELECT 区县, avg(年龄) FROM {name} GROUP BY 区县"})  # fmt: skip
    assert answer.status_code == 200 and answer.json()["suppressed"] == 1  # 城口县: 6 < k = 20
    log = (await http.get("/admin/v1/sandbox/queries", headers=auditor)).json()
    assert any(q["organization"] == enterprise.name and q["decision"] == "released" for q in log)
    revoked = await http.post(f"/admin/v1/sandbox/grants/{granted.json()['id']}/revoke", headers=owner_admin)
    assert revoked.json()["state"] == "revoked"


def test_the_cli_registers_grants_and_queries_and_a_refusal_exits_2_with_its_position(
    tmp_path: Path, empty_database_url: str
) -> None:
    env = {"DIZUO_DATA_DIR": str(tmp_path), "DIZUO_DATABASE_URL": empty_database_url}
    data = tmp_path / "residents.csv"
    assert dizuo("sandbox", "demo-data", "--rows", "3000", "--out", str(data), env=env).returncode == 0
    assert dizuo("admin", "create-org", "市大数据局", env=env).returncode == 0
    assert dizuo("admin", "create-org", "某养老服务公司", env=env).returncode == 0
    added = dizuo("sandbox", "dataset", "add", "居民", "--owner", "市大数据局", "--file", str(data), "--class", "important", "--personal", "--identifiers", IDENTIFIERS, "--quasi", "区县,性别,出生日期,年龄", env=env)  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "3000 rows" in added.stdout
    grant = dizuo(
        "sandbox", "grant", "居民", "--org", "某养老服务公司", "--columns", "区县,年龄", "--k", "10", env=env
    )
    assert grant.returncode == 0 and grant.stdout.startswith("sdg_")
    query = dizuo("sandbox", "query", "居民", "SELECT 区县, count(*) AS n FROM 居民 GROUP BY 区县", "--org", "某养老服务公司", "--json", env=env)  # fmt: skip
    assert query.returncode == 0, query.stderr
    answer = json.loads(query.stdout)
    assert {"columns", "rows", "suppressed"} <= set(answer) and answer["columns"] == ["区县", "n"]
    assert sum(n for _, n in answer["rows"]) == 3000 - 6 and answer["suppressed"] == 1
    refused = dizuo("sandbox", "query", "居民", "SELECT 区县,\n  身份证号 FROM 居民", "--org", "某养老服务公司", env=env)  # fmt: skip
    assert refused.returncode == 2
    assert "line 2, column 3" in refused.stderr and "身份证号 is an identifier" in refused.stderr
    revoked = dizuo("sandbox", "revoke", grant.stdout.strip(), env=env)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    after = dizuo("sandbox", "query", "居民", "SELECT count(*) FROM 居民", "--org", "某养老服务公司", env=env)
    assert after.returncode == 2 and "was revoked" in after.stderr
