"""Agents called as models: a chat completion whose ``model`` is ``agent/NAME`` (or
``agent/NAME@VERSION``) is answered by the agents' loop (:mod:`dizuo.agents.loop`), which calls this
gateway's own ``/v1/chat/completions`` with the caller's key for every model step: each step is
held, guarded, routed, settled and recorded like any call.

The gateway checks the key (the ``models`` scope, and that it may use ``agent/NAME``) and hands the
call over; the loop answers with a whole JSON body or a stream of server-sent events.
"""

from __future__ import annotations

from typing import Any

from dizuo.accounts import KeyInfo
from dizuo.agents.loop import Runner as AgentRunner
from dizuo.agents.service import PREFIX as AGENT_PREFIX
from dizuo.agents.service import unpinned

__all__ = ["AGENT_PREFIX", "AgentCall", "AgentRunner", "unpinned"]


class AgentCall(Exception):
    """Raised while a chat call is read: its model is an agent (the handler hands it over)."""

    def __init__(self, key: KeyInfo, alias: str, body: dict[str, Any], data_class: str) -> None:
        super().__init__(alias)
        self.key = key
        self.alias = alias
        self.body = body
        self.data_class = data_class
