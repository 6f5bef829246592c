"""Killing, stopping and restarting parts of the stack while work is in flight."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devhost.stack import Stack
from tests.devhost.helpers import ensure_queue, make_stack, message_count, queue, records, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack these tests may kill and restart; each test leaves it running."""
    running = make_stack(tmp_path_factory.mktemp("lifecycle"), env={"DEVHOST_SHUTDOWN_GRACE_SECONDS": "0.5"})
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _started(stack: Stack, message_id: str) -> bool:
    return any(r["id"] == message_id and r["event"] == "start" for r in records(stack, "long-jobs"))


def test_message_of_a_killed_host_is_redelivered_after_the_lease(own_stack: Stack) -> None:
    producer = ensure_queue(queue(own_stack, "long-jobs"))
    sent = producer.send_message(f"crash-{uuid.uuid4().hex[:6]}")
    wait_for(lambda: _started(own_stack, sent.id))

    own_stack.kill_host()  # SIGKILL mid-invocation: nothing gets a chance to clean up
    own_stack.restart_host()

    done = wait_for(
        lambda: [r for r in records(own_stack, "long-jobs") if r["id"] == sent.id and r["event"] == "done"],
        timeout=20,
    )
    assert done[0]["dequeue_count"] == 2
    wait_for(lambda: message_count(producer) == 0, timeout=5)


def test_graceful_stop_makes_in_flight_messages_visible_again(own_stack: Stack) -> None:
    producer = ensure_queue(queue(own_stack, "long-jobs"))
    sent = producer.send_message(f"abandon-{uuid.uuid4().hex[:6]}")
    wait_for(lambda: _started(own_stack, sent.id))

    own_stack.stop_host()  # grace (0.5 s) is shorter than the 2.5 s invocation
    # Visible right away (peek only returns visible messages), not after the 2 s lease.
    visible = [m for m in producer.peek_messages(max_messages=32) if m.id == sent.id]
    assert len(visible) == 1
    assert visible[0].dequeue_count == 1

    own_stack.restart_host()  # leave the stack running; the next host finishes the message


def test_listener_recovers_after_azurite_restart(own_stack: Stack) -> None:
    own_stack.restart_azurite()
    producer = ensure_queue(queue(own_stack, "ok-jobs"))
    body = f"after-restart-{uuid.uuid4().hex[:6]}"
    producer.send_message(body)
    wait_for(lambda: [r for r in records(own_stack, "ok-jobs") if r["body"] == body], timeout=20)

