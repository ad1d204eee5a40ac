"""Models with known behaviour for the evaluation bench, served by the fake upstream.

The upstream model name picks the persona (``persona-…``); the scores a run must report follow
from the behaviour alone, which is what the bench's tests assert.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

REFUSAL = "抱歉，我无法协助完成这个请求。"
HELPFUL = "好的，下面是一些一般性的说明，供你参考。"
UNSAFE = "以下内容包含违禁词甲乙丙，仅作测试。"


@dataclass
class Personas:
    # Tool-calling oracle: prompt → the calls to make, in order, and the final answer.
    scripts: dict[str, tuple[list[dict[str, Any]], str]] = field(default_factory=dict)
    # Requests per prompt, for the flaky persona (first try of each prompt fails with 503).
    tries: Counter[str] = field(default_factory=Counter)

    async def reply(self, body: dict[str, Any]) -> web.Response:
        persona = str(body["model"]).removeprefix("persona-")
        prompt = str(body["messages"][0].get("content"))
        if persona == "slow":
            await asyncio.sleep(0.05)
            return _text(body, "答案：A")
        if persona == "flaky":
            self.tries[prompt] += 1
            if self.tries[prompt] == 1:
                return web.json_response({"error": {"message": "busy", "type": "server_error"}}, status=503)
            return _text(body, "答案：A")
        if persona.startswith("letter-"):
            return _text(body, f"答案：{persona[-1]}")
        if persona == "refuser":
            return _text(body, REFUSAL)
        if persona == "helper":
            return _text(body, HELPFUL)
        if persona == "unsafe":
            return _text(body, UNSAFE)
        if persona == "judge":
            return _text(body, _verdict(prompt))
        if persona == "tools-wrong":
            return _call(body, body["tools"][0]["function"]["name"], '{"wrong": true}')
        if persona == "oracle-or-refuse":  # the oracle on its scripted prompts, a refusal on any other
            if prompt not in self.scripts:
                return _text(body, REFUSAL)
            persona = "tools-oracle"
        if persona == "tools-oracle":
            calls, final = self.scripts[prompt]
            done = sum(1 for m in body["messages"] if m.get("role") == "tool")
            if done < len(calls):
                return _call(body, calls[done]["name"], _json(calls[done]["arguments"]))
            return _text(body, final)
        if persona == "librarian":
            return _text(body, librarian(str(body["messages"][-1].get("content"))))
        return web.json_response({"error": {"message": f"no persona {persona}"}}, status=404)


LIBRARIAN_NOT_FOUND = "知识库中没有找到这个问题的答案。"


def _bigrams(text: str) -> set[str]:
    return {
        text[i : i + 2]
        for i in range(len(text) - 1)
        if not any(c in "，。：；？（）[]\n " for c in text[i : i + 2])
    }


def librarian(prompt: str) -> str:
    """A model that answers from knowledge-base passages as instructed: it quotes the first sentence
    of the passage sharing most character pairs with the question and cites it (plus a marker [99]
    naming no passage, which dizuo must drop); with fewer than three shared pairs it says the
    knowledge base does not hold the answer."""
    import re

    passages_part, _, question = prompt.rpartition("问题：")
    passages = {
        int(n): text
        for n, text in re.findall(r"\[(\d+)\]（[^）]*）\n(.*?)(?=\n\n\[\d+\]|\Z)", passages_part, re.S)
    }
    wanted = _bigrams(question)
    best, overlap = max(
        ((n, len(wanted & _bigrams(t))) for n, t in passages.items()), key=lambda p: p[1], default=(0, 0)
    )
    if overlap < 3:
        return LIBRARIAN_NOT_FOUND
    first = re.split(r"(?<=[。；])", passages[best].strip(), maxsplit=1)[0]
    return f"根据资料，{first} [{best}][99]"


def _verdict(prompt: str) -> str:
    """The judge persona: every answer is correct, every content unsafe, every answer a refusal."""
    if "“正确”或“错误”" in prompt:
        return "正确"
    if "“安全”或“不安全”" in prompt:
        return "不安全"
    return "拒答"


def _json(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


def _completion(body: dict[str, Any], message: dict[str, Any], finish: str) -> web.Response:
    return web.json_response(
        {
            "id": "chatcmpl-persona",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
        }
    )


def _text(body: dict[str, Any], text: str) -> web.Response:
    return _completion(body, {"role": "assistant", "content": text}, "stop")


def _call(body: dict[str, Any], name: str, arguments: str) -> web.Response:
    done = sum(1 for m in body["messages"] if m.get("role") == "tool")
    call = {"id": f"call_{done + 1}", "type": "function", "function": {"name": name, "arguments": arguments}}
    return _completion(body, {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls")
