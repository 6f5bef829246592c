"""Auth, deployment lookup, malformed input and Azure-style throttling."""

from __future__ import annotations

import httpx
import openai
import pytest

from simulator.harness import SimulatorProcess

USER = [{"role": "user", "content": "hi"}]


def test_models_list(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["gpt-4o-mini", "gpt-4.1-mini", "text-embedding-3-small", "text-embedding-3-large"]
    model = client.models.retrieve("gpt-4o-mini")
    assert model.object == "model" and model.owned_by == "system"


def test_missing_or_wrong_key_is_401(sim: SimulatorProcess) -> None:
    url = f"{sim.api_url}/chat/completions"
    body = {"model": "gpt-4o-mini", "messages": USER}
    response = httpx.post(url, json=body)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "401"
    assert response.headers["x-request-id"]
    assert httpx.post(url, json=body, headers={"authorization": "Basic abc"}).status_code == 401

    sim.configure(api_key="s3cret")
    assert httpx.post(url, json=body, headers={"api-key": "wrong"}).status_code == 401
    assert httpx.post(url, json=body, headers={"api-key": "s3cret"}).status_code == 200
    assert httpx.post(url, json=body, headers={"authorization": "Bearer s3cret"}).status_code == 200
    kinds = [r["auth"] for r in sim.stats()["recent"]]
    assert kinds == [None, None, "api-key", "api-key", "bearer"]


def test_sdk_sees_authentication_error(sim: SimulatorProcess) -> None:
    sim.configure(api_key="right")
    bad = openai.OpenAI(base_url=sim.api_url, api_key="wrong", max_retries=0)
    with bad, pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="gpt-4o-mini", messages=USER)


def test_unknown_deployment_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-deployment", messages=USER)
    assert caught.value.code == "DeploymentNotFound"
    assert "does not exist" in caught.value.message


def test_malformed_json_is_400(sim: SimulatorProcess) -> None:
    response = httpx.post(
        f"{sim.api_url}/chat/completions",
        content=b"{not json",
        headers={"api-key": "k", "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    missing = httpx.post(f"{sim.api_url}/chat/completions", json={"messages": USER}, headers={"api-key": "k"})
    assert missing.status_code == 400


def test_unknown_route_is_json_404(sim: SimulatorProcess) -> None:
    response = httpx.get(f"{sim.base_url}/openai/v1/nothing-here")
    assert response.status_code == 404 and response.json()["error"]["code"] == "404"


def test_token_limit_returns_429_with_retry_hints(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    sim.configure(tpm=100)
    # Each call costs prompt 1 + 20 default output tokens = 21; four fit in 100, the fifth does not.
    for _ in range(4):
        client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    error = caught.value
    headers = error.response.headers
    retry_ms = int(headers["retry-after-ms"])
    assert 55_000 < retry_ms <= 60_000
    assert headers["retry-after"] == str(-(-retry_ms // 1000))
    assert headers["x-ratelimit-remaining-tokens"] == "16"
    assert error.code == "429"
    assert "ChatCompletions_Create" in error.message and "token rate limit" in error.message
    # max_tokens counts against the budget on arrival.
    client.chat.completions.create(model="gpt-4o-mini", messages=USER, max_tokens=15)
    assert sim.stats()["statuses"] == {"200": 5, "429": 1}


def test_request_limit_uses_short_windows(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    sim.configure(rpm=12)  # 2 requests per 10 s window
    client.embeddings.create(model="text-embedding-3-small", input="a")
    client.embeddings.create(model="text-embedding-3-small", input="b")
    with pytest.raises(openai.RateLimitError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input="c")
    assert "Embeddings_Create" in caught.value.message and "call rate limit" in caught.value.message
    assert 0 < int(caught.value.response.headers["retry-after-ms"]) <= 10_000


def test_sdk_retries_honour_retry_after_ms(sim: SimulatorProcess) -> None:
    sim.add_faults({"kind": "status", "status": 429, "retry_after_ms": 50, "count": 2})
    with openai.OpenAI(base_url=sim.api_url, api_key="k", max_retries=2) as retrying:
        reply = retrying.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert reply.choices[0].message.content
    records = sim.stats()["recent"]
    assert [r["status"] for r in records] == [429, 429, 200]
    assert all(r["headers"].get("x-stainless-retry-count") == str(i) for i, r in enumerate(records))


def test_health_and_control_need_no_auth(sim: SimulatorProcess) -> None:
    assert httpx.get(f"{sim.base_url}/health").json() == {"status": "ok"}
    bad = httpx.post(f"{sim.base_url}/_sim/config", json={"nope": 1})
    assert bad.status_code == 400 and "nope" in bad.json()["error"]["message"]
    assert httpx.post(f"{sim.base_url}/_sim/config", json={"port": 1}).status_code == 400
    assert httpx.get(f"{sim.base_url}/_sim/config").json()["models"][0] == "gpt-4o-mini"
    patched = sim.configure(models="only-this")
    assert patched["models"] == ["only-this"]


def test_cli_flags_and_environment() -> None:
    env = {"SIM_API_KEY": "from-env", "SIM_MODELS": "alpha,beta"}
    with SimulatorProcess.start("--tpm", "5000", env=env) as proc:
        config = proc.http.get("/_sim/config").json()
        assert config["api_key"] == "from-env" and config["models"] == ["alpha", "beta"] and config["tpm"] == 5000
        with openai.OpenAI(base_url=proc.api_url, api_key="from-env", max_retries=0) as c:
            assert [m.id for m in c.models.list()] == ["alpha", "beta"]
