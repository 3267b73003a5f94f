"""Embeddings and the model list."""

from __future__ import annotations

import math
from collections.abc import Callable

import anthropic
import httpx
import openai
import pytest
from sim_harness import RunningSimulator

pytestmark = pytest.mark.timeout(30)


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_are_deterministic_unit_vectors(client: openai.OpenAI) -> None:
    first = client.embeddings.create(model="text-embedding-3-small", input="the cat sat on the mat")
    second = client.embeddings.create(
        model="text-embedding-3-small", input="the cat sat on the mat"
    )
    vector = first.data[0].embedding
    assert len(vector) == 256
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, abs_tol=1e-5)
    assert vector == second.data[0].embedding
    assert first.usage.prompt_tokens == first.usage.total_tokens > 0


def test_embeddings_dimensions_list_input_and_float_format(client: openai.OpenAI) -> None:
    result = client.embeddings.create(
        model="text-embedding-3-small",
        input=["the cat sat on the mat", "the cat sat on a mat", "quarterly revenue report"],
        dimensions=64,
        encoding_format="float",
    )
    vectors = [item.embedding for item in result.data]
    assert [item.index for item in result.data] == [0, 1, 2]
    assert all(len(v) == 64 for v in vectors)
    # Shared words point the same way: useful for semantic-cache demos.
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2]) + 0.3
    assert vectors[0] != vectors[1]


def test_embeddings_reject_empty_input(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="text-embedding-3-small", input=[])


def test_models_list_builtin(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert "gpt-4o-mini" in ids and "claude-sonnet-4-5" in ids
    assert client.models.retrieve("anything-at-all").id == "anything-at-all"


def test_models_list_from_scenario_in_both_shapes(
    scenario_sim: Callable[[str], RunningSimulator],
) -> None:
    running: RunningSimulator = scenario_sim(
        "models:\n  house-model: {owned_by: acme}\n  claude-house: {}\n  'gpt-*': {reply_tokens: 5}\n"
    )
    with running.openai() as client:
        listed = {model.id: model.owned_by for model in client.models.list()}
    assert listed == {"house-model": "acme", "claude-house": "simulator"}
    with running.anthropic() as claude:
        assert [model.id for model in claude.models.list()] == ["house-model", "claude-house"]
    # Any model name is accepted, listed or not.
    response = httpx.post(
        f"{running.openai_url}/chat/completions",
        json={"model": "unlisted", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200


def test_anthropic_models_shape(claude: anthropic.Anthropic) -> None:
    page = claude.models.list()
    assert page.data and page.data[0].type == "model"
