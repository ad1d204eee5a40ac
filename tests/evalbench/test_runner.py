"""Runs against real local HTTP servers playing models with known behaviour: the scores and verdicts
are exactly what the behaviour implies."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from dizuo.evalbench import RunConfig, RunConflict, RunFailed, load_suite, run_suite
from tests.evalbench.banks import content_bank, refusal_bank, write_jsonl
from tests.support.upstream import FakeUpstream


def run(upstream: FakeUpstream, model: str, suite: str, out: Path, **options: Any) -> dict[str, Any]:
    config = RunConfig(model=f"persona-{model}", base_url=upstream.base_url, concurrency=8, **options)
    return asyncio.run(run_suite(load_suite(suite), config, out))


def asked(upstream: FakeUpstream, model: str) -> int:
    return sum(1 for seen in upstream.seen if seen.body.get("model") == f"persona-{model}")


def requirement(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in document["requirements"] if r["id"] == name)


def test_a_model_that_always_refuses_passes_should_refuse_and_fails_should_answer(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    bank = refusal_bank(tmp_path / "bank.jsonl", should_refuse=300, should_answer=300)
    document = run(upstream, "refuser", str(bank), tmp_path / "run")
    refuse, answer = requirement(document, "should-refuse"), requirement(document, "should-not-refuse")
    assert (refuse["measured"], refuse["n"], refuse["verdict"]) == (1.0, 300, "pass")
    assert (answer["measured"], answer["n"], answer["verdict"]) == (1.0, 300, "fail")
    assert document["overall"]["rate"] == 0.5
    assert document["grade"] == "D"
    assert set(document["risk_groups"]) == {"A.1", "A.2", "A.3", "A.4", "A.5"}


def test_a_model_that_never_refuses_fails_should_refuse(upstream: FakeUpstream, tmp_path: Path) -> None:
    bank = refusal_bank(tmp_path / "bank.jsonl", should_refuse=300, should_answer=300)
    document = run(upstream, "helper", str(bank), tmp_path / "run")
    assert requirement(document, "should-refuse")["measured"] == 0.0
    assert requirement(document, "should-refuse")["verdict"] == "fail"
    assert requirement(document, "should-not-refuse")["verdict"] == "pass"


def test_the_starter_bank_is_too_small_to_certify(upstream: FakeUpstream, tmp_path: Path) -> None:
    document = run(upstream, "refuser", "zh-refusal-starter", tmp_path / "run")
    assert {r["verdict"] for r in document["requirements"]} == {"cannot_certify"}
    assert document["grade"] is None
    assert len(document["categories"]) == 31


def test_a_fixed_letter_scores_the_share_of_items_whose_answer_is_that_letter(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    suite = load_suite("zh-knowledge")
    expected = sum(1 for item in suite.items if item.answer == "B")
    document = run(upstream, "letter-B", "zh-knowledge", tmp_path / "run")
    assert document["overall"]["passed"] == expected
    assert document["overall"]["n"] == len(suite.items)
    items = [orjson.loads(line) for line in (tmp_path / "run" / "items.jsonl").read_bytes().splitlines()]
    assert {item["detail"]["chosen"] for item in items} == {"B"}


def test_generated_content_fails_on_the_keyword_library(upstream: FakeUpstream, tmp_path: Path) -> None:
    bank = content_bank(tmp_path / "content.jsonl", 1000)
    unsafe = run(upstream, "unsafe", str(bank), tmp_path / "unsafe", keywords=("违禁词甲乙丙",))
    assert requirement(unsafe, "content-pass")["measured"] == 0.0
    assert requirement(unsafe, "content-pass")["verdict"] == "fail"
    clean = run(upstream, "helper", str(bank), tmp_path / "clean", keywords=("违禁词甲乙丙",))
    assert requirement(clean, "content-pass")["verdict"] == "pass"
    assert clean["grade"] == "A"


def test_wrong_tool_calls_fail_at_their_first_step(upstream: FakeUpstream, tmp_path: Path) -> None:
    document = run(upstream, "tools-wrong", "tool-calling", tmp_path / "run")
    assert document["overall"]["passed"] == 0
    items = [orjson.loads(line) for line in (tmp_path / "run" / "items.jsonl").read_bytes().splitlines()]
    assert {(i["detail"]["reason"], i["detail"]["failed_step"]) for i in items} == {("wrong_arguments", 1)}


def test_right_multi_step_tool_calls_pass_and_a_skipped_step_fails(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    suite = load_suite("tool-calling")
    for item in suite.items:
        calls = [{"name": s.name, "arguments": s.arguments} for s in item.steps]
        upstream.personas.scripts[item.prompt] = (calls, f"完成：{'、'.join(item.final_contains)}")
    document = run(upstream, "tools-oracle", "tool-calling", tmp_path / "right")
    assert document["overall"]["passed"] == len(suite.items)
    # The same oracle skipping the first of two steps calls the wrong function at step 1.
    two_step = next(item for item in suite.items if len(item.steps) == 2)
    bank = tmp_path / "one.jsonl"
    write_jsonl(bank, [orjson.loads(line) for line in _builtin_line("tool-calling", two_step.id)])
    second = two_step.steps[1]
    upstream.personas.scripts[two_step.prompt] = (
        [{"name": second.name, "arguments": second.arguments}],
        "完成",
    )
    skipped = run(upstream, "tools-oracle", str(bank), tmp_path / "skipped")
    item = orjson.loads((tmp_path / "skipped" / "items.jsonl").read_bytes().splitlines()[0])
    assert skipped["overall"]["passed"] == 0
    assert (item["detail"]["reason"], item["detail"]["failed_step"]) == ("wrong_function", 1)


def _builtin_line(suite: str, item_id: str) -> list[bytes]:
    from importlib import resources

    data = (resources.files("dizuo.evalbench") / "builtin" / f"{suite}.jsonl").read_bytes()
    return [line for line in data.splitlines() if orjson.loads(line)["id"] == item_id]


def test_a_judge_model_decides_open_answers_content_and_refusals(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    bank = write_jsonl(
        tmp_path / "qa.jsonl",
        [{"id": str(n), "question": f"问题 {n}", "reference": "参考", "match": "judge"} for n in range(5)],
    )
    with pytest.raises(RunConflict, match="--judge"):
        run(upstream, "helper", str(bank), tmp_path / "nojudge")
    qa = run(upstream, "helper", str(bank), tmp_path / "qa", judge="persona-judge")
    assert qa["overall"]["passed"] == 5  # the judge persona calls every answer correct
    content = run(upstream, "helper", "zh-content", tmp_path / "content", judge="persona-judge")
    assert content["overall"]["passed"] == 0  # … and all content unsafe
    refusals = run(upstream, "helper", "zh-refusal-starter", tmp_path / "refusal", judge="persona-judge")
    assert requirement(refusals, "should-refuse")["measured"] == 1.0  # … and every answer a refusal


def test_busy_upstreams_are_retried_and_every_item_is_scored(upstream: FakeUpstream, tmp_path: Path) -> None:
    suite = load_suite("zh-knowledge")
    before = asked(upstream, "flaky")
    document = run(upstream, "flaky", "zh-knowledge", tmp_path / "run", retries=2)
    assert document["counts"] == {"items": len(suite.items), "scored": len(suite.items), "errors": 0}
    assert asked(upstream, "flaky") - before == 2 * len(suite.items)


def test_failed_calls_are_errors_not_scores(upstream: FakeUpstream, tmp_path: Path) -> None:
    document = run(upstream, "flaky", "zh-qa", tmp_path / "run", retries=0)
    assert document["counts"]["errors"] == document["counts"]["items"]
    assert document["overall"]["n"] == 0 and document["grade"] is None


def test_an_unknown_model_stops_the_run_at_once(upstream: FakeUpstream, tmp_path: Path) -> None:
    # A name no other test asks for: another run's calls still arriving cannot be counted as this one's.
    nobody = f"nobody-{uuid.uuid4().hex[:8]}"
    with pytest.raises(RunFailed, match="HTTP 404"):
        run(upstream, nobody, "zh-knowledge", tmp_path / "run")
    assert asked(upstream, nobody) <= 8  # the workers that were already asking, no more


def test_a_rerun_is_free_and_another_model_needs_another_folder(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    first = run(upstream, "letter-A", "zh-knowledge", tmp_path / "run")
    before = asked(upstream, "letter-A")
    again = run(upstream, "letter-A", "zh-knowledge", tmp_path / "run")
    assert asked(upstream, "letter-A") == before
    assert again["overall"] == first["overall"] and again["asked_this_time"] == 0
    with pytest.raises(RunConflict, match="model"):
        run(upstream, "letter-B", "zh-knowledge", tmp_path / "run")


def test_the_report_escapes_what_the_bank_and_the_model_say(upstream: FakeUpstream, tmp_path: Path) -> None:
    bank = write_jsonl(
        tmp_path / "x.jsonl",
        [
            {
                "id": "<b>1</b>",
                "category": "<script>alert(1)</script>",
                "question": "q",
                "A": "a",
                "B": "b",
                "answer": "A",
            }
        ],
    )
    run(upstream, "letter-B", str(bank), tmp_path / "run")
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "persona-letter-B" in html and "<svg" in html


def test_the_report_shows_the_question_the_answer_and_why_as_text(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    bank = write_jsonl(
        tmp_path / "qa.jsonl",
        [
            {
                "id": "q1",
                "category": "地理",
                "question": "中国的首都是哪座城市？",
                "reference": ["北京", "北京市"],
            }
        ],
    )
    run(upstream, "letter-B", str(bank), tmp_path / "run")
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "中国的首都是哪座城市？" in html  # the question beside the answer
    assert "参考答案 / references: 北京；北京市" in html and "判定方式 / decided by: contains" in html
    assert "\\u5317" not in html and "&#34;by&#34;" not in html and '"by"' not in html
    # 0.0% with its interval reaching right: the figure stands after the whisker, not across it.
    whisker = re.search(r'<line x1="[\d.]+" x2="([\d.]+)" y1', html)
    figure = re.search(r'<text class="value" x="([\d.]+)"', html)
    assert whisker and figure and float(figure[1]) > float(whisker[1])
