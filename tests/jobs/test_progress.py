"""Issue #14: progress is monotonic, and outages cost a job time, not its life.

Against real Azurite and the real simulator, handlers called in this process (``pipeline``). The
throttle that pauses a chunk part-way is injected at the pacer (the only way to hit "after two
pieces" deterministically without waiting out real one-minute windows); the outages are the
simulator's own 500s.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.jobs import patience, progress
from shared.jobs.pacer import Pacer, Throttled
from shared.lazy import forget_process_state
from tests.jobs.harness import Pipeline, check_results

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="session")]


def texts(n: int) -> list[str]:
    return [f"progress text number {i} about quotas" for i in range(n)]


def pause_on_call(monkeypatch: pytest.MonkeyPatch, calls_before_pause: int, *, limit: int,
                  stop: Exception | None = None) -> list[int]:
    """A deployment limit of ``limit`` tokens (chunks go out in pieces of half of it), and a throttle
    (0.2 s) on the request after ``calls_before_pause`` others, once: a quota that holds two pieces.
    ``stop`` replaces the throttle with another failure (an outage)."""
    acquired: list[int] = []
    real_acquire = Pacer.acquire

    async def acquire(self: Pacer, cost: int, max_wait: float) -> Any:
        acquired.append(cost)
        if len(acquired) == calls_before_pause + 1:
            raise stop if stop is not None else Throttled(0.2)
        return await real_acquire(self, cost, max_wait)

    monkeypatch.setattr(Pacer, "acquire", acquire)
    monkeypatch.setattr(Pacer, "max_request_tokens", lambda self: limit)
    return acquired


def embedding_calls(pipeline: Pipeline) -> list[dict[str, Any]]:
    response = pipeline.simulator.http.get("/_sim/stats", params={"limit": 1000})
    return [r for r in response.json()["recent"] if r["route"] == "embeddings"]


async def test_vectors_received_before_a_throttle_are_kept(pipeline: Pipeline,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = texts(30)
    per_text = 9  # shared.tokens.estimate of one of these texts, give or take one
    pause_on_call(monkeypatch, 2, limit=20 * per_text)  # three pieces of 10 inputs
    job = await pipeline.submit({"model": "embed", "input": inputs, "dimensions": 8})
    await pipeline.step()  # plan
    await pipeline.step()  # chunk: two pieces embedded, then paused
    kept = await progress.load(pipeline.runtime, job["id"], 0)
    assert 0 < len(kept.vectors) < len(inputs) and kept.tokens > 0
    done = await pipeline.run_until_done(job["id"], timeout=30)
    assert done["status"] == "succeeded" and done["counts"]["embedded"] == len(inputs)
    calls = embedding_calls(pipeline)  # (before check_results, which asks the simulator too)
    # Two pieces before the pause, then only what was left: nothing paid for was sent twice.
    assert len(calls) == 3, [c["body_size"] for c in calls]
    check_results(await pipeline.results(job["id"]), inputs, dims=8)


async def test_vectors_received_before_an_outage_are_kept(pipeline: Pipeline,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.errors import GatewayError

    monkeypatch.setattr(patience, "FIRST_BACKOFF_SECONDS", 0.1)
    inputs = texts(30)
    pause_on_call(monkeypatch, 2, limit=180, stop=GatewayError(502, "upstream down", code="upstream_unreachable"))
    job = await pipeline.submit({"model": "embed", "input": inputs, "dimensions": 8})
    done = await pipeline.run_until_done(job["id"], timeout=30)
    assert done["status"] == "succeeded" and done["counts"]["embedded"] == len(inputs)
    assert len(embedding_calls(pipeline)) == 3  # the third piece only, after the outage
    check_results(await pipeline.results(job["id"]), inputs, dims=8)


async def test_an_outage_longer_than_the_hosts_retries_costs_time_not_the_job(
        pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue #14 finding 3: 5 deliveries x 10 s of 500s failed a job for good. Here the host would
    # poison after 2 deliveries; the outage lasts 4 deliveries' worth of 500s (3 tries each).
    monkeypatch.setattr(patience, "FIRST_BACKOFF_SECONDS", 0.1)
    pipeline.max_dequeue = 2
    inputs = texts(5)
    job = await pipeline.submit({"model": "embed", "input": inputs, "dimensions": 8})
    pipeline.simulator.fault({"kind": "status", "status": 500, "path": "embeddings", "count": 12})
    done = await pipeline.run_until_done(job["id"], timeout=60)
    assert done["status"] == "succeeded", done
    assert pipeline.poisoned == []
    check_results(await pipeline.results(job["id"]), inputs, dims=8)


async def test_when_the_time_budget_is_spent_the_job_fails_with_its_finished_lines(
        pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDING_JOBS_TIME_BUDGET_HOURS", str(4 / 3600))  # 4 s
    forget_process_state()  # settings are read again
    monkeypatch.setattr(patience, "FIRST_BACKOFF_SECONDS", 0.5)
    inputs = texts(30)
    pause_on_call(monkeypatch, 2, limit=180)
    job = await pipeline.submit({"model": "embed", "input": inputs, "dimensions": 8})
    await pipeline.step()  # plan
    await pipeline.step()  # two pieces embedded, paused
    pipeline.simulator.fault({"kind": "status", "status": 500, "path": "embeddings", "count": 0})
    done = await pipeline.run_until_done(job["id"], timeout=60)
    assert done["status"] == "failed" and done["error"]["code"] == "time_budget_exhausted", done
    assert pipeline.poisoned == []
    lines = await pipeline.results(job["id"])
    embedded = [line["index"] for line in lines if "embedding" in line]
    assert 0 < len(embedded) < len(inputs)
    assert done["counts"] == {"total": len(inputs), "embedded": len(embedded), "failed": len(inputs) - len(embedded)}
    failed = {line["index"]: "time_budget_exhausted" for line in lines if "error" in line}
    pipeline.simulator.reset()  # the outage ends (check_results asks the simulator for the expected vectors)
    check_results(lines, inputs, dims=8, failed=failed)


async def test_a_chunk_larger_than_the_deployments_minute_makes_progress_at_once(
        pipeline: Pipeline) -> None:
    # Issue #14 finding 1: the first request of a chunk over the TPM limit got a 429 asking for a
    # whole minute (it can never fit), and waiting it out only led to the same refusal. Now a
    # deployment not heard from yet gets a small first piece, whose answer states the limit, and the
    # rest goes in pieces the minute can take: progress from the first delivery, no 429.
    pipeline.simulator.configure(tpm=30000)
    forget_process_state()
    inputs = [text + " and rate limits" * 3 for text in texts(2000)]  # ~40k tokens in one chunk
    job = await pipeline.submit({"model": "embed", "input": inputs, "dimensions": 8})
    await pipeline.step()  # plan
    await pipeline.step()  # the chunk
    statuses = [call["status"] for call in embedding_calls(pipeline)]
    assert statuses and 429 not in statuses, statuses
    kept = await progress.load(pipeline.runtime, job["id"], 0)
    assert len(kept.vectors) >= 300, len(kept.vectors)
