"""Reading an upstream's usage object: what counts as usage the meter may charge by."""

from __future__ import annotations

from typing import Any

import pytest

from dizuo.providers import Usage


@pytest.mark.parametrize(
    ("reported", "read"),
    [
        ({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}, Usage(7, 3, 10)),
        ({"prompt_tokens": 7, "completion_tokens": 3}, Usage(7, 3, 10)),  # total left out
        ({"prompt_tokens": 7}, Usage(7, 0, 7)),  # an embedding's
        ({"prompt_tokens": 7.0, "completion_tokens": "3", "total_tokens": None}, Usage(7, 3, 10)),
        ({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": -1}, Usage(7, 3, 10)),
        ({"prompt_tokens": 2**31 - 1, "completion_tokens": 0}, Usage(2**31 - 1, 0, 2**31 - 1)),
    ],
)
def test_usage_as_reported(reported: dict[str, Any], read: Usage) -> None:
    assert Usage.from_mapping(reported) == read


@pytest.mark.parametrize(
    "reported",
    [
        None,
        [7, 3],
        {"prompt_tokens": -1, "completion_tokens": 3},
        {"prompt_tokens": 7, "completion_tokens": -3},
        {"prompt_tokens": 2**31, "completion_tokens": 3},
        {"prompt_tokens": 7.5, "completion_tokens": 3},
        {"prompt_tokens": "seven", "completion_tokens": 3},
        {"prompt_tokens": "1e400", "completion_tokens": 3},
        {"prompt_tokens": "nan", "completion_tokens": 3},
        {"prompt_tokens": True, "completion_tokens": 3},
        {"prompt_tokens": [7], "completion_tokens": 3},
    ],
)
def test_usage_no_upstream_can_have_meant_is_none(reported: Any) -> None:
    assert Usage.from_mapping(reported) is None
