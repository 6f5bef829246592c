"""Token estimates: the byte bound is a true bound, exact counting needs no network, and it is fast."""

from __future__ import annotations

import socket
import time

import pytest

from shared import tokens

SAMPLES = [
    "hello world",
    "The quick brown fox jumps over the lazy dog. " * 40,
    "数据嵌入和向量搜索是现代检索系统的核心。" * 30,
    "emoji 🚀🔥✨ mixed with text " * 50,
    "def f(x):\n    return {'a': [1, 2, 3]}\n" * 40,
    "1234567890" * 100,
    "   \t\n  " * 100,
    "aGVsbG8gd29ybGQ=" * 200,
]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_exact_encoding_loads_offline(no_network: None) -> None:
    tokens._encoder.cache_clear()
    assert tokens.exact_available()
    assert tokens.count("hello world") == 2


@pytest.mark.parametrize("text", SAMPLES)
def test_utf8_length_bounds_the_exact_count(text: str) -> None:
    assert tokens.count(text) <= tokens.utf8_len(text)
    assert tokens.measure(text) >= tokens.count(text)


def test_short_texts_are_not_tokenised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "count", lambda text: pytest.fail("counted a short text"))
    assert tokens.measure("a short input") == len("a short input")


def test_fallback_when_the_encoder_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_encoder", lambda: None)
    text = "x" * 3000
    assert tokens.count(text) == 1000
    assert tokens.measure("é" * 200) == 134  # 400 bytes / 3, rounded up


def test_pacing_estimate_matches_the_usual_four_chars_per_token() -> None:
    assert tokens.estimate("abcdefgh") == 2
    assert tokens.estimate("abcdefghi") == 3
    assert tokens.estimate("") == 0


def test_estimation_is_fast_enough_for_a_million_inputs() -> None:
    texts = [f"short input number {i} about queues" for i in range(100_000)]
    started = time.perf_counter()
    total = sum(tokens.measure(t) for t in texts)
    elapsed = time.perf_counter() - started
    assert total > 0
    assert elapsed < 1.0, f"{elapsed:.2f}s for 100k short inputs"
