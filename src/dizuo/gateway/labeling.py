"""AIGC labels on the wire: a whole chat answer labeled, a streamed one followed to its last chunk.

The label rides where OpenAI clients ignore it: an ``aigc`` field at the top of the answer's JSON (the
SDK keeps unknown fields in ``model_extra``) and in the stream's final chunk, and an ``AIGC`` header.
The explicit notice, for the organizations and keys that ask for it, is part of the answer's text.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from dizuo.compliance.labels import Labeler, Notice, Position, answer_text, header_value, read_label, texts_of
from dizuo.gateway.http import json_object
from dizuo.routing import Deployment

__all__ = ["StreamLabel", "label_whole", "producer_of", "stream_header"]


def producer_of(dep: Deployment, body: dict[str, Any]) -> tuple[str, str, str] | None:
    """Who generated an answer from *dep*: None when the platform ran the model (local or private
    deployments); else the public cloud's vendor, by its own label when it sent one."""
    upstream = read_label(body)
    if upstream is not None and upstream["ContentProducer"]:
        return upstream["ContentProducer"], upstream["ProduceID"], upstream["ReservedCode1"]
    if dep.config.cloud != "public":
        return None
    upstream_id = body.get("id")
    return dep.provider.spec.name, upstream_id if isinstance(upstream_id, str) else "", ""


def label_whole(
    labeler: Labeler,
    data: bytes,
    content_id: str,
    dep: Deployment,
    notice: Notice | None,
    body: dict[str, Any] | None = None,
) -> tuple[bytes, bytes | None]:
    """A whole chat answer with its label (and notice); and the label's header value. *body* is the
    answer's JSON when it was parsed already (it is changed in place)."""
    body = body if body is not None else json_object(data)
    if body is None:
        return data, None
    if notice is not None:
        for choice in body.get("choices") or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                message["content"] = notice.apply(message["content"])
    producer = producer_of(dep, body)
    body.pop("AIGC", None)
    label = labeler.label(content_id, answer_text(body), at=int(time.time()), producer=producer)
    body["aigc"] = label
    return orjson.dumps(body), header_value(label)


_CONTENT = b'"content":"'
_BACKSLASH = 0x5C


def _literal(data: bytes) -> bytes | None:
    """The JSON string literal of the one content of a chunk of the common shape: a single choice,
    index 0, written compactly (``"content":"…"``); None for anything else (then it is parsed)."""
    start = data.find(_CONTENT)
    if start < 0 or data.find(_CONTENT, start + 1) >= 0 or data.count(b'"index":') > 1:
        return None
    if b'"index":' in data and b'"index":0,' not in data and b'"index":0}' not in data:
        return None
    opening = start + len(_CONTENT) - 1
    end = data.find(b'"', opening + 1)
    while end > 0 and data[end - 1] == _BACKSLASH:
        slashes = 1
        while data[end - 1 - slashes] == _BACKSLASH:
            slashes += 1
        if slashes % 2 == 0:  # the backslashes escape one another: the quote ends the string
            break
        end = data.find(b'"', end + 1)
    return data[opening : end + 1] if end > 0 else None


def stream_header(labeler: Labeler, content_id: str, dep: Deployment) -> bytes:
    """The ``AIGC`` header of a stream: who generated it and its id; the seal, over the whole text,
    comes in the stream's final chunk."""
    fields, _ = labeler.unsealed(content_id, producer_of(dep, {}))
    return header_value(fields)


class StreamLabel:
    """One streamed answer: each chunk's content is kept (to seal the whole text at the end) and, for
    an explicit label, the notice is put before each choice's first content or with its last."""

    def __init__(self, labeler: Labeler, content_id: str, dep: Deployment, notice: Notice | None) -> None:
        self.labeler = labeler
        self.content_id = content_id
        self.dep = dep
        self.notice = notice
        # Each choice's content pieces as sent, kept as their JSON string literals (escapes and all):
        # most chunks are read without being parsed (_literal), and all are decoded once, at the end.
        self.pieces: dict[int, list[bytes]] = {}
        self.finished: set[int] = set()
        self.upstream: dict[str, Any] = {}  # the label the upstream sent, if any: {"aigc": …}
        self._template: dict[str, Any] | None = None

    def chunk(self, data: bytes) -> bytes:
        """Read one ``chat.completion.chunk`` as sent to the client; return it, with the notice."""
        if self.notice is None and self._template is not None and b"aigc" not in data and b"AIGC" not in data:
            # The common chunk, one choice's piece of content, is read without parsing it (a parse
            # per event cost +0.07 ms a stream end to end, docs/benchmarks.md).
            if b'"content"' not in data:
                return data  # no content (a role, a finish_reason, tool calls): nothing to keep
            literal = _literal(data)
            if literal is not None:
                self.pieces.setdefault(0, []).append(literal)
                return data
        return self._parsed(data)

    def _parsed(self, data: bytes) -> bytes:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return data
        if not isinstance(chunk, dict):
            return data
        if self._template is None:
            self._template = {k: chunk[k] for k in ("id", "created", "model") if k in chunk}
        label = read_label(chunk)
        if label is not None:
            self.upstream = {"aigc": label}
        changed = False
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            index = index if isinstance(index, int) else 0
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            pieces = self.pieces.get(index)
            if isinstance(content, str) and (content or pieces is None):
                if pieces is None:
                    pieces = self.pieces[index] = []
                    if self.notice is not None and self.notice.position is Position.START:
                        content = delta["content"] = self.notice.opening + content  # type: ignore[index]
                        changed = True
                pieces.append(orjson.dumps(content))
            if choice.get("finish_reason") is not None and index not in self.finished:
                self.finished.add(index)
                if self.notice is not None and self.notice.position is Position.END:
                    if not isinstance(delta, dict):
                        delta = choice["delta"] = {}
                    closing = self.notice.closing if self.pieces.get(index) else self.notice.text
                    delta["content"] = (delta.get("content") or "") + closing
                    self.pieces.setdefault(index, []).append(orjson.dumps(closing))
                    changed = True
        return orjson.dumps(chunk) if changed else data

    def final(self, usage_chunk: bytes | None) -> bytes:
        """The stream's last chunk: the client's usage chunk, when it asked for one, with the label;
        else a chunk with no choices that carries it."""
        template = self._template or {}
        body: dict[str, Any] = {"id": template.get("id"), **self.upstream}
        producer = producer_of(self.dep, body)
        texts = {
            index: orjson.loads(b"[" + b",".join(pieces) + b"]") for index, pieces in self.pieces.items()
        }
        label = self.labeler.label(self.content_id, texts_of(texts), at=int(time.time()), producer=producer)
        if usage_chunk is not None:
            try:
                chunk = orjson.loads(usage_chunk)
            except orjson.JSONDecodeError:
                chunk = None
            if isinstance(chunk, dict):
                chunk.pop("AIGC", None)
                chunk["aigc"] = label
                return orjson.dumps(chunk)
        return orjson.dumps(
            {
                "id": template.get("id", self.content_id),
                "object": "chat.completion.chunk",
                "created": template.get("created", int(time.time())),
                "model": template.get("model", ""),
                "choices": [],
                "aigc": label,
            }
        )

    def unfinished(self) -> bytes | None:
        """For an explicit label at the end: a chunk with the notice for each choice the upstream
        never finished (no finish_reason came)."""
        if self.notice is None or self.notice.position is not Position.END:
            return None
        missing = [i for i in sorted(self.pieces) if i not in self.finished]
        if not missing:
            return None
        for index in missing:
            self.pieces[index].append(orjson.dumps(self.notice.closing))
        template = self._template or {}
        return orjson.dumps(
            {
                **template,
                "object": "chat.completion.chunk",
                "choices": [
                    {"index": i, "delta": {"content": self.notice.closing}, "finish_reason": None}
                    for i in missing
                ],
            }
        )
