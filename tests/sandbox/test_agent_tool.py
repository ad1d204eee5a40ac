"""An agent's ``sandbox_query`` tool: the model's SQL runs under the calling organization's grant and
its disclosure control, so the agent reads what a person of that organization could read; a refusal
(no grant, an identifier column) is the tool's result, with its reason, for the model to read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, cast

import openai
import pytest

from dizuo.accounts import create_key, create_org
from dizuo.agents.loop import Runner
from dizuo.billing import parse_cny
from dizuo.billing.service import topup
from dizuo.errors import DizuoError
from dizuo.sandbox.service import Grantee, Sandbox
from dizuo.store import Database
from tests.sandbox.conftest import Residents
from tests.support.platform import RunningGateway, Serve, upstream_deployment


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """A platform whose ``agentic-model`` calls each tool it is offered in turn (the sandbox's query tool
    among them), then answers with their results."""
    with serve([upstream_deployment("agentic-model", "agentic")]) as running:
        yield running


def tenant(db: Database, prefix: str) -> tuple[str, str]:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    org = create_org(db, name)
    topup(db, name, parse_cny("5"))
    return org.id, create_key(db, name).key


def ask(gateway: RunningGateway, key: str, model: str, question: str) -> str:
    with openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0, timeout=30) as client:
        answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}])
    return answer.choices[0].message.content or ""


def test_an_agent_asks_the_sandbox_under_its_caller_s_grant(
    gateway: RunningGateway, residents: Residents
) -> None:
    sandbox = cast(Sandbox, gateway.platform.knowledge.state.sandbox)
    agents = cast(Runner, gateway.app.agents).agents
    db = Database(gateway.settings.resolved_database_url)
    owner = create_org(db, f"大数据局-{uuid.uuid4().hex[:6]}")
    name = f"居民_{uuid.uuid4().hex[:6]}"
    sandbox.add_dataset(owner.id, {"name": name, "classification": "important", "identifiers": ["身份证号", "姓名", "手机号"]}, residents.path, "r.csv", "局")  # fmt: skip
    granted_id, granted_key = tenant(db, "保险公司")
    other_id, other_key = tenant(db, "物流公司")
    sandbox.grant(name, granted_id, {"columns": ["区县", "年龄"], "k": 10}, Grantee(owner.id, "局"))
    definition = {
        "name": "人口分析",
        "model": "agentic-model",
        "tools": [{"sandbox_query": {"datasets": [name]}}],
    }
    models = {}
    for org_id in (granted_id, other_id):
        agents.create(org_id, definition)
        models[org_id] = f"agent/{agents.publish(org_id, '人口分析')['name']}"
    db.dispose()

    sql = f"SELECT 区县, count(*) AS n FROM {name} GROUP BY 区县 ORDER BY 区县"
    answer = ask(gateway, granted_key, models[granted_id], f"各区县多少人？ SQL:{sql}")
    truth = residents.by_district()
    assert f'["渝北区",{truth["渝北区"]}]' in answer.replace(" ", "") and "城口县" not in answer
    assert '"suppressed":1' in answer.replace(" ", "")
    # An identifier column: refused, and the model reads why and where.
    refused = ask(gateway, granted_key, models[granted_id], f"谁住在哪？ SQL:SELECT 区县, 姓名 FROM {name}")
    assert "line 1, column 12" in refused and "identifier" in refused
    # The same agent in an organization without a grant reads nothing.
    stranger = ask(gateway, other_key, models[other_id], f"各区县多少人？ SQL:{sql}")
    assert "no grant" in stranger and str(truth["渝北区"]) not in stranger


def test_a_definition_naming_a_dataset_the_sandbox_lacks_is_refused(gateway: RunningGateway) -> None:
    agents = cast(Runner, gateway.app.agents).agents
    db = Database(gateway.settings.resolved_database_url)
    org_id, _ = tenant(db, "某公司")
    db.dispose()
    spec: dict[str, Any] = {"name": "查数", "model": "agentic-model", "tools": [{"sandbox_query": {"datasets": ["不存在的数据"]}}]}  # fmt: skip
    with pytest.raises(DizuoError) as refused:
        agents.create(org_id, spec)
    assert refused.value.param == "tools[0].sandbox_query.datasets[0]"
