"""Re-embedding a knowledge base as a compute job: what runs on the pool's node
(``python -m dizuo.compute.kbjob --job ID --model M``).

It asks the platform (``DIZUO_BASE_URL``, with the key made for this job alone, ``DIZUO_API_KEY``) for
the chunks it has not embedded yet, embeds them through the platform's ``/v1/embeddings`` (metered,
limited and guarded as any client's calls), sends the vectors back, and when none is left asks the
platform to move the knowledge base to them in one transaction. Chunks of files added meanwhile are
picked up on the way; a commit refused because more arrived at the last moment is tried again.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from dizuo.kb.models import GatewayModels, GatewayRefused
from dizuo.lazy import module

if TYPE_CHECKING:
    import numpy as np
else:
    np = module("numpy")  # loaded on first use (dizuo.lazy)

__all__ = ["main", "reembed"]

PAGE = 512  # chunks asked for, embedded and sent back at a time
COMMIT_TRIES = 5


class Refused(Exception):
    """The platform answered the worker with an error."""


async def _call(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = orjson.dumps(body) if body is not None else None
    async with session.request(method, url, data=data) as response:
        raw = await response.read()
        try:
            return response.status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return response.status, raw.decode(errors="replace")


def _fail(status: int, answer: Any) -> Refused:
    error = answer.get("error", {}) if isinstance(answer, dict) else {}
    return Refused(f"{status} {error.get('code') or ''}: {error.get('message') or answer}")


async def reembed(base_url: str, api_key: str, job_id: str, model: str, page: int = PAGE) -> dict[str, Any]:
    """Embed every pending chunk of the job's knowledge base with *model*, then commit; the commit's
    answer (``{"knowledge_base", "model", "chunks", "dimensions", "version"}``)."""
    base = base_url.rstrip("/")
    routes = f"{base}/compute/jobs/{job_id}/kb"
    headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        models = GatewayModels(base, api_key, session)
        done = 0
        for _ in range(COMMIT_TRIES):
            while True:
                status, answer = await _call(session, "GET", f"{routes}/chunks?limit={page}")
                if status != 200:
                    raise _fail(status, answer)
                rows = answer["data"]
                if not rows:
                    break
                vectors = await models.embed(model, [row["text"] for row in rows])
                body = {
                    "data": [
                        {
                            "id": row["id"],
                            "embedding": base64.b64encode(np.asarray(v, "<f4").tobytes()).decode(),
                        }
                        for row, v in zip(rows, vectors, strict=True)
                    ]
                }
                status, staged = await _call(session, "POST", f"{routes}/vectors", body)
                if status != 200:
                    raise _fail(status, staged)
                done += staged["staged"]
                total = answer["total"]
                print(f"已嵌入 {done} 段，余 {max(answer['pending'] - len(rows), 0)} 段，共 {total} 段 / "
                      f"{done} chunks embedded, {max(answer['pending'] - len(rows), 0)} to go of {total}",
                      flush=True)  # fmt: skip
            status, answer = await _call(session, "POST", f"{routes}/commit")
            if status == 200:
                return dict(answer)
            if status != 409:
                raise _fail(status, answer)
        raise _fail(status, answer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dizuo.compute.kbjob")
    parser.add_argument("--job", required=True, help="The compute job's id.")
    parser.add_argument("--model", required=True, help="The embedding model to call.")
    parser.add_argument("--page", type=int, default=PAGE)
    args = parser.parse_args(argv)
    try:
        done = asyncio.run(
            reembed(
                os.environ["DIZUO_BASE_URL"], os.environ["DIZUO_API_KEY"], args.job, args.model, args.page
            )
        )
    except GatewayRefused as exc:
        print(f"嵌入模型拒绝了请求 / the embedding model refused: {exc}", file=sys.stderr, flush=True)
        return 1
    except (Refused, aiohttp.ClientError, KeyError) as exc:
        print(f"重新嵌入失败 / re-embedding failed: {exc}", file=sys.stderr, flush=True)
        return 1
    print(
        f"知识库 {done['knowledge_base']} 已切换到 {done['model']}（{done['dimensions']} 维，{done['chunks']} 段）/ "
        f"{done['knowledge_base']} moved to {done['model']} ({done['dimensions']}-d, {done['chunks']} chunks)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
