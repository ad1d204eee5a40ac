"""Checks on client bodies of OpenAI's wire format before anything leaves: each mistake gets a 400
naming its ``param``. The gateway checks each call with them, the Batch API each line of a batch.

Only what the gateway relies on, or what every upstream would refuse anyway, is checked; unknown
fields (vendor extensions such as ``enable_search`` or ``thinking``) pass through untouched.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from dizuo.errors import InvalidRequest

__all__ = ["chat_body", "embeddings_body", "parse_json", "validated"]

M = TypeVar("M", bound=BaseModel)

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def _invalid(param: str, zh: str, en: str) -> InvalidRequest:
    return InvalidRequest("invalid_param", param=param, reason_zh=zh, reason_en=en)


def validated(model: type[M], document: Any, what: str) -> M:
    """*document* as *model*, or a 400 naming its first wrong field (``cases.1.industry``; *what*
    when the document as a whole is wrong)."""
    if isinstance(document, model):
        return document
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or what
        raise _invalid(where, first["msg"], first["msg"]) from exc


def parse_json(raw: bytes) -> dict[str, Any]:
    """Parse a JSON object body, or raise a 400 that says what is wrong."""
    if not raw:
        raise InvalidRequest("invalid_json", detail="empty body / 请求体为空")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("invalid_json", detail=str(exc)) from exc
    if not isinstance(data, dict):
        raise InvalidRequest("invalid_body", kind=type(data).__name__)
    return data


def _model(data: dict[str, Any]) -> str:
    model = data.get("model")
    if model is None:
        raise InvalidRequest("missing_param", param="model")
    if not isinstance(model, str) or not model:
        raise _invalid("model", "必须是非空字符串", "must be a non-empty string")
    return model


def _number(data: dict[str, Any], name: str, low: float, high: float) -> None:
    value = data.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _invalid(name, f"必须是 {low} 到 {high} 之间的数", f"must be a number from {low} to {high}")


def _positive_int(data: dict[str, Any], name: str, high: int = 2**31) -> None:
    value = data.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise _invalid(name, f"必须是 1 到 {high} 之间的整数", f"must be an integer from 1 to {high}")


def _messages(data: dict[str, Any]) -> None:
    messages = data.get("messages")
    if messages is None:
        raise InvalidRequest("missing_param", param="messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages", "必须是非空数组", "must be a non-empty array")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid(f"messages[{index}]", "必须是对象", "must be an object")
        role = message.get("role")
        if role not in ROLES:
            raise _invalid(
                f"messages[{index}].role",
                f"必须是 {'、'.join(sorted(ROLES))} 之一",
                f"must be one of {', '.join(sorted(ROLES))}",
            )


def _options(data: dict[str, Any]) -> None:
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _invalid("stream", "必须是 true 或 false", "must be true or false")
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _invalid("stream_options", "必须是对象", "must be an object")
    _number(data, "temperature", 0, 2)
    _number(data, "top_p", 0, 1)
    _number(data, "presence_penalty", -2, 2)
    _number(data, "frequency_penalty", -2, 2)
    _positive_int(data, "n", 128)
    _positive_int(data, "max_tokens")
    _positive_int(data, "max_completion_tokens")
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _invalid("seed", "必须是整数", "must be an integer")
    stop = data.get("stop")
    if (
        stop is not None
        and not isinstance(stop, str)
        and not (isinstance(stop, list) and all(isinstance(item, str) for item in stop))
    ):
        raise _invalid("stop", "必须是字符串或字符串数组", "must be a string or an array of strings")
    tools = data.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        raise _invalid("tools", "必须是对象数组", "must be an array of objects")
    choice = data.get("tool_choice")
    if choice is not None and not isinstance(choice, str | dict):
        raise _invalid("tool_choice", "必须是字符串或对象", "must be a string or an object")
    response_format = data.get("response_format")
    if response_format is not None and not (
        isinstance(response_format, dict) and isinstance(response_format.get("type"), str)
    ):
        raise _invalid("response_format", "必须是带 type 的对象", "must be an object with a type")
    user = data.get("user")
    if user is not None and not isinstance(user, str):
        raise _invalid("user", "必须是字符串", "must be a string")


def chat_body(raw: bytes) -> tuple[dict[str, Any], str, bool]:
    """Validate a chat completion body; return it with its model alias and stream flag."""
    data = parse_json(raw)
    model = _model(data)
    _messages(data)
    _options(data)
    return data, model, data.get("stream") is True


def embeddings_body(raw: bytes) -> tuple[dict[str, Any], str]:
    """Validate an embeddings body; return it with its model alias."""
    data = parse_json(raw)
    model = _model(data)
    if "input" not in data:
        raise InvalidRequest("missing_param", param="input")
    value = data["input"]
    if not isinstance(value, str | list) or (isinstance(value, list) and not value) or value == "":
        raise _invalid("input", "必须是非空字符串或数组", "must be a non-empty string or array")
    return data, model
