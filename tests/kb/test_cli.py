"""``dizuo kb …`` against the running platform, as a user types it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from dizuo.cli import main
from tests.kb.documents import STANDARD_PDF_PAGES, docx_bytes, pdf_bytes
from tests.support.platform import RunningGateway, Serve, upstream_deployment


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """A platform for the commands: the embedded encoder and ``kb-librarian`` (answers from the passages it is
    given, citing them)."""
    with serve([upstream_deployment("kb-librarian", "persona-librarian")], local=True) as running:
        yield running


def test_the_kb_commands(gateway: RunningGateway, api_key: str, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"DIZUO_API_KEY": api_key}
    connect = ["--base-url", gateway.v1]

    def kb(*args: str) -> tuple[int, str]:
        result = runner.invoke(main, ["kb", *args, *connect], env=env)
        return result.exit_code, result.output

    name = f"规范库-{uuid.uuid4().hex[:6]}"
    assert kb("create", name)[0] == 0
    (tmp_path / "规范.docx").write_bytes(docx_bytes())
    (tmp_path / "规范.pdf").write_bytes(pdf_bytes(STANDARD_PDF_PAGES))
    (tmp_path / "空.txt").write_bytes(b"")
    code, out = kb(
        "add", name, str(tmp_path / "规范.docx"), str(tmp_path / "空.txt"), str(tmp_path / "规范.pdf")
    )
    assert code == 1  # one file failed; the others were added
    assert (
        "已添加 规范.docx" in out and "已添加 规范.pdf" in out and "空.txt" in out and "没有可读的文字" in out
    )

    code, out = kb("query", name, "密封时间的要求", "-k", "2", "--source", "规范.pdf", "--json")
    rows = orjson.loads(out)
    assert code == 0 and len(rows) == 2
    assert (rows[0]["source"], rows[0]["locator"]) == ("规范.pdf", "第 4.6 条，第 2 页")
    assert {"text", "source", "locator", "score"} <= set(rows[0])

    code, out = kb("ask", name, "密封时间的要求是什么", "--model", "kb-librarian", "--json")
    answer = orjson.loads(out)
    assert code == 0 and answer["found"] and "10 s" in answer["citations"][0]["text"]

    code, out = kb("list", "--json")
    assert {row["name"]: row["documents"] for row in orjson.loads(out)}[name] == 2
    assert kb("remove", name, "规范.pdf")[0] == 0
    assert [row["source"] for row in orjson.loads(kb("documents", name, "--json")[1])] == ["规范.docx"]
    assert kb("delete", name)[0] == 0
    code, out = kb("query", name, "密封")
    assert code == 2 and "不存在" in out


def test_kb_needs_a_key_and_a_server(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["kb", "list"], env={"DIZUO_API_KEY": "", "OPENAI_API_KEY": ""})
    assert result.exit_code == 2 and "DIZUO_API_KEY" in result.output
    result = runner.invoke(
        main, ["kb", "list", "--base-url", "http://127.0.0.1:9/v1"], env={"DIZUO_API_KEY": "dz-x"}
    )
    assert result.exit_code == 2 and "dizuo serve" in result.output


def test_kb_finds_the_server_through_dizuo_base_url_and_reports_refusals_like_every_command(
    gateway: RunningGateway, api_key: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    env = {"DIZUO_API_KEY": api_key, "DIZUO_BASE_URL": gateway.v1}  # a server on another port, no --base-url
    assert runner.invoke(main, ["kb", "list", "--json"], env=env).exit_code == 0
    name = f"模型-{uuid.uuid4().hex[:6]}"
    assert runner.invoke(main, ["kb", "create", name], env=env).exit_code == 0
    rules = tmp_path / "制度.md"
    rules.write_text("# 算力券\n\n算力券自发放之日起十二个月内有效。", encoding="utf-8")
    try:
        assert runner.invoke(main, ["kb", "add", name, str(rules)], env=env).exit_code == 0
        asked = runner.invoke(
            main, ["kb", "ask", name, "算力券的有效期", "--model", "no-such-model"], env=env
        )
        assert asked.exit_code == 2
        assert asked.output.startswith("错误 / error: 404:") and "Error:" not in asked.output
    finally:
        runner.invoke(main, ["kb", "delete", name], env=env)
