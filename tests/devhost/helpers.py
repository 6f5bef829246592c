"""Helpers for the devhost tests: building sample stacks, producing and observing queue work.

Everything runs on ports the kernel hands out, because other suites may be
using 7071 or Azurite's default ports on the same machine at the same time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.ports import free_ports
from devhost.stack import Stack

SAMPLE_APP = Path(__file__).resolve().parent / "sample_app"
ROUTE_PREFIX = "svc"
LEASE_SECONDS = "2"


def make_stack(log_dir: Path, **kwargs: Any) -> Stack:
    """A Stack for the sample app: no simulator, Azurite on free ports."""
    host_port, *azurite_ports = free_ports(4)
    env = {"SAMPLE_OVERRIDE": "from env", "DEVHOST_QUEUE_LEASE_SECONDS": LEASE_SECONDS}
    env.update(kwargs.pop("env", {}))
    return Stack(
        SAMPLE_APP,
        host_port=host_port,
        simulator=False,
        azurite_ports=(azurite_ports[0], azurite_ports[1], azurite_ports[2]),
        log_dir=log_dir,
        env=env,
        startup_timeout=45,
        **kwargs,
    )


def queue(stack: Stack, name: str, *, base64: bool = True) -> QueueClient:
    """A producer for a queue of the stack's Azurite (base64 like the Functions SDKs)."""
    assert stack.storage_connection_string is not None
    return QueueClient.from_connection_string(
        stack.storage_connection_string,
        name,
        message_encode_policy=TextBase64EncodePolicy() if base64 else None,
    )


def ensure_queue(client: QueueClient) -> QueueClient:
    from azure.core.exceptions import ResourceExistsError

    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


def message_count(client: QueueClient) -> int:
    return int(client.get_queue_properties().approximate_message_count or 0)


def records(stack: Stack, queue_name: str) -> list[dict[str, Any]]:
    """What the sample app's queue functions recorded for one queue."""
    response = httpx.get(f"{stack.host_url}/{ROUTE_PREFIX}/records", timeout=10)
    response.raise_for_status()
    return list(response.json()["records"].get(queue_name, []))


def peak_concurrency(stack: Stack) -> int:
    response = httpx.get(f"{stack.host_url}/{ROUTE_PREFIX}/records", timeout=10)
    return int(response.json()["concurrency"]["peak"])


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1) -> Any:
    """Poll until ``condition()`` is truthy and return its value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)
