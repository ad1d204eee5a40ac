"""``dizuo eval``: suites, run (killed halfway and resumed), compare, and bad banks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
from click.testing import CliRunner

from dizuo.cli import main
from dizuo.evalbench import load_suite
from tests.evalbench.banks import write_jsonl
from tests.support.upstream import FakeUpstream


def eval_run(upstream: FakeUpstream, model: str, suite: str, out: Path, *extra: str) -> list[str]:
    return [
        "eval", "run", "--model", model, "--suite", suite, "--out", str(out),
        "--base-url", upstream.base_url, "--api-key", "sk-test", *extra,
    ]  # fmt: skip


def test_suites_lists_the_built_ins() -> None:
    result = CliRunner().invoke(main, ["eval", "suites", "--json"])
    assert result.exit_code == 0
    names = {row["name"] for row in orjson.loads(result.output)}
    assert {"zh-knowledge", "zh-refusal-starter", "tool-calling"} <= names


def test_a_run_killed_halfway_resumes_without_redoing_finished_items(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    rows = [
        {"id": f"q{n}", "question": f"第 {n} 题", "A": "甲", "B": "乙", "answer": "AB"[n % 2]}
        for n in range(200)
    ]
    bank = write_jsonl(tmp_path / "bank.jsonl", rows)
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "dizuo",
        *eval_run(upstream, "persona-slow", str(bank), out, "--concurrency", "2"),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy()
    )
    deadline = time.monotonic() + 60
    items = out / "items.jsonl"
    while not (items.exists() and items.read_bytes().count(b"\n") >= 20):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = {orjson.loads(line)["id"] for line in items.read_bytes().splitlines() if line.endswith(b"}")}
    assert 20 <= len(finished) < 200
    prompts = {item.id: item.prompt for item in load_suite(str(bank)).items}
    seen_before = len(upstream.seen)

    result = CliRunner().invoke(
        main, eval_run(upstream, "persona-slow", str(bank), out, "--concurrency", "8")
    )
    assert result.exit_code == 0, result.output
    asked_again = {seen.body["messages"][0]["content"] for seen in upstream.seen[seen_before:]}
    assert not asked_again & {prompts[i] for i in finished}
    document = orjson.loads((out / "results.json").read_bytes())
    assert document["overall"] == {**document["overall"], "passed": 100, "n": 200}  # always "A": half right
    assert len(document["run"]["resumed_at"]) == 1


def test_compare_lists_regressions_item_by_item(upstream: FakeUpstream, tmp_path: Path) -> None:
    runner = CliRunner()
    for letter in "AB":
        result = runner.invoke(
            main, eval_run(upstream, f"persona-letter-{letter}", "zh-knowledge", tmp_path / letter)
        )
        assert result.exit_code == 0, result.output
        assert "grade / 等级" in result.output
    html = tmp_path / "compare.html"
    result = runner.invoke(
        main, ["eval", "compare", str(tmp_path / "A"), str(tmp_path / "B"), "--json", "--html", str(html)]
    )
    assert result.exit_code == 0, result.output
    comparison = orjson.loads(result.stdout)
    suite = load_suite("zh-knowledge")
    assert {r["id"] for r in comparison["regressions"]} == {i.id for i in suite.items if i.answer == "A"}
    assert {r["id"] for r in comparison["improvements"]} == {i.id for i in suite.items if i.answer == "B"}
    assert comparison["same_suite"] is True
    assert "退步" in html.read_text(encoding="utf-8")
    strict = runner.invoke(
        main, ["eval", "compare", str(tmp_path / "A"), str(tmp_path / "B"), "--fail-on-regression"]
    )
    assert strict.exit_code == 1 and "regressions / 退步" in strict.output


def test_a_malformed_bank_exits_2_with_line_numbers(upstream: FakeUpstream, tmp_path: Path) -> None:
    bank = tmp_path / "bad.csv"
    bank.write_text("id,prompt,expect,category\n1,问,refuse,A.1.a\n1,答,answer,A.7.q\n", encoding="utf-8")
    result = CliRunner().invoke(main, eval_run(upstream, "persona-refuser", str(bank), tmp_path / "run"))
    assert result.exit_code == 2
    assert "line 3: duplicate id '1', first on line 2" in result.output
    assert not (tmp_path / "run").exists()


def test_an_unreachable_model_exits_1_with_the_reason(upstream: FakeUpstream, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, eval_run(upstream, "persona-nobody", "zh-qa", tmp_path / "run"))
    assert result.exit_code == 1
    assert "HTTP 404" in result.output


def test_a_keyword_library_file_fails_content_that_contains_its_words(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    library = tmp_path / "keywords.txt"
    library.write_text("# 关键词库\n违禁词甲乙丙\n", encoding="utf-8")
    result = CliRunner().invoke(
        main,
        eval_run(
            upstream, "persona-unsafe", "zh-content", tmp_path / "run", "--keywords", str(library), "--json"
        ),
    )
    assert result.exit_code == 0, result.output
    document = orjson.loads(result.stdout)  # progress goes to stderr
    assert document["overall"]["passed"] == 0 and document["overall"]["n"] == 10
