"""`dizuo guard scan`: JSON Lines in, entities out, bad lines named by number."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.guard.test_detect import SAMPLE
from tests.support.cli import dizuo
from tests.support.shared import needs_shared


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return dizuo("guard", "scan", *args, input=stdin)


@needs_shared
def test_scan_file_json_matches_the_labels() -> None:
    result = run(str(SAMPLE), "--json")
    assert result.returncode == 0, result.stderr
    expected = [json.loads(line)["entities"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    assert [json.loads(line)["entities"] for line in result.stdout.splitlines()] == expected


def test_scan_stdin_with_a_keyword_and_readable_output() -> None:
    lines = "\n".join(
        json.dumps({"text": t}, ensure_ascii=False) for t in ["无", "蓝鲸项目联系人 13800138000"]
    )
    result = run("-", "--keyword", "蓝鲸项目", stdin=lines + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["2\tKEYWORD\t0-4\t蓝鲸项目", "2\tCN_MOBILE\t8-19\t13800138000"]


def test_a_bad_line_is_named_by_its_number(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "ok"}\n{"txt": "no text field"}\n', encoding="utf-8")
    result = run(str(source), "--json")
    assert result.returncode == 2
    assert "第 2 行" in result.stderr and "line 2" in result.stderr


def test_a_bad_pattern_is_a_clear_error() -> None:
    result = run("--pattern", "([unclosed", stdin='{"text": "x"}\n')
    assert result.returncode == 2 and "regular expression" in result.stderr
