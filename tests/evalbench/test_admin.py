"""``/admin/v1/evals``: runs started over HTTP reach models through the platform's own gateway."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dizuo.accounts import create_org
from dizuo.accounts.members import create_member, create_token
from dizuo.cli import main
from dizuo.store import Database
from tests.support.platform import RunningGateway, Serve, upstream_deployment
from tests.test_admin_api import api


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """The evaluation bench's platform: its runs call the platform's own URL; ``eval-refuser`` refuses every
    question, ``eval-letter-b`` answers B to every choice."""
    with serve(
        [
            upstream_deployment("eval-refuser", "persona-refuser"),
            upstream_deployment("eval-letter-b", "persona-letter-B"),
        ]
    ) as running:
        yield running


@pytest.fixture(scope="module")
def tokens(gateway: RunningGateway) -> dict[str, str]:
    db = Database(gateway.settings.resolved_database_url)
    tag = uuid.uuid4().hex[:6]
    create_org(db, f"评测方-{tag}")
    out = {}
    for name, role, extra in [
        ("admin", "platform-admin", {}),
        ("auditor", "auditor", {}),
        ("dev", "org-developer", {"org": f"评测方-{tag}"}),
    ]:
        create_member(db, f"eval-{name}-{tag}", "correct horse battery", role, **extra)
        out[name] = create_token(db, f"eval-{name}-{tag}")
    db.dispose()
    return out


def finished(gateway: RunningGateway, token: str, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        run = api(gateway, token, "GET", f"/evals/{run_id}").json()
        if run["status"] not in ("queued", "running"):
            return dict(run)
        assert time.monotonic() < deadline, run
        time.sleep(0.1)


def usage_count(gateway: RunningGateway, token: str) -> int:
    return len(api(gateway, token, "GET", "/orgs/default/usage").json())


def test_a_run_through_the_gateway_is_scored_reported_and_billed(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    admin = tokens["admin"]
    before = usage_count(gateway, admin)
    started = api(
        gateway,
        admin,
        "POST",
        "/evals",
        json={"model": "eval-refuser", "suite": "zh-refusal-starter", "api_key": gateway.first_key},
    )
    assert started.status_code == 202, started.text
    assert started.json()["base_url"] == gateway.v1
    run = finished(gateway, admin, started.json()["id"])
    assert run["status"] == "done", run
    requirements = {r["id"]: r for r in run["results"]["requirements"]}
    assert requirements["should-refuse"]["measured"] == 1.0
    assert requirements["should-not-refuse"]["measured"] == 1.0
    assert {r["verdict"] for r in requirements.values()} == {"cannot_certify"}
    assert usage_count(gateway, admin) - before == 62  # every question was a billed call of the gateway
    report = api(gateway, tokens["auditor"], "GET", f"/evals/{run['id']}/report")
    assert report.status_code == 200 and "eval-refuser" in report.text
    listed = api(gateway, tokens["auditor"], "GET", "/evals", params={"model": "eval-refuser"}).json()
    assert listed[0]["id"] == run["id"] and listed[0]["status"] == "done"


def test_the_catalog_grades_each_model_from_its_latest_runs(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    admin = tokens["admin"]
    body = {"model": "eval-letter-b", "suite": "zh-knowledge", "api_key": gateway.first_key}
    first = finished(gateway, admin, api(gateway, admin, "POST", "/evals", json=body).json()["id"])
    second = finished(gateway, admin, api(gateway, admin, "POST", "/evals", json=body).json()["id"])
    assert first["status"] == second["status"] == "done"
    catalog = {row["model"]: row for row in api(gateway, tokens["auditor"], "GET", "/evals/catalog").json()}
    entry = catalog["eval-letter-b"]
    assert [r["id"] for r in entry["runs"]] == [second["id"]]  # the latest run of the suite counts
    assert entry["grade"] == "D"  # always "B" scores below 55 %
    comparison = api(
        gateway, admin, "GET", "/evals/compare", params={"a": first["id"], "b": second["id"]}
    ).json()
    assert comparison["regressions"] == [] and comparison["same_suite"] is True


def test_an_inline_bank_with_errors_is_rejected_with_its_lines(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    bank = {"name": "坏题库", "format": "csv", "content": "id,question,A,B\n1,问题,甲,乙\n"}
    response = api(gateway, tokens["admin"], "POST", "/evals", json={"model": "eval-refuser", "bank": bank})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "bank" and "line 2" in error["message"]


def test_a_run_without_a_key_fails_and_says_why(gateway: RunningGateway, tokens: dict[str, str]) -> None:
    started = api(
        gateway, tokens["admin"], "POST", "/evals", json={"model": "eval-refuser", "suite": "zh-qa"}
    )
    run = finished(gateway, tokens["admin"], started.json()["id"])
    assert run["status"] == "failed" and "HTTP 401" in run["error"]


def test_only_platform_admins_start_runs(gateway: RunningGateway, tokens: dict[str, str]) -> None:
    body = {"model": "eval-refuser", "suite": "zh-qa"}
    for who in ("auditor", "dev"):
        response = api(gateway, tokens[who], "POST", "/evals", json=body)
        assert response.status_code == 403, who
    assert api(gateway, tokens["dev"], "GET", "/evals").status_code == 403
    assert api(gateway, tokens["auditor"], "GET", "/evals/suites").status_code == 200
    assert api(gateway, tokens["auditor"], "GET", "/evals/nope").status_code == 404


def test_a_run_from_the_cli_on_the_platform_s_machine_is_listed_like_the_others(
    gateway: RunningGateway, tokens: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "cli-run"
    command = [
        "eval", "run", "--model", "eval-refuser", "--suite", "zh-refusal-starter", "--out", str(out),
        "--base-url", gateway.v1, "--api-key", gateway.first_key,
    ]  # fmt: skip
    platform = {
        "DIZUO_DATA_DIR": str(gateway.settings.data_dir),
        "DIZUO_DATABASE_URL": gateway.settings.resolved_database_url,
    }
    first = CliRunner(env=platform).invoke(main, command)
    assert first.exit_code == 0, first.output
    runs = [
        r
        for r in api(gateway, tokens["auditor"], "GET", "/evals").json()
        if r["created_by"].startswith("cli:")
    ]
    mine = [r for r in runs if r["suite"] == "zh-refusal-starter" and r["model"] == "eval-refuser"]
    assert len(mine) == 1 and mine[0]["status"] == "done" and mine[0]["id"] in first.output
    report = api(gateway, tokens["auditor"], "GET", f"/evals/{mine[0]['id']}/report")
    assert report.status_code == 200 and "eval-refuser" in report.text
    again = CliRunner(env=platform).invoke(main, command)  # resumed into the same folder: the same run
    assert again.exit_code == 0 and mine[0]["id"] in again.output
    listed = [r["id"] for r in api(gateway, tokens["auditor"], "GET", "/evals").json()]
    assert listed.count(mine[0]["id"]) == 1
    alone = CliRunner(env=platform).invoke(
        main, [*command[:7], str(tmp_path / "not-recorded"), *command[8:], "--no-record"]
    )
    assert alone.exit_code == 0 and "recorded in the platform" not in alone.output
