"""Applying a guard policy to one call: the prompt before it leaves, the answer before it returns.

Precedence: the key's policy, else its organization's, held to the platform's policy for the
request's data class (else the platform's default, ``guard:`` in the config file) as a floor: an
organization may be stricter than the platform, never laxer. Actions:

* ``off``: nothing is scanned;
* ``log``: an audit event per direction that had findings; the text is untouched;
* ``redact``: findings are replaced, by ``[TYPE]`` (mask) or by ``<TYPE_n>`` placeholders that are
  put back in the answer the client receives (placeholder);
* ``block``: 400 ``data_risk_blocked`` naming the types, never the values (an answer that is
  blocked mid-stream ends with an error event).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dizuo.config import DATA_CLASSES, GuardConfig, GuardPolicy
from dizuo.errors import DataRiskBlocked
from dizuo.guard.detect import Entity, Scanner
from dizuo.providers.base import answer_texts

__all__ = ["PERSONAL", "AnswerFilter", "Guard", "Inspection"]

# Types that are personal information (they raise a request's data class when the policy says so);
# the rest are secrets or an organization's own words.
PERSONAL = frozenset(
    {
        "CN_RESIDENT_ID",
        "CN_MOBILE",
        "BANK_CARD",
        "EMAIL",
        "CN_PASSPORT",
        "CN_HK_MACAO_PERMIT",
        "CN_LICENSE_PLATE",
    }
)
_STRICTNESS = {"off": 0, "log": 1, "redact": 2, "block": 3}
HOLD = 96  # characters of a streamed answer held back so a value split across chunks is seen whole
_PLACEHOLDER = re.compile(r"<([A-Z0-9_]+)_(\d+)>")


@dataclass(slots=True)
class Inspection:
    """What the guard did to one call, carried from the prompt to the answer."""

    policy: GuardPolicy
    scanner: Scanner
    prompt_counts: Counter[str] = field(default_factory=Counter)
    answer_counts: Counter[str] = field(default_factory=Counter)
    placeholders: dict[str, str] = field(default_factory=dict)  # "<CN_MOBILE_1>" -> the value
    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def blocks_prompt(self) -> bool:
        return self.policy.action == "block" and bool(self.prompt_counts)

    @property
    def touches_answer(self) -> bool:
        """Whether the answer must be read: scanned, or placeholders to put back."""
        return self.scans_answer or bool(self.placeholders)

    @property
    def scans_answer(self) -> bool:
        return self.policy.action != "off" and "answer" in self.policy.directions

    def raised_class(self, data_class: str) -> str:
        """The request's data class after its prompt was scanned."""
        target = self.policy.raise_class
        if target is None or not PERSONAL.intersection(self.prompt_counts):
            return data_class
        return max(data_class, target, key=DATA_CLASSES.index)

    def find(self, text: str) -> list[Entity]:
        """The entities in *text* that the policy acts on."""
        entities = self.scanner.scan(text)
        types = self.policy.types
        return entities if types is None else [e for e in entities if e.type in types]

    def refuse_answer(self) -> DataRiskBlocked:
        """The 400 for an answer the policy blocks, naming what it held."""
        return DataRiskBlocked(list(self.answer_counts), answer=True)

    def replace(self, text: str, entities: list[Entity]) -> str:
        """*text* with each entity replaced by its mask or placeholder."""
        out = []
        last = 0
        for entity in entities:
            out.append(text[last : entity.start])
            out.append(self._token(entity))
            last = entity.end
        out.append(text[last:])
        return "".join(out)

    def _token(self, entity: Entity) -> str:
        if self.policy.redact == "mask":
            return f"[{entity.type}]"
        token = self._by_value.get((entity.type, entity.value))
        if token is None:
            number = sum(1 for t, _ in self._by_value if t == entity.type) + 1
            token = f"<{entity.type}_{number}>"
            self._by_value[(entity.type, entity.value)] = token
            self.placeholders[token] = entity.value
        return token

    def restore(self, text: str) -> str:
        if not self.placeholders or "<" not in text:
            return text
        return _PLACEHOLDER.sub(lambda m: self.placeholders.get(m.group(0), m.group(0)), text)


class Guard:
    """The platform's guard: policies from the config and the keys, scanners cached per word list."""

    def __init__(self, config: GuardConfig) -> None:
        self.config = config
        self._scanners: dict[tuple[tuple[str, ...], tuple[str, ...]], Scanner] = {}
        # (id of a key's own policy, data class) -> (that policy, it held to the platform's floor)
        self._floored: dict[tuple[int, str], tuple[GuardPolicy, GuardPolicy]] = {}

    def platform_policy(self, data_class: str) -> GuardPolicy:
        """The platform's policy for *data_class*: its class policy, else its default."""
        for name, policy in self.config.classes.items():
            if name == data_class:
                return policy
        return self.config.default

    def policy(self, own: GuardPolicy | None, data_class: str) -> GuardPolicy:
        """The policy a call follows: the key's (else its organization's) policy, held to the platform's
        for the data class as a floor. Where the platform's action is stricter (off < log < redact <
        block), the platform's policy applies, with the organization's own keywords and patterns
        added; an org-admin cannot set ``off`` under a platform that logs or blocks."""
        floor = self.platform_policy(data_class)
        if own is None or _STRICTNESS[own.action] >= _STRICTNESS[floor.action]:
            return own or floor
        cached = self._floored.get((id(own), data_class))
        if cached is not None and cached[0] is own:
            return cached[1]
        merged = floor.model_copy(
            update={
                "keywords": list(dict.fromkeys([*floor.keywords, *own.keywords])),
                "patterns": list(dict.fromkeys([*floor.patterns, *own.patterns])),
                "raise_class": floor.raise_class or own.raise_class,
            }
        )
        if len(self._floored) > 4096:
            self._floored.clear()
        self._floored[(id(own), data_class)] = (own, merged)
        return merged

    def _scanner(self, policy: GuardPolicy) -> Scanner:
        cache_key = (tuple(policy.keywords), tuple(policy.patterns))
        scanner = self._scanners.get(cache_key)
        if scanner is None:
            if len(self._scanners) > 1024:
                self._scanners.clear()
            scanner = self._scanners[cache_key] = Scanner(policy.keywords, policy.patterns)
        return scanner

    def inspect_prompt(self, own: GuardPolicy | None, data_class: str, body: dict[str, Any]) -> Inspection:
        """Scan the messages (or embedding input) of *body*, redacting it in place when the policy says
        so; the caller refuses the call when :attr:`Inspection.blocks_prompt`."""
        policy = self.policy(own, data_class)
        inspection = Inspection(policy, self._scanner(policy))
        if policy.action == "off" or "prompt" not in policy.directions:
            return inspection
        for holder, slot, text in _texts(body):
            entities = inspection.find(text)
            if not entities:
                continue
            inspection.prompt_counts.update(e.type for e in entities)
            if policy.action == "redact":
                holder[slot] = inspection.replace(text, entities)
        return inspection

    def inspect_texts(self, own: GuardPolicy | None, data_class: str, texts: list[str]) -> Inspection:
        """Scan *texts* as a prompt is scanned (a compute job's name and entrypoint), changing nothing:
        its ``prompt_counts`` say what was found, ``blocks_prompt`` whether the policy refuses it."""
        policy = self.policy(own, data_class)
        inspection = Inspection(policy, self._scanner(policy))
        if policy.action != "off" and "prompt" in policy.directions:
            for text in texts:
                inspection.prompt_counts.update(e.type for e in inspection.find(text))
        return inspection

    def inspect_output(self, own: GuardPolicy | None, data_class: str, text: str) -> tuple[str, Inspection]:
        """Scan *text* as an answer is scanned (a compute job's logs): redacted when the policy says
        so, and 400 when it blocks; its ``answer_counts`` say what was found."""
        policy = self.policy(own, data_class)
        inspection = Inspection(policy, self._scanner(policy))
        if not inspection.scans_answer:
            return text, inspection
        entities = inspection.find(text)
        inspection.answer_counts.update(e.type for e in entities)
        if entities and policy.action == "block":
            raise inspection.refuse_answer()
        if entities and policy.action == "redact":
            text = inspection.replace(text, entities)
        return text, inspection

    def inspect_answer(self, inspection: Inspection, body: dict[str, Any]) -> bool:
        """Scan a whole answer in place — each message's content, reasoning and tool-call arguments;
        return whether anything changed. Raises 400 when the policy blocks."""
        changed = False
        for choice in body.get("choices") or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict):
                continue
            for holder, slot, text in answer_texts(message):
                new = text
                if inspection.scans_answer:
                    entities = inspection.find(text)
                    inspection.answer_counts.update(e.type for e in entities)
                    if entities and inspection.policy.action == "block":
                        raise inspection.refuse_answer()
                    if entities and inspection.policy.action == "redact":
                        new = inspection.replace(text, entities)
                new = inspection.restore(new)
                if new != text:
                    holder[slot] = new
                    changed = True
        return changed


class AnswerFilter:
    """A streamed answer's text, chunk by chunk: findings counted (or masked, or blocked) even when
    split across chunks, placeholders put back. Text that may still be part of a value is held back
    (up to :data:`HOLD` characters) when the policy changes text; with ``log`` or ``block`` nothing
    is held, the scan looks back over the text already sent instead."""

    def __init__(self, inspection: Inspection) -> None:
        self.inspection = inspection
        self.changes = inspection.policy.action == "redact" or bool(inspection.placeholders)
        self.scans = inspection.scans_answer
        self._pending = ""  # received, not yet sent
        self._sent_tail = ""  # the end of what was sent, rescanned for values split at the seam
        self._seen: set[tuple[str, int]] = set()  # (type, absolute end) already counted
        self._offset = 0  # absolute position of _pending[0]

    def feed(self, text: str) -> str:
        """Take the next piece of the answer; return what may be sent now (raises on block)."""
        self._pending += text
        return self._release(final=False)

    def finish(self) -> str:
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        if not self.changes:
            if self.scans:
                self._count(self._sent_tail + self._pending, len(self._sent_tail))
            out, self._pending = self._pending, ""
            self._advance(out)
            return out
        cut = len(self._pending) if final else max(0, len(self._pending) - HOLD)
        if not final:
            # Never cut inside a placeholder that is still arriving.
            bracket = self._pending.rfind("<", 0, cut)
            if bracket != -1 and ">" not in self._pending[bracket:cut]:
                cut = bracket
        entities: list[Entity] = []
        if self.scans:
            entities = self.inspection.find(self._pending)
            # A value that crosses the cut waits for the rest of itself.
            for entity in entities:
                if entity.start < cut < entity.end and not final:
                    cut = entity.start
            entities = [e for e in entities if e.end <= cut]
            for entity in entities:
                self._note(entity.type, self._offset + entity.end)
        if entities and self.inspection.policy.action == "block":
            raise self.inspection.refuse_answer()
        head = self._pending[:cut]
        out = self.inspection.replace(head, entities) if self.inspection.policy.action == "redact" else head
        self._pending = self._pending[cut:]
        self._offset += cut
        return self.inspection.restore(out)

    def _count(self, window: str, fresh_from: int) -> None:
        base = self._offset - fresh_from
        entities = self.inspection.find(window)
        hits = [e for e in entities if e.end > fresh_from]
        for entity in hits:
            self._note(entity.type, base + entity.end)
        if hits and self.inspection.policy.action == "block":
            raise self.inspection.refuse_answer()

    def _note(self, kind: str, end: int) -> None:
        if (kind, end) not in self._seen:
            self._seen.add((kind, end))
            self.inspection.answer_counts[kind] += 1

    def _advance(self, sent: str) -> None:
        self._offset += len(sent)
        self._sent_tail = (self._sent_tail + sent)[-HOLD:]


# Keys whose strings are structure or binary data, not text a person wrote: never scanned.
_NOT_TEXT = frozenset({"role", "type", "id", "tool_call_id", "url", "detail", "data", "format", "mime_type"})


def _walk(holder: Any, found: list[tuple[Any, Any, str]]) -> None:
    """Add every string under *holder* (dicts and lists, any depth) but structural ones to *found*."""
    slots = holder.items() if isinstance(holder, dict) else enumerate(holder)
    for slot, value in slots:
        if isinstance(value, str):
            if value and slot not in _NOT_TEXT:
                found.append((holder, slot, value))
        elif isinstance(value, dict | list) and slot not in _NOT_TEXT:
            _walk(value, found)


def _texts(body: dict[str, Any]) -> list[tuple[Any, Any, str]]:
    """Every string of a chat or embeddings body that the upstream receives as text, as (container,
    slot, text): each message's content and its parts' text fields, its name, reasoning, tool calls'
    names and arguments, tool results. A resident ID in a tool call's arguments or a message's name
    passed a block policy when only ``content`` was read."""
    found: list[tuple[Any, Any, str]] = []
    messages = body.get("messages")
    if isinstance(messages, list):
        _walk(messages, found)
    value = body.get("input")
    if isinstance(value, str):
        found.append((body, "input", value))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                found.append((value, index, item))
    return found
