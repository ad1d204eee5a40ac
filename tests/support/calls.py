"""Raw HTTP calls to the gateway, for tests that read status lines and headers the SDK hides."""

from __future__ import annotations

from typing import Any

import httpx


def post_chat(
    gateway: Any,
    key: str,
    model: str,
    content: str = "x",
    headers: dict[str, str] | None = None,
    max_tokens: int | None = None,
) -> httpx.Response:
    """POST one user message to *gateway*'s ``/v1/chat/completions`` with *key* (and *max_tokens*,
    which sets what the call holds)."""
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return httpx.post(
        f"{gateway.v1}/chat/completions",
        headers={"Authorization": f"Bearer {key}", **(headers or {})},
        timeout=30,
        json=body,
    )
