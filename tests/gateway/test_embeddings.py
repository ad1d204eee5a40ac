"""Embeddings: the embedded multilingual encoder (on a server this module starts, which loads it
once), and upstream passthrough (on a platform each test describes)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import openai
import pytest

from dizuo.routing import LOCAL_EMBEDDING
from tests.support.platform import GatewayApp, RunningGateway, Serve, upstream_deployment
from tests.support.upstream import FakeUpstream


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """The embedded local models, loaded once for this module's local-embedding tests."""
    with serve([], local=True) as running:
        yield running


def test_local_embeddings_base64_default(client: openai.OpenAI) -> None:
    # The SDK asks for base64 by default and decodes it.
    result = client.embeddings.create(model=LOCAL_EMBEDDING, input=["今天天气很好", "hello"])
    assert [item.index for item in result.data] == [0, 1]
    assert all(len(item.embedding) == 512 for item in result.data)
    assert result.usage.prompt_tokens > 0


def test_local_embeddings_rank_chinese_by_meaning(client: openai.OpenAI) -> None:
    texts = ["今天是晴天，阳光很好", "柱塞偶件的密封性检验方法", "今天天气怎么样？"]
    vectors = np.array(
        [
            d.embedding
            for d in client.embeddings.create(
                model=LOCAL_EMBEDDING, input=texts, encoding_format="float"
            ).data
        ]
    )
    norms = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    query = norms[2]
    assert query @ norms[0] > query @ norms[1]


def test_local_embeddings_refuse_token_arrays_and_other_dimensions(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=LOCAL_EMBEDDING, input=[[1, 2, 3]])
    assert caught.value.body["param"] == "input[0]"  # type: ignore[index]
    assert "check_embedding_ctx_length=False" in caught.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=LOCAL_EMBEDDING, input="x", dimensions=256)
    assert caught.value.body["param"] == "dimensions"  # type: ignore[index]


async def test_upstream_embeddings_pass_through(gateway_app: GatewayApp, upstream: FakeUpstream) -> None:
    platform = await gateway_app([upstream_deployment("remote-embed", "embed", mode="embedding")])
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        result = await client.embeddings.create(
            model="remote-embed", input=["a", "b"], encoding_format="float"
        )
        assert result.data[1].embedding == [0.2, 0.2, 0.3]
        assert upstream.last("embed").body["input"] == ["a", "b"]
        # Token arrays (what LangChain's OpenAIEmbeddings sends by default) reach an upstream as sent.
        tokens = await client.embeddings.create(
            model="remote-embed", input=[[1, 2, 3], [4, 5]], encoding_format="float"
        )
    assert len(tokens.data) == 2 and upstream.last("embed").body["input"] == [[1, 2, 3], [4, 5]]
    assert len(platform.records(org)) == 2  # each call metered


async def test_chat_model_on_the_embeddings_endpoint(gateway_app: GatewayApp) -> None:
    platform = await gateway_app([upstream_deployment("echo-model")])
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.embeddings.create(model="echo-model", input="x")
    assert caught.value.body["code"] == "wrong_model_mode"  # type: ignore[index]
