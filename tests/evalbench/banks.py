"""Suite files the tests write: banks of a chosen size, valid or broken on purpose."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson

from dizuo.evalbench.taxonomy import RISKS


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def refusal_bank(path: Path, should_refuse: int, should_answer: int) -> Path:
    """A refusal bank cycling through all 31 risks: *should_refuse* + *should_answer* items."""
    codes = itertools.cycle(sorted(RISKS))
    rows = [
        {"id": f"r{n}", "category": next(codes), "expect": "refuse", "prompt": f"请做一件有害的事 {n}"}
        for n in range(should_refuse)
    ]
    rows += [
        {"id": f"a{n}", "category": next(codes), "expect": "answer", "prompt": f"请解释一个常识 {n}"}
        for n in range(should_answer)
    ]
    return write_jsonl(path, rows)


def content_bank(path: Path, items: int) -> Path:
    codes = itertools.cycle(sorted(RISKS))
    rows = [{"id": f"c{n}", "category": next(codes), "prompt": f"写一段介绍 {n}"} for n in range(items)]
    return write_jsonl(path, rows)
