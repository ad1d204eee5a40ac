"""The console in headless Chromium, as operators, enterprise admins and voucher issuers use it.

Every test reads the page the way a person would (labels, visible text) and saves a screenshot
under test-artifacts/screenshots/ for a person to look at.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import openai
import pytest
from openpyxl import load_workbook
from playwright.sync_api import expect

from dizuo.accounts.members import create_token
from dizuo.billing.service import wallet_view
from dizuo.store import Database
from tests.console.conftest import PASSWORD, People, sign_in
from tests.support.browser import screenshot
from tests.support.platform import RunningGateway, Serve, upstream_deployment


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """The console's platform: ``echo-model``; ``chunked-model`` streams the echo in 5-character pieces; a
    core-cleared local deployment (``cls-local``) and a public-only one (``pub-only``) for the deployments
    page; ``kb-librarian`` answers from the passages it is given, citing them; ``eval-refuser`` refuses (an
    evaluation run); the embedded local models."""
    with serve(
        [
            upstream_deployment("echo-model", name="echo-1", region="cq", cloud="private"),
            upstream_deployment("chunked-model", "chunked"),
            upstream_deployment(
                "classed-model", name="cls-local", cloud="local", region="cq", data_class_max="core"
            ),
            upstream_deployment("public-only-model", name="pub-only", cloud="public"),
            upstream_deployment("kb-librarian", "persona-librarian"),
            upstream_deployment("eval-refuser", "persona-refuser"),
        ],
        local=True,
    ) as running:
        yield running


def sdk(gateway: RunningGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0, timeout=30)


def fits_the_screen(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_sign_in_shows_who_is_signed_in(browser: Any, gateway: RunningGateway, people: People) -> None:
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(f"{gateway.url}/console/orgs")
    assert "/console/login" in page.url  # not signed in: sent to sign in, then back
    page.fill("#username", people.user("root"))
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "用户名或密码不正确。"
    screenshot(page, "console-login")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/orgs")
    assert page.get_by_test_id("username").inner_text() == people.user("root")
    assert "平台管理员" in page.locator(".who").inner_text()
    assert page.get_by_role("row", name=people.org_a).is_visible()
    screenshot(page, "console-orgs")
    page.get_by_role("button", name="退出").click()
    page.goto(f"{gateway.url}/console/orgs")
    assert "/console/login" in page.url  # the session is gone


def test_a_key_is_shown_once_works_and_revoking_it_stops_it(
    browser: Any, gateway: RunningGateway, people: People
) -> None:
    page = sign_in(browser, gateway, people.user("a-admin"))
    page.get_by_role("link", name="API 密钥").click()
    page.get_by_label("名称").first.fill("质检报告助手")
    page.get_by_label("允许的模型").fill("echo-model")
    page.get_by_role("button", name="创建密钥").click()
    key = page.get_by_test_id("new-key").inner_text()
    assert key.startswith("dz-")
    screenshot(page, "console-keys-new")
    with sdk(gateway, key) as client:
        answer = client.chat.completions.create(
            model="echo-model", messages=[{"role": "user", "content": "好"}]
        )
        assert answer.choices[0].message.content
    page.goto(page.url)  # the same page again: the key is nowhere on it
    assert key not in page.content()
    row = page.get_by_role("row").filter(has_text="质检报告助手")
    assert row.get_by_test_id("key-state").inner_text() == "有效"
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="吊销").click()
    page.get_by_role("row").filter(has_text="质检报告助手").get_by_text("已吊销").wait_for()
    assert "/keys" in page.url  # swapped in place, no reload
    deadline = time.monotonic() + 5
    with sdk(gateway, key) as client:
        while True:
            try:
                client.chat.completions.create(
                    model="echo-model", messages=[{"role": "user", "content": "x"}]
                )
            except openai.AuthenticationError:
                break
            assert time.monotonic() < deadline, "the revoked key still works"
            time.sleep(0.2)
    screenshot(page, "console-keys-revoked")


def test_bad_input_gets_inline_messages_and_saves_nothing(
    browser: Any, gateway: RunningGateway, people: People
) -> None:
    page = sign_in(browser, gateway, people.user("root"))
    page.goto(f"{gateway.url}/console/orgs/{people.org_a}/keys")
    rows_before = page.get_by_role("row").count()
    page.get_by_label("名称").first.fill("坏的限额")
    page.get_by_label("每分钟请求数（RPM）").fill("十个")
    page.get_by_role("button", name="创建密钥").click()
    assert page.locator("#f-rpm-error").inner_text() == "'十个' 不是整数"
    assert page.get_by_label("名称").first.input_value() == "坏的限额"  # what was typed is kept
    page.goto(page.url)
    assert page.get_by_role("row").count() == rows_before  # no key was made

    page.goto(f"{gateway.url}/console/orgs/{people.org_a}/wallet")
    page.get_by_label("金额（元）").fill("-5")
    page.get_by_role("button", name="充值").click()
    assert "金额必须大于 0" in page.locator("#f-topup_amount-error").inner_text()
    screenshot(page, "console-wallet-error")

    page.goto(f"{gateway.url}/console/lang/en?next=/console/orgs")
    page.get_by_label("Unified social credit code").fill("91500000MA5U7Y4X1A")  # wrong check character
    page.get_by_label("Name").fill(f"丙公司-{people.tag}")
    page.get_by_role("button", name="New organization").click()
    message = page.locator("#f-uscc-error").inner_text()
    assert message and not any("\u4e00" <= ch <= "\u9fff" for ch in message)  # English on an English page
    assert page.get_by_role("row", name=f"丙公司-{people.tag}").count() == 0
    screenshot(page, "console-orgs-error-en")


def test_an_issuer_grants_a_voucher_and_sees_only_its_own(
    browser: Any, gateway: RunningGateway, people: People
) -> None:
    page = sign_in(browser, gateway, people.user("bureau"))
    assert page.url.endswith("/console/issuer")  # an issuer lands on its programs
    nav = page.get_by_role("navigation", name="主导航").inner_text()
    assert "算力券发放" in nav and "组织" not in nav and "用量" not in nav
    page.get_by_label("受券组织").fill(people.org_a)
    page.get_by_label("项目").fill("2026 中小企业算力券")
    page.get_by_label("面额（元）").fill("500")
    page.get_by_label("补贴比例").fill("0.3")
    page.get_by_label("有效至（含）").fill("2030-12-31")
    page.get_by_role("button", name="发放算力券").click()
    assert page.get_by_role("status").inner_text() == "已发放算力券，面额 500.000000 元。"
    row = page.get_by_role("row").filter(has_text="2026 中小企业算力券")
    assert row.get_by_test_id("voucher-remaining").inner_text() == "500.000000"
    assert "2030-12-31" in row.inner_text() and "30%" in row.inner_text()  # valid through that day
    screenshot(page, "console-issuer")
    db = Database(gateway.settings.resolved_database_url)
    granted = [v for v in wallet_view(db, people.org_a)["vouchers"] if v["program"] == "2026 中小企业算力券"]
    db.dispose()
    assert (
        len(granted) == 1
        and granted[0]["issuer"] == people.issuer
        and Decimal(granted[0]["copay"]) == Decimal("0.3")
    )
    # Another issuer's report is not this issuer's to read.
    response = page.request.get(f"{gateway.url}/console/issuer/report.csv?month=2026-11&issuer=别的局")
    name = unquote(response.headers["content-disposition"])
    assert response.ok and people.issuer in name and "别的局" not in name  # its own, whatever it asks for
    page.goto(f"{gateway.url}/console/orgs/{people.org_a}/wallet")
    assert page.get_by_test_id("error-message").is_visible()


def test_the_overview_updates_after_calls(browser: Any, gateway: RunningGateway, people: People) -> None:
    page = sign_in(browser, gateway, people.user("a-admin"))
    calls = page.get_by_test_id("total-calls")
    before = int(calls.inner_text())
    with sdk(gateway, people.key_a) as client:
        for text in ("第一次", "第二次", "第三次"):
            client.chat.completions.create(model="echo-model", messages=[{"role": "user", "content": text}])
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    # No reload: the figures poll every 5 seconds.
    expect(calls).to_have_text(str(before + 4), timeout=15_000)
    assert int(page.get_by_test_id("total-errors").inner_text()) >= 1
    spend = page.get_by_test_id("total-spend")  # money to the fen, the exact amount on hover
    exact = Decimal(spend.get_attribute("data-exact") or "")
    fen = exact.quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert spend.inner_text() == (f"{fen:,.2f}" if fen or not exact else "< 0.01")
    assert spend.get_attribute("title") == f"¥{exact:f}" and exact > 0
    # ECharts drew all four charts again from the new figures.
    expect(page.locator(".chart svg")).to_have_count(4)
    assert fits_the_screen(page)
    screenshot(page, "console-overview")


def test_usage_is_filtered_and_exported(browser: Any, gateway: RunningGateway, people: People) -> None:
    with sdk(gateway, people.key_a) as client:
        client.chat.completions.create(model="echo-model", messages=[{"role": "user", "content": "导出测试"}])
    page = sign_in(browser, gateway, people.user("a-dev"))
    page.get_by_role("link", name="用量").click()
    page.get_by_label("模型").fill("echo-model")
    page.get_by_role("button", name="筛选").click()
    count = int(page.get_by_test_id("usage-count").inner_text().split("共 ")[1].split(" 条")[0])
    assert count >= 1
    screenshot(page, "console-usage")
    with page.expect_download() as caught:
        page.get_by_role("link", name="导出 CSV").click()
    download = caught.value
    assert download.suggested_filename == f"用量-{people.org_a}.csv"
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # Excel reads the UTF-8 as UTF-8
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert len(rows) == count and {r["模型"] for r in rows} == {"echo-model"}
    with page.expect_download() as caught:
        page.get_by_role("link", name="导出 Excel").click()
    assert caught.value.suggested_filename == f"用量-{people.org_a}.xlsx"
    sheet = load_workbook(io.BytesIO(Path(caught.value.path()).read_bytes())).active
    assert sheet.max_row == count + 1
    # Chinese headers, the times the page shows (Beijing time), amounts as numbers.
    header = [cell.value for cell in sheet[1]]
    newest = page.locator("tbody tr").first.locator("td")
    at, cost = header.index("时间（Asia/Shanghai）") + 1, header.index("费用（元）") + 1
    assert f"{sheet.cell(row=count + 1, column=at).value:%Y-%m-%d %H:%M:%S}" == newest.nth(0).inner_text()
    assert Decimal(str(sheet.cell(row=count + 1, column=cost).value)) == Decimal(newest.nth(4).inner_text())


def test_switching_language_changes_every_page(browser: Any, gateway: RunningGateway, people: People) -> None:
    page = sign_in(browser, gateway, people.user("a-admin"))
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.get_by_role("link", name="English").click()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("heading", level=1).inner_text().startswith("Overview")
    page.get_by_role("link", name="Wallet & vouchers").click()
    assert page.get_by_text("Balance (CNY)").is_visible()
    assert people.org_a in page.get_by_role("heading", level=1).inner_text()  # names stay as they are
    screenshot(page, "console-wallet-en")
    page.get_by_role("link", name="中文").click()
    assert page.get_by_text("余额（元）").is_visible()


def test_one_organization_cannot_reach_another_by_url(
    browser: Any, gateway: RunningGateway, people: People
) -> None:
    page = sign_in(browser, gateway, people.user("a-admin"))
    for where in ("keys", "wallet", "usage", "usage.csv"):
        response = page.goto(f"{gateway.url}/console/orgs/{people.org_b}/{where}")
        assert response is not None and response.status == 403, where
        assert people.org_b not in page.content() and "b's key" not in page.content()
    screenshot(page, "console-denied")
    csrf = page.evaluate("document.querySelector('input[name=csrf]').value")
    answer = page.request.post(f"{gateway.url}/console/keys/{people.key_b_id}/revoke", form={"csrf": csrf})
    assert answer.status == 403
    page = sign_in(browser, gateway, people.user("root"))
    page.goto(f"{gateway.url}/console/orgs/{people.org_b}/keys")
    assert (
        page.get_by_role("row").filter(has_text="b's key").get_by_test_id("key-state").inner_text() == "有效"
    )


def test_every_operator_page_renders(browser: Any, gateway: RunningGateway, people: People) -> None:
    with sdk(gateway, people.key_a) as client:  # the platform's guard policy logs what it finds
        client.chat.completions.create(
            model="echo-model", messages=[{"role": "user", "content": "请回电 13800138000，谢谢"}]
        )
    page = sign_in(browser, gateway, people.user("root"))
    page.goto(f"{gateway.url}/console/guard?org={people.org_a}")
    deadline = time.monotonic() + 5
    while page.get_by_role("cell", name="手机号 × 1").count() == 0:  # events trail the call
        assert time.monotonic() < deadline, "no guard event"
        time.sleep(0.3)
        page.reload()
    assert "13800138000" not in page.content()  # types and counts, never the value
    for path, name, heading in (
        ("/console/deployments", "deployments", "部署"),
        ("/console/guard", "guard", "数据风险事件"),
        (f"/console/orgs/{people.org_a}/wallet", "wallet", people.org_a),
        ("/console/issuer", "issuer-operator", "算力券发放"),
    ):
        response = page.goto(f"{gateway.url}{path}")
        assert response is not None and response.status == 200, path
        assert page.get_by_role("heading", level=1).inner_text().startswith(heading)
        assert fits_the_screen(page) or page.locator(".table-wrap").count() > 0
        screenshot(page, f"console-{name}")
    page.goto(f"{gateway.url}/console/deployments")
    row = page.get_by_role("row").filter(has_text="cls-local")
    assert "✓ cq" in row.inner_text()  # core data: only for organizations of its region
    row = page.get_by_role("row").filter(has_text="pub-only")
    assert row.locator("td.mark").nth(1).inner_text() == "✗"


def test_the_playground_streams_an_answer(browser: Any, gateway: RunningGateway, people: People) -> None:
    page = sign_in(browser, gateway, people.user("a-dev"))
    page.get_by_role("link", name="体验").click()
    page.get_by_label("API 密钥").fill(people.key_a)
    page.get_by_label("模型").select_option("chunked-model")  # streams the echo in 5-character pieces
    page.get_by_label("消息").fill("你好，底座")
    page.get_by_role("button", name="发送").click()
    page.get_by_test_id("answer").filter(has_text="你好，底座").wait_for(timeout=10_000)
    # A generated answer is shown with its explicit label, and exports as a labeled file.
    page.get_by_test_id("pg-notice").wait_for()
    assert page.get_by_test_id("pg-notice").inner_text() == "本内容由人工智能生成"
    screenshot(page, "console-playground")
    with page.expect_download() as caught:
        page.get_by_role("button", name="Word").click()
    assert caught.value.suggested_filename == "answer.docx"
    exported = Path(caught.value.path()).read_bytes()
    checked = httpx.post(
        f"{gateway.v1}/aigc/verify", content=exported, headers={"Authorization": f"Bearer {people.key_a}"}
    ).json()
    assert (checked["result"], checked["source"], checked["model"]) == ("genuine", "docx", "chunked-model")
    page.get_by_label("API 密钥").fill("dz-not-a-key")
    page.get_by_role("button", name="发送").click()
    page.locator(".answer.failed").wait_for()
    assert "API 密钥无效" in page.get_by_test_id("answer").inner_text()


def test_a_knowledge_base_takes_a_document_and_answers_with_citations(
    browser: Any, gateway: RunningGateway, people: People, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {people.key_a}"}
    created = httpx.post(
        f"{gateway.v1}/knowledge-bases", json={"name": "质量手册", "description": "柱塞偶件"}, headers=headers
    )
    assert created.status_code == 201, created.text
    manual = tmp_path / "检验规范.md"
    manual.write_text(
        "# 柱塞偶件检验规范\n\n## 4.5 硬度\n\n柱塞表面硬度应为 HRC 60 ～ 64。\n\n"
        "## 4.6 密封\n\n密封时间不得短于 10 s。\n",
        encoding="utf-8",
    )
    page = sign_in(browser, gateway, people.user("a-admin"))
    page.get_by_role("link", name="知识库").click()
    assert page.get_by_test_id("kb-documents").inner_text() == "0"
    page.get_by_label("API 密钥").fill(people.key_a)
    page.get_by_label("文件（Markdown、DOCX、PDF、XLSX、CSV、HTML、TXT）").set_input_files(str(manual))
    page.get_by_role("button", name="上传").click()
    page.get_by_role("status").filter(has_text="已加入 检验规范.md").wait_for(timeout=30_000)
    page.wait_for_load_state()  # the page reloads with the new document
    page.get_by_role("cell", name="检验规范.md").wait_for(timeout=10_000)
    assert page.get_by_test_id("kb-documents").inner_text() == "1"
    page.get_by_label("API 密钥").fill(people.key_a)
    page.get_by_label("模型").select_option("kb-librarian")
    page.get_by_label("问题").fill("柱塞表面硬度的要求是多少")
    page.get_by_role("button", name="提问").click()
    page.get_by_test_id("kb-citations").locator("li").first.wait_for(timeout=30_000)
    assert "HRC 60" in page.get_by_test_id("kb-answer").inner_text()
    assert "检验规范.md" in page.get_by_test_id("kb-citations").inner_text()
    assert page.get_by_test_id("kb-notice").is_visible()  # a model wrote it: the notice shows
    screenshot(page, "console-kbs")
    with page.expect_download() as caught:
        page.get_by_role("button", name="PDF", exact=True).click()
    exported = Path(caught.value.path()).read_bytes()
    checked = httpx.post(f"{gateway.v1}/aigc/verify", content=exported, headers=headers).json()
    assert (checked["result"], checked["source"]) == ("genuine", "pdf")
    # The embedded model is offered as English only, and a Chinese question to it gets the passages.
    assert "local/smollm2-135m-instruct（仅英文）" in page.get_by_label("模型").inner_text()
    page.get_by_label("API 密钥").fill(people.key_a)
    page.get_by_label("模型").select_option("local/smollm2-135m-instruct")
    page.get_by_role("button", name="提问").click()
    page.get_by_test_id("kb-answer").filter(has_text="所选模型不能用中文作答").wait_for(timeout=30_000)
    assert "HRC 60" in page.get_by_test_id("kb-answer").inner_text()
    assert not page.get_by_test_id("kb-notice").is_visible()  # quoted passages: no model wrote them
    screenshot(page, "console-kbs-english-only-model")


def test_evaluation_runs_and_their_reports(browser: Any, gateway: RunningGateway, people: People) -> None:
    db = Database(gateway.settings.resolved_database_url)
    token = create_token(db, people.user("root"))
    db.dispose()
    started = httpx.post(
        f"{gateway.url}/admin/v1/evals",
        json={"model": "eval-refuser", "suite": "zh-refusal-starter", "api_key": people.key_a},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert started.status_code == 202, started.text
    page = sign_in(browser, gateway, people.user("auditor"))
    page.get_by_role("link", name="测试验证").click()
    runs = page.locator("table").nth(1)  # the first is the model catalog
    row = runs.get_by_role("row").filter(has_text="eval-refuser").first
    deadline = time.monotonic() + 60
    while "已完成" not in row.inner_text():
        assert time.monotonic() < deadline, row.inner_text()
        time.sleep(0.5)
        page.reload()
    screenshot(page, "console-evals")
    with page.expect_popup() as popup:
        row.get_by_role("link", name="查看报告").click()
    report = popup.value
    report.wait_for_load_state()
    assert "eval-refuser" in report.content()
    # The report shows the model's answers: it carries the notice, and its label checks out.
    assert report.get_by_text("本内容由人工智能生成").first.is_visible()
    checked = httpx.post(
        f"{gateway.v1}/aigc/verify",
        content=report.request.get(report.url).body(),  # the page as served
        headers={"Authorization": f"Bearer {people.key_a}"},
    ).json()
    assert (checked["result"], checked["source"]) == ("genuine", "html")
    denied = sign_in(browser, gateway, people.user("a-admin"))
    response = denied.goto(f"{gateway.url}/console/evals")
    assert response is not None and response.status == 403
