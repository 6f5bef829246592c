"""Queue triggers against Azurite, through a real ``python -m devhost`` process.

The sample app's host.json sets batchSize 4, newBatchThreshold 1,
maxDequeueCount 3, visibilityTimeout 1 s and maxPollingInterval 1 s; the
stack sets a 2 s message lease so renewals happen within a test.
"""

from __future__ import annotations

import base64
import itertools
import uuid

import pytest

from devhost.stack import Stack
from tests.devhost.helpers import ensure_queue, message_count, peak_concurrency, queue, records, wait_for

pytestmark = pytest.mark.timeout(60)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_message_is_delivered_decoded_and_deleted(stack: Stack) -> None:
    producer = ensure_queue(queue(stack, "ok-jobs"))
    body = _unique("hello queue ✓")
    sent = producer.send_message(body)

    seen = wait_for(lambda: [r for r in records(stack, "ok-jobs") if r["body"] == body])
    assert seen[0]["id"] == sent.id
    assert seen[0]["dequeue_count"] == 1
    wait_for(lambda: message_count(producer) == 0, timeout=5)


def test_failing_message_is_retried_then_poisoned(stack: Stack) -> None:
    producer = ensure_queue(queue(stack, "fail-jobs"))
    poison = queue(stack, "fail-jobs-poison", base64=False)
    body = _unique("doomed")
    producer.send_message(body)

    def poisoned() -> list[str]:
        found = [m.content for m in poison.peek_messages(max_messages=32)]
        return [c for c in found if base64.b64decode(c).decode() == body]

    assert len(wait_for(poisoned, timeout=20)) == 1
    attempts = [r for r in records(stack, "fail-jobs") if r["body"] == body]
    assert [a["dequeue_count"] for a in attempts] == [1, 2, 3]  # maxDequeueCount is 3
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(attempts)]
    assert all(gap >= 0.9 for gap in gaps), gaps  # visibilityTimeout (1 s) between attempts
    assert message_count(producer) == 0


def test_invalid_base64_ends_in_poison_without_invoking(stack: Stack) -> None:
    raw = ensure_queue(queue(stack, "ok-jobs", base64=False))
    poison = queue(stack, "ok-jobs-poison", base64=False)
    body = _unique("not base64 ~~")
    raw.send_message(body)

    wait_for(lambda: body in [m.content for m in poison.peek_messages(max_messages=32)], timeout=20)
    assert not [r for r in records(stack, "ok-jobs") if body in r["body"]]


def test_batch_size_bounds_concurrency(stack: Stack) -> None:
    producer = ensure_queue(queue(stack, "slow-jobs"))
    before = len(records(stack, "slow-jobs"))
    for i in range(12):
        producer.send_message(f"slow {i}")

    wait_for(lambda: len(records(stack, "slow-jobs")) >= before + 12, timeout=20)
    # batchSize 4 runs together; the next batch is fetched when at most 1 is left in flight.
    assert 4 <= peak_concurrency(stack) <= 5
    wait_for(lambda: message_count(producer) == 0, timeout=5)


def test_lease_is_renewed_during_long_invocations(stack: Stack) -> None:
    producer = ensure_queue(queue(stack, "long-jobs"))
    sent = producer.send_message(_unique("long"))

    wait_for(lambda: [r for r in records(stack, "long-jobs") if r["id"] == sent.id and r["event"] == "done"])
    ours = [r for r in records(stack, "long-jobs") if r["id"] == sent.id]
    # 2.5 s of work on a 2 s lease: without renewal a second copy would have started.
    assert [(r["event"], r["dequeue_count"]) for r in ours] == [("start", 1), ("done", 1)]
    wait_for(lambda: message_count(producer) == 0, timeout=5)


def test_sync_function_with_str_argument_runs_in_thread_pool(stack: Stack) -> None:
    producer = ensure_queue(queue(stack, "sync-jobs"))
    body = _unique("plain text")
    producer.send_message(body)

    seen = wait_for(lambda: [r for r in records(stack, "sync-jobs") if r["body"] == body])
    assert seen[0]["thread"].startswith("devhost-fn")
