"""The console's agents page in a real browser: an organization's members see their own agents and
those listed for every organization, never another organization's private ones; platform admins
see every agent and the adoption indicator (on the overview too) (active agents, organizations using one, by industry
and district)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, cast

import openai
import pytest

from dizuo.accounts import create_key, create_org
from dizuo.accounts.members import create_member
from dizuo.agents.loop import Runner
from dizuo.agents.service import Agents
from dizuo.agents.tables import AgentVersion
from dizuo.billing import parse_cny
from dizuo.billing.service import topup
from dizuo.store import Database
from tests.support.browser import PASSWORD, screenshot, sign_in
from tests.support.platform import RunningGateway, Serve, upstream_deployment
from tests.support.upstream import FakeUpstream


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """The agents' console pages and playground on a platform whose ``agentic-model`` calls each tool it is
    offered in turn, then answers with their results."""
    with serve([upstream_deployment("agentic-model", "agentic")]) as running:
        yield running


def test_the_agents_page_shows_each_member_what_it_may_call_and_the_adoption_indicator(
    gateway: RunningGateway, browser: Any
) -> None:
    db = Database(gateway.settings.resolved_database_url)
    agents: Agents = cast(Runner, gateway.app.agents).agents
    tag = uuid.uuid4().hex[:6]
    maker, user, bystander = f"船机-{tag}", f"电子-{tag}", f"纺织-{tag}"
    ids = {}
    for name, industry, district in (
        (maker, "制造业", "两江新区"),
        (user, "信息技术", "渝北区"),
        (bystander, "制造业", "渝北区"),
    ):
        ids[name] = create_org(db, name, industry=industry, district=district).id
        topup(db, name, parse_cny("10"))
    spec = {
        "name": f"质检助手-{tag}",
        "model": "agentic-model",
        "description": "回答检验规范",
        "visibility": "platform",
    }
    agents.create(ids[maker], spec)
    agents.publish(ids[maker], spec["name"])
    agents.create(ids[maker], {**spec, "name": f"内部助手-{tag}", "visibility": "org"})
    # Listed for every organization as the bench's grade allows (its own test covers the grading).
    with db.session() as session:
        version = session.get(AgentVersion, (agents.show(ids[maker], spec["name"])["id"], 1))
        assert version is not None
        version.visibility, version.grade = "platform", "C"
    key = create_key(db, user).key
    with openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0) as client:
        client.chat.completions.create(
            model=f"agent/{spec['name']}", messages=[{"role": "user", "content": "你好"}]
        )
    for nickname, role, extra in (
        ("root", "platform-admin", {}),
        ("dev", "org-developer", {"org": bystander}),
    ):
        create_member(db, f"{nickname}-{tag}", PASSWORD, role, **extra)
    db.dispose()

    page = sign_in(browser, gateway.url, f"root-{tag}")
    # The overview counts the agents indicator among its figures, linked to the agents page.
    active = int(page.get_by_test_id("agents-active").inner_text())
    share = page.get_by_test_id("agents-share")
    assert active >= 1 and share.inner_text().endswith("%") and " / " in (share.get_attribute("title") or "")
    page.get_by_role("link", name="智能体", exact=True).click()
    page.wait_for_selector("[data-testid=agents]")
    listed = page.get_by_test_id("agents").locator(f"tr[data-agent='{spec['name']}']").inner_text()
    assert maker in listed and "回答检验规范" in listed and "已评测上架 · 评级 C" in listed and "v1" in listed
    assert (
        "草稿（未发布）"
        in page.get_by_test_id("agents").locator(f"tr[data-agent='内部助手-{tag}']").inner_text()
    )
    indicator = page.get_by_test_id("agent-adoption").inner_text()
    assert "活跃智能体" in indicator and "两江新区" in indicator and "信息技术" in indicator
    by = page.get_by_test_id("agent-adoption-by").inner_text()
    assert any("信息技术" in line and "1 / 1" in line for line in by.splitlines()), by
    screenshot(page, "console-agents")

    member = sign_in(browser, gateway.url, f"dev-{tag}")
    member.goto(f"{gateway.url}/console/agents")
    seen = member.get_by_test_id("agents").inner_text()
    assert spec["name"] in seen and f"内部助手-{tag}" not in seen
    assert member.get_by_test_id("agent-adoption").count() == 0


def test_the_playground_calls_an_agent_and_shows_its_steps(
    gateway: RunningGateway, browser: Any, upstream: FakeUpstream
) -> None:
    db = Database(gateway.settings.resolved_database_url)
    agents: Agents = cast(Runner, gateway.app.agents).agents
    tag = uuid.uuid4().hex[:6]
    org = f"试用-{tag}"
    org_id = create_org(db, org).id
    topup(db, org, parse_cny("10"))
    key = create_key(db, org).key
    agents.allow_host(upstream.host)
    schema = {"type": "object", "properties": {"part": {"type": "string"}}, "required": ["part"]}
    url = f"http://{upstream.host}:{upstream.port}/erp/parts"
    spec = {"name": f"库存助手-{tag}", "model": "agentic-model", "tools": [{"http": {"name": "erp_lookup", "url": url, "schema": schema}}]}  # fmt: skip
    agents.create(org_id, spec)
    agents.publish(org_id, spec["name"])
    create_member(db, f"dev-{tag}", PASSWORD, "org-developer", org=org)
    db.dispose()

    page = sign_in(browser, gateway.url, f"dev-{tag}")
    page.get_by_role("link", name="体验").click()
    page.get_by_label("API 密钥").fill(key)
    page.get_by_label("模型").select_option(f"agent/{spec['name']}")
    page.get_by_label("消息").fill("查零件 A-1")
    page.get_by_role("button", name="发送").click()
    page.get_by_test_id("answer").filter(has_text="重庆二号库").wait_for(timeout=15_000)
    # The answer streams as the model writes it; its model step is listed once that call ends.
    page.get_by_test_id("steps").locator("li").nth(2).wait_for(timeout=15_000)
    steps = page.get_by_test_id("steps").locator("li").all_inner_texts()
    assert [s.split(" ")[:2] for s in steps] == [
        ["model", "agentic-model"],
        ["tool", "erp_lookup"],
        ["model", "agentic-model"],
    ], steps
    assert '{"part":"A-1"}' in steps[1].replace(" ", "")
    screenshot(page, "console-playground-agent")


def test_a_member_writes_saves_and_publishes_an_agent_in_the_builder(
    gateway: RunningGateway, browser: Any
) -> None:
    db = Database(gateway.settings.resolved_database_url)
    agents: Agents = cast(Runner, gateway.app.agents).agents
    tag = uuid.uuid4().hex[:6]
    org, other = f"船机-{tag}", f"邻厂-{tag}"
    org_id = create_org(db, org).id
    create_org(db, other)
    topup(db, org, parse_cny("10"))
    key = create_key(db, org).key
    create_member(db, f"dev-{tag}", PASSWORD, "org-developer", org=org)
    create_member(db, f"aud-{tag}", PASSWORD, "auditor")
    create_member(db, f"nb-{tag}", PASSWORD, "org-developer", org=other)
    db.dispose()
    name = f"规范助手-{tag}"

    page = sign_in(browser, gateway.url, f"dev-{tag}")
    page.goto(f"{gateway.url}/console/agents")
    page.get_by_test_id("agent-new").click()
    builder = page.get_by_label("定义（YAML）")
    assert "name: 质检助手" in builder.input_value()  # the template to start from
    # A knowledge base the organization does not have: refused, the field named, the text kept, nothing stored.
    wrong = f"name: {name}\nmodel: agentic-model\ndescription: 回答规范\ntools:\n  - kb_search: {{knowledge_bases: [没有这个库]}}\n"
    builder.fill(wrong)
    page.get_by_role("button", name="保存并发布").click()
    problem = page.get_by_test_id("agent-problem").inner_text()
    # The field is named in the error.
    assert "tools[0].kb_search.knowledge_bases" in problem and "没有这个库" in problem, problem
    assert page.get_by_label("定义（YAML）").input_value() == wrong
    assert agents.of_org(org_id) == []
    screenshot(page, "console-agent-builder")

    page.get_by_label("定义（YAML）").fill(f"name: {name}\nmodel: agentic-model\ndescription: 回答规范\n")
    page.get_by_role("button", name="保存并发布").click()
    assert page.get_by_test_id("agent-saved").inner_text() == "已发布为第 1 版。"
    with openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0) as client:
        answer = client.chat.completions.create(
            model=f"agent/{name}", messages=[{"role": "user", "content": "你好"}]
        )
    assert answer.choices[0].message.content

    # A draft changed and saved: the list shows it; the published version stays v1.
    page.get_by_label("定义（YAML）").fill(
        f"name: {name}\nmodel: agentic-model\ndescription: 回答规范与案例\n"
    )
    page.get_by_role("button", name="保存草稿").click()
    assert page.get_by_test_id("agent-saved").inner_text() == "草稿已保存。"
    assert "v1" in page.get_by_test_id("agent-versions").inner_text()
    page.get_by_role("link", name="← 返回智能体列表").click()
    row = page.get_by_test_id("agents").locator(f"tr[data-agent='{name}']").inner_text()
    assert "回答规范与案例" in row and "v1" in row
    assert agents.show(org_id, name)["version"] == 1

    # An auditor reads agents but is offered no builder and may not post one; another organization's
    # member cannot open this agent.
    auditor = sign_in(browser, gateway.url, f"aud-{tag}")
    auditor.goto(f"{gateway.url}/console/agents?org={org}")
    assert auditor.get_by_test_id("agent-new").count() == 0
    assert auditor.goto(f"{gateway.url}/console/agents/edit?org={org}").status == 403
    neighbour = sign_in(browser, gateway.url, f"nb-{tag}")
    assert neighbour.goto(f"{gateway.url}/console/agents/edit?name={name}").status == 404
