"""What naming the client's alias in answers costs: an answer's model put back from the upstream's
name (``deepseek-v3-250324``) to the alias the client sent (``deepseek-chat``).

A whole answer is already parsed once to find its usage; with another name it is written again
(orjson). A stream event has its bytes swapped (one scan). Baseline in the same run: the same
answer read without renaming, and an event passed on as it is.

    .venv/bin/python bench/alias.py [--calls 200000]
"""

from __future__ import annotations

import argparse
import timeit

import orjson

from dizuo.providers.openai_compat import _answer, _Renamed

ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 1,
        "model": "deepseek-v3-250324",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "柱塞表面硬度应为 HRC 60～64。" * 8},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200},
    }
)
EVENT = orjson.dumps(
    {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "deepseek-v3-250324",
        "choices": [{"index": 0, "delta": {"content": "硬度"}, "finish_reason": None}],
    }
)


def best(function: object, calls: int) -> float:
    """Microseconds per call, the best of five runs."""
    return min(timeit.repeat(function, number=calls, repeat=5)) / calls * 1e6  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200_000)
    calls = parser.parse_args().calls
    renamed = _Renamed.of("deepseek-chat", "deepseek-v3-250324")
    assert renamed is not None
    # The targets answer what they must, or nothing is timed.
    assert orjson.loads(_answer("d", ANSWER, "choices", renamed).data)["model"] == "deepseek-chat"
    assert orjson.loads(renamed.swap(EVENT))["model"] == "deepseek-chat"
    assert orjson.loads(_answer("d", ANSWER, "choices").data)["model"] == "deepseek-v3-250324"
    plain = best(lambda: _answer("d", ANSWER, "choices"), calls)
    named = best(lambda: _answer("d", ANSWER, "choices", renamed), calls)
    passed = best(lambda: EVENT, calls)
    swapped = best(lambda: renamed.swap(EVENT), calls)
    print(
        f"whole answer ({len(ANSWER)} B): {plain:.2f} µs read, {named:.2f} µs read and renamed "
        f"(+{named - plain:.2f} µs, {named / plain:.2f}×)"
    )
    print(f"stream event ({len(EVENT)} B): +{swapped - passed:.2f} µs to swap the name")


if __name__ == "__main__":
    main()
