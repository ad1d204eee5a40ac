"""Queries in the data sandbox, through ``/v1/sandbox`` with an enterprise's API key: what passes
disclosure control leaves, small groups and differencing attacks do not, a bad or forbidden query is
refused with where it is wrong, and every decision is in the audit trail."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import pytest
from sqlalchemy import select

from dizuo.sandbox.service import Grantee, Sandbox
from dizuo.sandbox.tables import SandboxQuery
from dizuo.store.audit import AuditRecord
from tests.sandbox.conftest import Residents, register
from tests.support.platform import GatewayApp, PlatformUnderTest, Tenant

DISTRICT = "渝中区"
GRANTED = ["区县", "性别", "出生日期", "年龄", "月收入", "参保类别"]


@dataclass
class World:
    """A platform with a data owner's residents dataset granted to an enterprise (k = 10)."""

    platform: PlatformUnderTest
    sandbox: Sandbox
    owner: Tenant
    enterprise: Tenant
    dataset: str
    grant: dict[str, Any]

    async def query(self, sql: str, key: str | None = None, **extra: Any) -> tuple[int, dict[str, Any]]:
        """The status and body of a query (errors in English)."""
        answer = await self.platform.http(key or self.enterprise.key).post(
            "/v1/sandbox/query",
            json={"dataset": self.dataset, "sql": sql, **extra},
            headers={"accept-language": "en"},
        )
        return answer.status_code, answer.json()

    async def released(self, sql: str, **extra: Any) -> dict[str, Any]:
        status, body = await self.query(sql, **extra)
        assert status == 200, body
        return body


Build = Callable[..., Awaitable[World]]


@pytest.fixture
def world(gateway_app: GatewayApp, residents: Residents) -> Build:
    async def build(
        grant: dict[str, Any] | None = None, spec: dict[str, Any] | None = None, **settings: Any
    ) -> World:
        platform = await gateway_app(**settings)
        sandbox = cast(Sandbox, platform.platform.knowledge.state.sandbox)
        owner, enterprise = platform.org(), platform.org(scopes=["sandbox"])
        name = f"居民_{uuid.uuid4().hex[:6]}"
        register(sandbox, owner.id, residents.path, name, **(spec or {}))
        sandbox.request(name, Grantee(enterprise.id, "dev"), "研究各区县的参保情况")
        conditions = {"columns": GRANTED, "k": 10, **(grant or {})}
        granted = sandbox.grant(name, enterprise.id, conditions, Grantee(owner.id, "数据局管理员"))
        return World(platform, sandbox, owner, enterprise, name, granted)

    return build


async def test_an_aggregate_by_district_leaves_and_the_tiny_district_is_withheld(
    world: Build, residents: Residents
) -> None:
    w = await world()
    body = await w.released(
        f"SELECT 区县, count(*) AS 人数, sum(月收入) AS 总收入 FROM {w.dataset} GROUP BY 区县"
    )
    truth = residents.by_district()
    income: dict[str, float] = defaultdict(float)
    for row in residents.rows:
        income[row["区县"]] += float(row["月收入"])
    assert body["columns"] == ["区县", "人数", "总收入"]
    released = {district: (count, total) for district, count, total in body["rows"]}
    # Every district of 10 or more residents, with its exact count and sum; 城口县 (6) is withheld.
    assert {d: c for d, (c, _) in released.items()} == {d: n for d, n in truth.items() if n >= 10}
    assert all(total == pytest.approx(income[d]) for d, (_, total) in released.items())
    assert truth["城口县"] < 10 and "城口县" not in released
    assert body["suppressed"] == 1
    assert "fewer than 10 rows" in body["notes"][0]["en"] and "少于 10 行" in body["notes"][0]["zh"]


@pytest.mark.parametrize(
    ("sql", "code", "where", "says"),
    [
        (
            "SELECT 身份证号, count(*) FROM {t} GROUP BY 身份证号",
            "sandbox_query_refused",
            (1, 8),
            "identifier",
        ),
        (
            "SELECT count(*) FROM {t}\nWHERE 手机号 = '13800138000'",
            "sandbox_query_refused",
            (2, 7),
            "identifier",
        ),
        (
            "SELECT 区县, count(*) FROM {t} JOIN 企业名录 ON 1 = 1 GROUP BY 区县",
            "sandbox_query_refused",
            None,
            "企业名录 is not granted",
        ),
        ("DELETE FROM {t} WHERE 年龄 > 60", "sandbox_query_refused", (1, 1), "read-only SELECT"),
        ("SELECT 区县, 年龄 FROM {t}", "sandbox_query_refused", (1, 8), "row-level results"),
        ("SELECT max(月收入) FROM {t}", "sandbox_query_refused", (1, 12), "public columns only"),
        (
            "SELECT sum(CASE WHEN 年龄 = 37 THEN 月收入 END) FROM {t}",
            "sandbox_query_refused",
            (1, 11),
            "one column",
        ),
        (
            "SELECT * FROM read_csv('/etc/passwd')",
            "sandbox_query_refused",
            None,
            "FROM must name the dataset",
        ),
        ("SELECT count(*) FROM {t} WHERE (年龄 > 30", "sandbox_sql_invalid", (1, None), "Expecting )"),
        ("SELECT 职业, count(*) FROM {t} GROUP BY 职业", "sandbox_sql_invalid", (1, 8), "has no column 职业"),
        (
            "SELECT 家庭人数, count(*) FROM {t} GROUP BY 家庭人数",
            "sandbox_query_refused",
            (1, 8),
            "does not include column 家庭人数",
        ),
    ],
)
async def test_a_query_the_rules_forbid_is_refused_with_its_reason_and_position(
    world: Build, sql: str, code: str, where: tuple[int, int | None] | None, says: str
) -> None:
    w = await world()
    status, body = await w.query(sql.format(t=w.dataset))
    assert status == 400, body
    error = body["error"]
    assert error["code"] == code and error["param"] == "sql"
    assert says in error["message"] and "Nothing ran" in error["message"]
    if where is not None:
        line, column = where
        assert f"(line {line}, column {column if column is not None else ''}" in error["message"]
    # Nothing ran, nothing was counted against the grant; the refusal is in the log.
    grants = (await w.platform.http(w.enterprise.key).get("/v1/sandbox/grants")).json()["data"]
    assert grants[0]["queries_used"] == 0
    log = (await w.platform.http(w.enterprise.key).get("/v1/sandbox/queries")).json()["data"]
    assert log and all(q["decision"] == "refused" and q["reason"] == code for q in log)


async def test_a_differencing_attack_inside_one_query_is_withheld(world: Build, residents: Residents) -> None:
    """The district's count minus "everyone there but one person" would be that person."""
    w = await world()
    person = residents.someone_in(DISTRICT)
    whole = await w.released(f"SELECT count(*) FROM {w.dataset} WHERE 区县 = '{DISTRICT}'")
    assert whole["rows"] == [[residents.by_district()[DISTRICT]]]
    attack = await w.released(
        f"SELECT count(*), sum(月收入) FROM {w.dataset} WHERE 区县 = '{DISTRICT}' "
        f"AND NOT (出生日期 = '{person['出生日期']}' AND 性别 = '{person['性别']}')"
    )
    assert attack["rows"] == [] and attack["suppressed"] == 1
    assert "removes fewer than 10 rows" in attack["notes"][0]["en"]


async def test_a_differencing_attack_across_two_queries_is_withheld(
    world: Build, residents: Residents
) -> None:
    """Two ranges one day apart differ by the people born that day; per gender, the one group that
    differs by fewer than k is withheld, the other is not."""
    w = await world()
    person = residents.someone_in(DISTRICT)
    day = person["出生日期"]
    sql = f"SELECT 性别, count(*), sum(月收入) FROM {w.dataset} WHERE 区县 = '{DISTRICT}' AND 出生日期 {{op}} '{day}' GROUP BY 性别 ORDER BY 性别"  # fmt: skip
    first = await w.released(sql.format(op=">"))
    assert len(first["rows"]) == 2 and first["suppressed"] == 0
    second = await w.released(sql.format(op=">="))
    assert [row[0] for row in second["rows"]] == [g for g in ("女", "男") if g != person["性别"]]
    assert second["suppressed"] == 1
    assert "differ from an earlier released answer" in second["notes"][0]["en"]
    # A new grant to the same organization starts no new history.
    w.sandbox.revoke(w.grant["id"], Grantee(w.owner.id, "数据局管理员"))
    w.sandbox.grant(w.dataset, w.enterprise.id, {"columns": GRANTED}, Grantee(w.owner.id, "数据局管理员"))
    again = await w.released(sql.format(op=">="))
    assert again["suppressed"] == 1


async def test_under_a_privacy_budget_counts_carry_noise_and_the_budget_runs_out(
    world: Build, residents: Residents
) -> None:
    w = await world(grant={"epsilon": 1.0})
    truth = residents.by_district()
    sql = f"SELECT 区县, count(*) FROM {w.dataset} GROUP BY 区县 ORDER BY 区县"
    # An average is refused (sum / count is what noise can protect), and costs nothing.
    status, refused = await w.query(f"SELECT avg(月收入) FROM {w.dataset}", epsilon=0.5)
    assert status == 400 and "an average is sum / count" in refused["error"]["message"]
    answers = [await w.released(sql, epsilon=0.25) for _ in range(4)]
    for body in answers:
        assert body["epsilon"] == 0.25 and "ε=0.25" in body["notes"][-1]["en"]
        for district, count in body["rows"]:
            assert abs(count - truth[district]) < 200  # Laplace, scale 4: beyond 200 has odds e^-50
    noisy = [tuple(row[1] for row in body["rows"]) for body in answers]
    assert len(set(noisy)) > 1  # fresh noise each time (equal twice: odds below 1e-6)
    status, spent = await w.query(sql, epsilon=0.25)
    assert status == 403 and spent["error"]["code"] == "sandbox_privacy_budget_spent"
    grant = w.sandbox.show_grant(w.grant["id"])
    assert grant["epsilon_spent"] == pytest.approx(1.0) and grant["queries_used"] == 4


async def test_a_noisy_sum_clamps_each_income_to_the_bounds_its_owner_registered(
    world: Build, residents: Residents
) -> None:
    """Bounds of 0 to 1,000 yuan: every income (1,500 and more in the demo data) counts as 1,000, so one
    person moves a district's sum by at most 1,000 and the noise is sized for that."""
    w = await world(grant={"epsilon": 10.0}, spec={"bounds": {"月收入": [0, 1000]}})
    body = await w.released(f"SELECT 区县, sum(月收入) FROM {w.dataset} GROUP BY 区县", epsilon=5)
    truth = residents.by_district()
    assert body["rows"] and body["suppressed"] == 1
    for district, total in body["rows"]:
        assert abs(total - 1000 * truth[district]) < 200 * 40  # Laplace, scale 200: odds e^-40 beyond


async def test_a_revoked_or_expired_grant_is_refused_and_another_organization_sees_no_grant(
    world: Build,
) -> None:
    w = await world()
    sql = f"SELECT 区县, count(*) FROM {w.dataset} GROUP BY 区县"
    assert (await w.query(sql))[0] == 200
    stranger = w.platform.org(scopes=["sandbox"])
    # Another organization: no grant (403 naming how to ask), and another's grant is not found.
    status, body = await w.query(sql, key=stranger.key)
    assert status == 403 and body["error"]["code"] == "sandbox_not_granted"
    seen = await w.platform.http(stranger.key).get(f"/v1/sandbox/grants/{w.grant['id']}")
    assert seen.status_code == 404 and seen.json()["error"]["code"] == "sandbox_grant_not_found"
    with pytest.raises(Exception, match="sandbox grant"):
        w.sandbox.revoke(w.grant["id"], Grantee(stranger.id, "someone"))
    # Revoked by its owner: the next query is refused.
    w.sandbox.revoke(w.grant["id"], Grantee(w.owner.id, "数据局管理员"))
    status, body = await w.query(sql)
    assert status == 403 and body["error"]["code"] == "sandbox_grant_inactive"
    assert "was revoked" in body["error"]["message"]


async def test_an_expired_grant_is_refused(world: Build) -> None:
    w = await world()
    sql = f"SELECT 区县, count(*) FROM {w.dataset} GROUP BY 区县"
    from dizuo.sandbox.tables import SandboxGrant
    from dizuo.store import utcnow

    with w.platform.db.session() as session:
        row = session.get(SandboxGrant, w.grant["id"])
        assert row is not None
        row.expires_at = utcnow()
    status, body = await w.query(sql)
    assert status == 403 and body["error"]["code"] == "sandbox_grant_inactive"
    assert w.sandbox.show_grant(w.grant["id"])["state"] == "expired"


async def test_a_query_past_its_time_limit_is_stopped_and_costs_nothing(world: Build) -> None:
    w = await world(sandbox_query_seconds=0.05)
    heavy = (
        f"SELECT 区县, count(*) FROM {w.dataset} WHERE "
        + " OR ".join(
            f"lower(concat(区县, 性别, 参保类别, CAST(月收入 + {i} AS VARCHAR))) LIKE '%{i}9%'"
            for i in range(150)
        )
        + " GROUP BY 区县"
    )
    status, body = await w.query(heavy)
    assert status == 400 and body["error"]["code"] == "sandbox_query_timeout", body
    assert w.sandbox.show_grant(w.grant["id"])["queries_used"] == 0


async def test_a_query_that_fails_as_it_runs_is_a_clear_400_recorded_and_not_charged(
    world: Build, residents: Residents
) -> None:
    w = await world()
    status, body = await w.query(
        f"SELECT 区县, count(*) FROM {w.dataset} WHERE CAST(区县 AS INTEGER) > 1 GROUP BY 区县"
    )
    assert status == 400 and body["error"]["code"] == "sandbox_query_failed", body
    message = body["error"]["message"]
    assert body["error"]["param"] == "sql" and any(
        d in message for d in residents.by_district()
    )  # what did not cast
    assert w.sandbox.show_grant(w.grant["id"])["queries_used"] == 0
    logged = w.sandbox.queries(w.enterprise.id)[0]
    assert (logged["decision"], logged["reason"]) == ("refused", "sandbox_query_failed")


async def test_every_decision_is_in_the_audit_trail(world: Build) -> None:
    w = await world()
    fine = await w.released(f"SELECT 区县, count(*) FROM {w.dataset} GROUP BY 区县")
    refused_status, _ = await w.query(f"SELECT 身份证号 FROM {w.dataset}")
    assert refused_status == 400
    with w.platform.db.session() as session:
        logged = session.scalars(select(SandboxQuery).where(SandboxQuery.org_id == w.enterprise.id)).all()
        trail = session.scalars(
            select(AuditRecord).where(
                AuditRecord.action == "sandbox.query", AuditRecord.org_id == w.enterprise.id
            )
        ).all()
        acts = {
            r.action for r in session.scalars(select(AuditRecord).where(AuditRecord.target == w.grant["id"]))
        }
    assert sorted(q.decision for q in logged) == ["refused", "released"]
    decisions = {r.target: (r.detail or {}).get("decision") for r in trail}
    assert decisions == {q.id: q.decision for q in logged}
    assert fine["id"] in decisions
    released = next(q for q in logged if q.decision == "released")
    assert released.rows_out == len(fine["rows"]) and released.suppressed == fine["suppressed"]
    assert acts == {"sandbox.grant"}


async def test_rows_leave_only_under_a_grant_that_allows_them_and_never_identifiers(world: Build) -> None:
    w = await world(grant={"rows": True, "columns": ["区县", "年龄"]}, sandbox_max_rows=50)
    body = await w.released(f"SELECT 区县, 年龄 FROM {w.dataset} WHERE 年龄 > 30")
    assert body["kind"] == "rows" and len(body["rows"]) == 50 and body["truncated"] is True
    status, refused = await w.query(f"SELECT 区县, 姓名 FROM {w.dataset}")
    assert status == 400 and "姓名 is an identifier" in refused["error"]["message"]
