"""Many concurrent calls racing for one wallet, half of them streamed."""

from __future__ import annotations

import asyncio

import openai


async def race(clients: list[openai.AsyncOpenAI], count: int) -> list[int]:
    """Make *count* concurrent calls of ``pricey-model`` (3 output tokens each), spread over
    *clients* (e.g. one per replica), every other one streamed; return each call's HTTP status."""

    async def one(index: int) -> int:
        sdk = clients[index % len(clients)]
        messages: list[dict[str, str]] = [{"role": "user", "content": "x"}]
        try:
            if (index // len(clients)) % 2:
                stream = await sdk.chat.completions.create(
                    model="pricey-model",
                    messages=messages,
                    max_tokens=3,
                    stream=True,
                )
                async for _ in stream:
                    pass
            else:
                await sdk.chat.completions.create(model="pricey-model", messages=messages, max_tokens=3)
            return 200
        except openai.APIStatusError as exc:
            return exc.status_code

    return list(await asyncio.gather(*(one(i) for i in range(count))))
