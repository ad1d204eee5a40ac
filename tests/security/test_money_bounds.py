"""A tenant cannot spend money it does not have by how it words a request."""

from __future__ import annotations

import time

import openai
import pytest

from tests.conftest import RunningGateway
from tests.support.servers import funded_org


def test_the_hold_covers_the_larger_of_max_tokens_and_max_completion_tokens(gateway: RunningGateway) -> None:
    # pricey-model: ¥0 per million prompt tokens, ¥1,000 per million output tokens (¥0.001 a token).
    db, _, key = funded_org(gateway.settings.resolved_database_url, "精打细算", yuan="0.01")
    db.dispose()
    time.sleep(3 * gateway.settings.key_refresh_seconds)
    messages = [{"role": "user", "content": "写一首很长的诗"}]
    with openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0) as sdk:
        # 8,192 output tokens may come back (¥8.192 at most); ¥0.01 cannot hold that.
        with pytest.raises(openai.APIStatusError) as refused:
            sdk.chat.completions.create(
                model="pricey-model", messages=messages, max_completion_tokens=1, max_tokens=8192
            )
        assert refused.value.status_code == 402 and refused.value.code == "insufficient_quota"
        with pytest.raises(openai.APIStatusError) as reversed_order:
            sdk.chat.completions.create(
                model="pricey-model", messages=messages, max_completion_tokens=8192, max_tokens=1
            )
        assert reversed_order.value.status_code == 402
        # Five tokens (¥0.005) fit: the call is served.
        answer = sdk.chat.completions.create(
            model="pricey-model", messages=messages, max_completion_tokens=5, max_tokens=5
        )
        assert answer.choices[0].message.content is not None
