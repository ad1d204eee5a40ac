"""The exception tree of dizuo, and the one error envelope every API answers with.

Each error carries its HTTP status, its OpenAI error ``type`` and a ``code``. The message is
looked up in :data:`MESSAGES` by code, in Chinese or English, and formatted with the error's
parameters, so every message exists in both languages (a test checks it) and names the fix. This
module holds the messages of the core (keys, requests, money, limits, upstreams, routing); each
feature keeps its own beside it, in its package's ``__init__`` (``dizuo.kb``, ``dizuo.batches``,
``dizuo.agents``, ``dizuo.sandbox`` …), added with :func:`catalogue` when the package is imported,
which is before any of its modules can raise.

Envelope (OpenAI's): ``{"error": {"message", "type", "param", "code"}}``.

The tree (HTTP status)::

    DizuoError
    ├── InvalidRequest (400)
    │   ├── DataRiskBlocked (400)        the guard blocked the prompt or the answer
    │   ├── UnsupportedFeature (400)     the model cannot do it (tools on the embedded model)
    │   ├── IdempotencyConflict (409)    one Idempotency-Key, two different requests
    │   └── BodyTooLarge (413)
    ├── AuthenticationFailed (401)
    ├── InsufficientQuota (402)
    ├── PermissionDenied (403)
    ├── ModelNotFound (404)
    ├── RouteNotFound (404)
    ├── MethodNotAllowed (405)
    ├── RateLimited (429)
    ├── UpstreamError (502)
    │   ├── UpstreamTimeout (504)
    │   ├── UpstreamRateLimited (429)
    │   └── UpstreamRejected (400)
    ├── NoDeployment (503)
    ├── ComputeUnavailable (503)     a compute pool's Ray cluster cannot be reached
    ├── SharedStateUnavailable (503)     Redis, shared by the replicas, cannot be reached
    └── InternalError (500)
    ConfigError                          a bad setting or config file: the command stops, exit 2

(Features add their own subclasses beside them, e.g. the knowledge bases' and the auditor's.)
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import orjson

__all__ = [
    "MESSAGES",
    "AuthenticationFailed",
    "BodyTooLarge",
    "ComputeUnavailable",
    "ConfigError",
    "DizuoError",
    "IdempotencyConflict",
    "InsufficientQuota",
    "InternalError",
    "InvalidRequest",
    "Lang",
    "MethodNotAllowed",
    "ModelNotFound",
    "NoDeployment",
    "NotFiled",
    "PermissionDenied",
    "RateLimited",
    "RouteNotFound",
    "SharedStateUnavailable",
    "UnsupportedFeature",
    "UpstreamError",
    "UpstreamRateLimited",
    "UpstreamRejected",
    "UpstreamTimeout",
    "catalogue",
    "envelope",
    "pick_language",
]

Lang = Literal["zh", "en"]

# code -> (zh-CN, English). Placeholders are str.format fields filled from the error's params.
# The core's messages; features add theirs with catalogue().
MESSAGES: dict[str, tuple[str, str]] = {
    "invalid_api_key": (
        "API 密钥无效、已过期或已吊销。请在请求头 Authorization: Bearer 中提供有效的 dz- 密钥；"
        "可用 `dizuo admin create-key --org 组织名` 创建新密钥。",
        "The API key is invalid, expired or revoked. Send a valid dz- key in the "
        "Authorization: Bearer header; create one with `dizuo admin create-key --org ORG`.",
    ),
    "missing_api_key": (
        "缺少 API 密钥。请在请求头中加入 Authorization: Bearer dz-…；"
        "可用 `dizuo admin create-key --org 组织名` 创建密钥。",
        "No API key was sent. Add the header Authorization: Bearer dz-…; "
        "create a key with `dizuo admin create-key --org ORG`.",
    ),
    "model_not_found": (
        "模型 {model!r} 不存在，或此密钥无权使用。此密钥可用的模型：{available}。",
        "The model {model!r} does not exist or this key may not use it. "
        "Models this key may use: {available}.",
    ),
    "wrong_model_mode": (
        "模型 {model!r} 是{actual}模型，不能用于 {endpoint}。",
        "The model {model!r} is a {actual_en} model and cannot be used with {endpoint}.",
    ),
    "invalid_json": (
        "请求体不是有效的 JSON：{detail}。请发送 Content-Type: application/json 的 JSON 对象。",
        "The request body is not valid JSON: {detail}. Send a JSON object with "
        "Content-Type: application/json.",
    ),
    "invalid_body": (
        "请求体必须是 JSON 对象，而不是 {kind}。",
        "The request body must be a JSON object, not {kind}.",
    ),
    "aigc_not_exportable": (
        "只能导出本平台生成且未经修改的回答：{reason_zh}。请原样提交接口返回的回答（含 aigc 标识）。",
        "Only an unchanged answer generated on this platform can be exported: {reason_en}. Send the "
        "answer as the API returned it (with its aigc label).",
    ),
    "missing_param": (
        "缺少必填参数 {param!r}。",
        "The required parameter {param!r} is missing.",
    ),
    "invalid_param": (
        "参数 {param!r} 无效：{reason_zh}。",
        "The parameter {param!r} is invalid: {reason_en}.",
    ),
    "idempotency_key_reused": (
        "幂等键 {key!r} 已用于另一笔参数不同的请求。重试时请原样重发；新的请求请换一个键。",
        "The idempotency key {key!r} was used for a request with other parameters. Resend a retry "
        "unchanged; give a new request a new key.",
    ),
    "scope_missing": (
        "此密钥没有 {scope} 权限（它的权限：{scopes}）。请用 `dizuo admin create-key --scopes …` 创建带该权限的密钥。",
        "This key lacks the scope {scope} (its scopes: {scopes}). Create a key with it: "
        "`dizuo admin create-key --scopes …`.",
    ),
    "request_too_large": (
        "请求体超过上限 {limit} 字节。请缩短输入，或由管理员调整 server.max_body_bytes（/v1）"
        "或 server.control_max_body_bytes（/admin、/console）。",
        "The request body exceeds the limit of {limit} bytes. Shorten the input, or ask an "
        "operator to raise server.max_body_bytes (/v1) or server.control_max_body_bytes (/admin, /console).",
    ),
    "unsupported_feature": (
        "模型 {model!r} 不支持 {feature}。请改用支持该功能的模型。",
        "The model {model!r} does not support {feature}. Use a model that does.",
    ),
    "rate_limit_exceeded": (
        "请求过于频繁：{detail}。请在 {retry_after} 秒后重试。",
        "Too many requests: {detail}. Retry after {retry_after} seconds.",
    ),
    "insufficient_quota": (
        "余额不足：本次调用最多需 ¥{needed}（其中算力券可付 ¥{vouchers}），账户可用余额 ¥{available}，还差 ¥{missing}。"
        "请用 `dizuo admin topup --org 组织名 --amount 金额` 充值。",
        "Insufficient funds: this call may cost up to ¥{needed} (vouchers can pay ¥{vouchers}); the available "
        "balance is ¥{available}, ¥{missing} short. Top up with `dizuo admin topup --org ORG --amount AMOUNT`.",
    ),
    "data_risk_blocked": (
        "{where_zh}含有受保护的数据（{types}），按本组织的数据安全策略已拦截。请删除或脱敏后重试。",
        "The {where_en} contains protected data ({types}) and was blocked by your organization's data "
        "policy. Remove or mask it and try again.",
    ),
    "upstream_error": (
        "上游 {deployment} 返回错误（HTTP {status}）：{said_zh}",
        "The upstream {deployment} answered with an error (HTTP {status}): {said_en}",
    ),
    "upstream_unreachable": (
        "无法连接上游 {deployment}：{detail}",
        "Could not reach the upstream {deployment}: {detail}",
    ),
    "upstream_disconnected": (
        "上游 {deployment} 在响应途中断开了连接：{detail}",
        "The upstream {deployment} dropped the connection mid-response: {detail}",
    ),
    "upstream_timeout": (
        "上游 {deployment} 在 {seconds} 秒内没有响应。",
        "The upstream {deployment} did not answer within {seconds} seconds.",
    ),
    "no_deployment": (
        "模型 {model!r} 当前没有可用的部署：{detail}",
        "No deployment of the model {model!r} is available now: {detail}",
    ),
    "compute_unavailable": (
        "资源池 {pool} 的 Ray 集群暂时无法访问：{detail}。请稍后重试，或换用其他资源池。",
        "The Ray cluster of pool {pool} cannot be reached now: {detail}. Try again later, or use "
        "another pool.",
    ),
    "shared_state_unavailable": (
        "平台暂时连不上 Redis（各副本共享的额度占用与限流状态），本次调用未能完成。请稍后重试；"
        "持续出现请联系平台运维人员。",
        "The platform cannot reach Redis (where its replicas share holds and rate limits) right now, so "
        "the call could not complete. Retry shortly; if it persists, tell the platform's operators.",
    ),
    "admin_token_invalid": (
        "管理令牌缺失、无效或已吊销。请在 Authorization: Bearer 中提供 dzt- 令牌；可用 "
        "`dizuo admin create-token --username 用户名` 创建。",
        "The admin token is missing, invalid or revoked. Send a dzt- token in Authorization: Bearer; "
        "create one with `dizuo admin create-token --username NAME`.",
    ),
    "permission_denied": (
        "角色 {role} 无权执行此操作：{action}。",
        "The role {role} may not do this: {action}.",
    ),
    "no_cleared_deployment": (
        "数据级别为「{data_class_zh}」({data_class}) 的请求不能发往模型 {model!r} 的任何部署：{detail}。"
        "请求不会降级发往未获许可的部署；请联系平台运维为该级别配置部署。",
        "No deployment of {model!r} is cleared for {data_class} data: {detail}. The call is not sent to a "
        "less trusted deployment; ask the operators to add one cleared for this class.",
    ),
    "model_not_filed": (
        "本组织面向公众提供服务，只能使用已备案的生成式人工智能服务；模型 {model!r} 没有已备案的部署。"
        "请换用已备案的模型（GET /v1/models 中 dizuo.filings 非空），或请平台运维为该部署登记备案号。",
        "This organization serves the public and may use filed generative AI services only; no deployment "
        "of {model!r} carries a filing. Use a filed model (non-empty dizuo.filings in GET /v1/models), or ask the "
        "operators to record the deployment's filing number.",
    ),
    "not_found": (
        "路径 {path} 不存在。可用接口：/v1/chat/completions、/v1/embeddings、/v1/models。",
        "There is no route {path}. Available: /v1/chat/completions, /v1/embeddings, /v1/models.",
    ),
    "method_not_allowed": (
        "{path} 不支持 {method} 方法，请使用 {allowed}。",
        "{path} does not accept {method}; use {allowed}.",
    ),
    "internal_error": (
        "服务器内部错误（请求 ID {request_id}）。请把该 ID 提供给平台运维人员。",
        "Internal server error (request id {request_id}). Give this id to the platform operators.",
    ),
}


def catalogue(messages: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Add a feature's *messages* (code -> (zh-CN, English)) to :data:`MESSAGES`; return them.
    A code is one message: naming one twice with other words is a mistake made at import."""
    for code, words in messages.items():
        if MESSAGES.setdefault(code, words) != words:
            raise ValueError(f"the error code {code!r} has two messages")
    return messages


def pick_language(accept_language: bytes | str | None, default: Lang = "zh") -> Lang:
    """Return ``"en"`` or ``"zh"`` from an Accept-Language header, falling back to *default*."""
    if not accept_language:
        return default
    if isinstance(accept_language, bytes):
        accept_language = accept_language.decode("latin-1")
    first = accept_language.split(",", 1)[0].strip().lower()
    if first.startswith("en"):
        return "en"
    if first.startswith("zh"):
        return "zh"
    return default


class DizuoError(Exception):
    """Base of every error dizuo reports to a client."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        code: str | None = None,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> None:
        self.code = code or self.default_code
        self.param = param
        self.params = params
        self.headers = headers or {}
        super().__init__(self.message("en"))

    def message(self, lang: Lang = "zh") -> str:
        """Render the message in *lang* ("zh" or "en")."""
        zh, en = MESSAGES[self.code]
        template = en if lang == "en" else zh
        try:
            return template.format(param=self.param, **self.params)
        except (KeyError, IndexError):  # a missing parameter must not hide the error itself
            return template

    def body(self, lang: Lang = "zh") -> bytes:
        """Serialize the OpenAI-style error envelope."""
        return envelope(self.message(lang), self.type, self.param, self.code)


def envelope(message: str, type_: str, param: str | None, code: str | None) -> bytes:
    """Serialize ``{"error": {...}}`` the way every dizuo API answers errors."""
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


class InvalidRequest(DizuoError):
    status = 400
    type = "invalid_request_error"
    default_code = "invalid_param"


class DataRiskBlocked(InvalidRequest):
    """The guard found protected data and the policy says block; the values are never echoed."""

    default_code = "data_risk_blocked"

    def __init__(self, types: list[str], answer: bool = False) -> None:
        super().__init__(
            types=", ".join(sorted(types)),
            where_zh="回答" if answer else "请求",
            where_en="answer" if answer else "request",
        )


class UnsupportedFeature(InvalidRequest):
    default_code = "unsupported_feature"


class IdempotencyConflict(InvalidRequest):
    status = 409
    default_code = "idempotency_key_reused"


def invalid_param(param: str | None, zh: str, en: str) -> InvalidRequest:
    """400 ``invalid_param``: *param* is wrong, and why (Chinese, English)."""
    return InvalidRequest("invalid_param", param=param, reason_zh=zh, reason_en=en)


class BodyTooLarge(InvalidRequest):
    status = 413
    default_code = "request_too_large"


class AuthenticationFailed(DizuoError):
    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"


class ModelNotFound(DizuoError):
    status = 404
    type = "invalid_request_error"
    default_code = "model_not_found"


class RouteNotFound(DizuoError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class PermissionDenied(DizuoError):
    status = 403
    type = "permission_error"
    default_code = "permission_denied"


class MethodNotAllowed(DizuoError):
    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"


class InsufficientQuota(DizuoError):
    """The wallet cannot cover the call's worst-case cost (hold before forwarding)."""

    status = 402
    type = "insufficient_quota"
    default_code = "insufficient_quota"


class RateLimited(DizuoError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class UpstreamError(DizuoError):
    """The upstream answered with an error, or broke off; *retryable* before the first byte."""

    status = 502
    type = "upstream_error"
    default_code = "upstream_error"

    def __init__(self, code: str | None = None, *, retryable: bool = True, **kwargs: Any) -> None:
        self.retryable = retryable
        super().__init__(code, **kwargs)


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout_error"
    default_code = "upstream_timeout"


class UpstreamRateLimited(UpstreamError):
    """The upstream said 429: passed on as 429 once no other deployment could take the call."""

    status = 429
    type = "rate_limit_error"


class UpstreamRejected(UpstreamError):
    """The upstream refused the request as malformed (HTTP 400/422): the client's mistake, not ours."""

    status = 400
    type = "invalid_request_error"


class NotFiled(DizuoError):
    """An organization serving the public asked for a model with no filed deployment."""

    status = 403
    type = "permission_error"
    default_code = "model_not_filed"


class NoDeployment(DizuoError):
    status = 503
    type = "service_unavailable"
    default_code = "no_deployment"


class ComputeUnavailable(DizuoError):
    """A pool's Ray cluster did not answer, or answered an error, when a job was sent to it."""

    status = 503
    type = "service_unavailable"
    default_code = "compute_unavailable"


class SharedStateUnavailable(DizuoError):
    """Redis, where replicas share holds and rate limits, cannot be reached: nothing can be held."""

    status = 503
    type = "service_unavailable"
    default_code = "shared_state_unavailable"


class InternalError(DizuoError):
    status = 500
    type = "api_error"
    default_code = "internal_error"


class ConfigError(Exception):
    """A configuration file or setting is wrong; the message names the file, entry and field."""
