"""Reading an uploaded body no further than a limit: what every upload route shares."""

from fastapi import Request

from dizuo.kb.formats import DocumentTooLarge

__all__ = ["read_limited"]


async def read_limited(request: Request, limit: int, name: str) -> bytes:
    """Return the body of *request*; refuse it with 413 ``document_too_large`` (naming *name*) as
    soon as it passes *limit* bytes, or before reading when its Content-Length says it will."""

    def check(size: int) -> None:
        if size > limit:
            raise DocumentTooLarge.size(name, size, limit)

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        check(int(declared))
    data = bytearray()
    async for part in request.stream():
        data += part
        check(len(data))
    return bytes(data)
