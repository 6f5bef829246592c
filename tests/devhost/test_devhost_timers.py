"""Timer triggers through a real ``python -m devhost`` process: NCRONTAB schedules, runOnStartup,
on-demand runs through Core Tools' admin API, and the status the tests wait on."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from devhost.ncrontab import ScheduleError, next_occurrence, parse_schedule
from devhost.stack import Stack
from tests.devhost.helpers import records, wait_for

pytestmark = pytest.mark.timeout(60)


def _timers(stack: Stack) -> dict[str, Any]:
    return dict(httpx.get(f"{stack.host_url}/admin/host/status", timeout=10).json()["timers"])


def _runs(stack: Stack, name: str) -> list[dict[str, Any]]:
    return [r for r in records(stack, "timers") if r["name"] == name]


def test_schedule_runs_on_its_ncrontab_seconds(stack: Stack) -> None:
    first = wait_for(lambda: len(_runs(stack, "every_two_seconds")) >= 3, timeout=15)
    assert first
    runs = _runs(stack, "every_two_seconds")
    # Runs start on even seconds (the schedule's */2), two seconds apart; margins for a loaded machine.
    starts = [r["at"] for r in runs[:3]]
    assert any(at % 2 < 0.5 for at in starts), starts
    assert all(1.0 < later - earlier < 3.0 for earlier, later in itertools.pairwise(starts)), starts
    assert not all(r["past_due"] for r in runs)
    status = _timers(stack)["every_two_seconds"]
    assert status["schedule"] == "*/2 * * * * *" and status["next"] is not None


def test_run_on_startup_runs_once_and_other_timers_wait_for_their_schedule(stack: Stack) -> None:
    wait_for(lambda: _runs(stack, "at_startup"), timeout=10)
    assert len(_runs(stack, "at_startup")) == 1
    # once_a_year (runOnStartup false) has not run unless a test asked for it.
    timers = _timers(stack)
    assert timers["once_a_year"]["runs"] == len(_runs(stack, "once_a_year"))


def test_admin_api_runs_a_timer_now_with_its_context(stack: Stack) -> None:
    before = len(_runs(stack, "once_a_year"))
    response = httpx.post(f"{stack.host_url}/admin/functions/once_a_year", json={"input": ""}, timeout=10)
    assert response.status_code == 202
    runs = wait_for(lambda: _runs(stack, "once_a_year")[before:], timeout=10)
    assert runs[0]["function"] == "once_a_year"
    assert runs[0]["thread"].startswith("devhost-fn")  # a sync function runs in the worker's thread pool
    assert runs[0]["past_due"] is False

    def finished() -> bool:
        timer = _timers(stack)["once_a_year"]
        return bool(timer["runs"] == before + 1 and not timer["running"])

    wait_for(finished)
    # The schedule came from a %SETTING% expression, resolved as the host resolves it.
    assert _timers(stack)["once_a_year"]["schedule"] == "0 0 0 1 1 *"


def test_a_failing_timer_is_counted_and_the_host_goes_on(stack: Stack) -> None:
    assert httpx.post(f"{stack.host_url}/admin/functions/failing_timer", timeout=10).status_code == 202
    wait_for(lambda: _timers(stack)["failing_timer"]["failures"] >= 1)
    assert httpx.post(f"{stack.host_url}/admin/functions/failing_timer", timeout=10).status_code == 202
    wait_for(lambda: _timers(stack)["failing_timer"]["failures"] >= 2)


def test_unknown_and_non_timer_functions_are_not_run_by_the_admin_api(stack: Stack) -> None:
    assert httpx.post(f"{stack.host_url}/admin/functions/no_such_function", timeout=10).status_code == 404
    assert httpx.post(f"{stack.host_url}/admin/functions/ok_worker", timeout=10).status_code == 404


def test_a_five_field_schedule_is_skipped_and_reported(stack: Stack) -> None:
    functions = {f["name"]: f for f in httpx.get(f"{stack.host_url}/admin/functions", timeout=10).json()}
    assert functions["once_a_year"] == {"name": "once_a_year", "trigger": "timerTrigger",
                                        "schedule": "0 0 0 1 1 *", "runOnStartup": False}
    assert "five_field_cron" not in functions and "five_field_cron" not in _timers(stack)
    assert stack.host_log is not None
    assert "five_field_cron: schedule '0 */5 * * *' is not NCRONTAB" in stack.host_log.read_text()


def test_ncrontab_fields_are_seconds_first_in_utc() -> None:
    start = datetime(2026, 3, 7, 10, 59, 58, tzinfo=UTC)  # a Saturday
    assert next_occurrence("0 23 * * * *", start) == datetime(2026, 3, 7, 11, 23, 0, tzinfo=UTC)
    assert next_occurrence("30 0 9 * * Mon-Fri", start) == datetime(2026, 3, 9, 9, 0, 30, tzinfo=UTC)
    assert next_occurrence("*/2 * * * * *", start) == datetime(2026, 3, 7, 11, 0, 0, tzinfo=UTC)
    assert parse_schedule(" 0  23 * * * * ") == "0 23 * * * *"
    for bad in ("0 */5 * * *", "00:05:00", "61 * * * * *", ""):
        with pytest.raises(ScheduleError):
            parse_schedule(bad)
