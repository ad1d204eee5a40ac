"""Agents called as models: a chat completion whose ``model`` is ``agent/NAME`` (or
``agent/NAME@VERSION``) is answered by the agents' loop (:mod:`dizuo.agents.loop`), which calls this
gateway's own ``/v1/chat/completions`` with the caller's key for every model step: each step is
held, guarded, routed, settled and recorded like any call.

The gateway checks the key (the ``models`` scope, and that it may use ``agent/NAME``) and hands the
call over; the loop answers with a whole JSON body or a stream of server-sent events.
"""

from __future__ import annotations

from typing import Any, Protocol

from dizuo.accounts import KeyInfo
from dizuo.agents.loop import Reply
from dizuo.agents.service import PREFIX as AGENT_PREFIX
from dizuo.errors import Lang

__all__ = ["AGENT_PREFIX", "AgentCall", "AgentRunner"]


class AgentRunner(Protocol):
    async def answer(
        self,
        key: KeyInfo,
        token: str,
        alias: str,
        body: dict[str, Any],
        request_id: str,
        lang: Lang,
        data_class: str,
    ) -> Reply:
        """The answer of the agent *alias* to *body*; *data_class* is the call's (the key's, or higher
        by the caller's header)."""
        ...

    async def names(self, key: KeyInfo) -> list[str]:
        """The ``agent/NAME`` models *key* may call."""
        ...


class AgentCall(Exception):
    """Raised while a chat call is read: its model is an agent (the handler hands it over)."""

    def __init__(self, key: KeyInfo, alias: str, body: dict[str, Any], data_class: str) -> None:
        super().__init__(alias)
        self.key = key
        self.alias = alias
        self.body = body
        self.data_class = data_class
