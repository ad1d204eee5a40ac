"""A batch's lines through the gateway: calls made with a batch worker's key (``KeyInfo.batch_id``).

Each carries ``X-Dizuo-Batch-Line: N``, the line of the batch it answers, and ``X-Dizuo-Batch-Fresh: 1``
when the line was handed out for the first time (never sent, so no stored answer to look for). The gateway answers it as
any call, priced at the deployment's batch price, and writes the answer it charged for onto the line
before the call's usage record is written (:meth:`dizuo.batches.service.Batches.keep`): a line
asked again, after a worker or a server restarted, gets that stored answer and is not sent upstream.

A line asked again while its first call is still under way here (a worker that retried after its
connection broke, or the next job of a batch whose worker was lost) waits for that call to end and
gets its stored answer (:class:`InFlight`). Another replica cannot see that call: there the line may
go upstream twice, and the call whose answer was not stored is recorded at no cost (status
``repeated``): a line is charged once.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from dizuo.accounts import KeyInfo
from dizuo.errors import InvalidRequest
from dizuo.gateway.http import Headers

__all__ = ["Answered", "InFlight", "LineBook", "line_of"]


class LineBook(Protocol):
    def answered(self, batch_id: str, line: int) -> tuple[int, bytes] | None: ...

    async def keep(self, batch_id: str, line: int, status: int, body: bytes, request_id: str | None) -> bool:
        """Write the answer unless the line has one; whether this one was written."""
        ...


class Answered(Exception):
    """The line has its answer already: send it as it was stored."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def line_of(key: KeyInfo, headers: Headers) -> tuple[str, int] | None:
    """The batch and line a call answers: None for a key that is not a batch worker's; 400 when a
    worker's call names no line."""
    if key.batch_id is None:
        return None
    raw = headers.batch_line
    if not raw.isdigit():
        raise InvalidRequest(
            "invalid_param",
            param="x-dizuo-batch-line",
            reason_zh="批处理的调用须在 X-Dizuo-Batch-Line 中写明行号",
            reason_en="a batch's call names its line in X-Dizuo-Batch-Line",
        )
    return key.batch_id, int(raw)


class InFlight:
    """The batch lines this server is answering now. A second call for one of them waits until the
    first ends (then looks for its stored answer) rather than sending the line upstream again."""

    def __init__(self) -> None:
        self._lines: dict[tuple[str, int], asyncio.Event] = {}

    async def take(self, line: tuple[str, int]) -> bool:
        """Wait while *line* is under way here, then mark it under way for this call (until :meth:`end`).
        Whether it waited: another call of the line was under way, so the line may have an answer now
        whatever its worker believes."""
        waited = False
        while (event := self._lines.get(line)) is not None:
            waited = True
            await event.wait()
        self._lines[line] = asyncio.Event()
        return waited

    def end(self, line: tuple[str, int]) -> None:
        event = self._lines.pop(line, None)
        if event is not None:
            event.set()

    def __len__(self) -> int:
        return len(self._lines)
