"""The data-risk guard on the wire: answers read, rewritten or refused, whole or streamed."""

from __future__ import annotations

from typing import Any

import orjson

from dizuo.guard.policy import AnswerFilter, Guard, Inspection

__all__ = ["StreamGuard", "whole_answer"]


def whole_answer(guard: Guard, inspection: Inspection, data: bytes) -> bytes:
    """A non-streamed chat answer after the guard (raises DataRiskBlocked when the policy blocks)."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data
    if not isinstance(body, dict):
        return data
    return orjson.dumps(body) if guard.inspect_answer(inspection, body) else data


class StreamGuard:
    """One streamed answer: each chunk's content passes an :class:`AnswerFilter` per choice."""

    def __init__(self, inspection: Inspection) -> None:
        self.inspection = inspection
        self.filters: dict[int, AnswerFilter] = {}
        self._template: dict[str, Any] | None = None

    def chunk(self, data: bytes) -> bytes:
        """Rewrite one ``chat.completion.chunk`` (raises DataRiskBlocked when the policy blocks)."""
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return data
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not choices:
            return data
        if self._template is None:
            self._template = {k: v for k, v in chunk.items() if k in ("id", "object", "created", "model")}
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            index = choice.get("index", 0)
            answer = self.filters.get(index)
            if answer is None:
                answer = self.filters[index] = AnswerFilter(self.inspection)
            text = answer.feed(content) if isinstance(content, str) else ""
            if choice.get("finish_reason") is not None:
                text += answer.finish()
            if isinstance(content, str) or text:
                if not isinstance(delta, dict):
                    delta = choice["delta"] = {}
                delta["content"] = text
        return orjson.dumps(chunk)

    def rest(self) -> bytes | None:
        """A last chunk with text still held back when the upstream sent no finish_reason."""
        choices = []
        for index, answer in self.filters.items():
            text = answer.finish()
            if text:
                choices.append({"index": index, "delta": {"content": text}, "finish_reason": None})
        if not choices:
            return None
        return orjson.dumps({**(self._template or {"object": "chat.completion.chunk"}), "choices": choices})
