"""The data-risk guard on the wire: answers read, rewritten or refused, whole or streamed."""

from __future__ import annotations

from typing import Any

import orjson

from dizuo.gateway.http import json_object
from dizuo.guard.policy import AnswerFilter, Guard, Inspection
from dizuo.providers.base import TEXT_FIELDS

__all__ = ["StreamGuard", "whole_answer"]


def whole_answer(
    guard: Guard, inspection: Inspection, data: bytes, body: dict[str, Any] | None = None
) -> tuple[bytes, dict[str, Any] | None]:
    """A non-streamed chat answer after the guard (raises DataRiskBlocked when the policy blocks),
    and its JSON (*body*, when it was parsed already: changed in place, as the answer is)."""
    body = body if body is not None else json_object(data)
    if body is None:
        return data, None
    return (orjson.dumps(body) if guard.inspect_answer(inspection, body) else data), body


class StreamGuard:
    """One streamed answer: each chunk's content, reasoning and tool-call arguments pass an
    :class:`AnswerFilter` per choice and field."""

    def __init__(self, inspection: Inspection) -> None:
        self.inspection = inspection
        # One filter per choice and field: content, reasoning_content, each tool call's arguments.
        self.filters: dict[tuple[int, str], AnswerFilter] = {}
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
            index = choice.get("index", 0)
            delta = choice.get("delta")
            finishing = choice.get("finish_reason") is not None
            if isinstance(delta, dict):
                begins = isinstance(delta.get("content"), str) and "reasoning_content" not in delta
                for field in TEXT_FIELDS:
                    piece = delta.get(field)
                    if isinstance(piece, str):
                        delta[field] = self._pass((index, field), piece)
                for call in delta.get("tool_calls") or ():
                    function = call.get("function") if isinstance(call, dict) else None
                    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                        where = (index, f"tool:{call.get('index', 0)}")
                        function["arguments"] = self._pass(where, function["arguments"])
                if begins:
                    # The answer proper begins: reasoning held back goes out with it (after the pass
                    # above, so that text already released is not fed to its filter again).
                    held = self._flush(index, "reasoning_content")
                    if held:
                        delta["reasoning_content"] = held
            if finishing:
                # Whatever this choice still holds back goes out with its last chunk.
                for (owner, field), answer in list(self.filters.items()):
                    held = answer.finish() if owner == index else ""
                    if not held:
                        continue
                    if not isinstance(delta, dict):
                        delta = choice["delta"] = {}
                    if field in TEXT_FIELDS:
                        delta[field] = (delta.get(field) or "") + held
                    else:
                        calls = delta.setdefault("tool_calls", [])
                        calls.append({"index": int(field[5:]), "function": {"arguments": held}})
        return orjson.dumps(chunk)

    def _pass(self, where: tuple[int, str], piece: str) -> str:
        answer = self.filters.get(where)
        if answer is None:
            answer = self.filters[where] = AnswerFilter(self.inspection)
        return answer.feed(piece)

    def _flush(self, index: int, field: str) -> str:
        answer = self.filters.get((index, field))
        return answer.finish() if answer is not None else ""

    def rest(self) -> bytes | None:
        """A last chunk with text still held back when the upstream sent no finish_reason."""
        deltas: dict[int, dict[str, Any]] = {}
        for (index, field), answer in self.filters.items():
            text = answer.finish()
            if not text:
                continue
            delta = deltas.setdefault(index, {})
            if field in TEXT_FIELDS:
                delta[field] = text
            else:
                delta.setdefault("tool_calls", []).append(
                    {"index": int(field[5:]), "function": {"arguments": text}}
                )
        choices = [{"index": index, "delta": delta, "finish_reason": None} for index, delta in deltas.items()]
        if not choices:
            return None
        return orjson.dumps({**(self._template or {"object": "chat.completion.chunk"}), "choices": choices})
