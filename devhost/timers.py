"""Run timer-triggered functions on their NCRONTAB schedules for the life of the host.

Like the Functions host: the schedule has six fields, ``{second} {minute} {hour} {day} {month}
{day-of-week}``, evaluated in UTC (``croniter`` computes the occurrences); ``%SETTING%`` expressions
are resolved at indexing (``devhost/ncrontab.py``); a function runs once at a time (a run asked for while one is going
starts after it); ``runOnStartup`` runs it once as the host starts. The argument is a
``func.TimerRequest`` with ``past_due`` set when a run starts more than a second after its
occurrence. What is not done: the schedule monitor's catch-up of occurrences missed while the host
was down (``useMonitor``), and TimeSpan schedules (``hh:mm:ss``; App Service plans only on Azure).

Runs on demand, as with Core Tools: ``POST /admin/functions/{name}`` (body ``{"input": ""}``)
answers 202 and starts a run; ``GET /admin/host/status`` shows each timer's ``runs``,
``failures``, ``running`` and ``next`` occurrence, which is how tests wait for a run to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.functions.timer import TimerRequest

from devhost.discovery import TimerFunction
from devhost.invocation import Invoker, log_executed, log_executing
from devhost.ncrontab import next_occurrence

logger = logging.getLogger("devhost.timers")

PAST_DUE_SECONDS = 1.0


@dataclass
class _TimerState:
    fn: TimerFunction
    schedule: str
    runs: int = 0
    failures: int = 0
    running: bool = False
    last: datetime | None = None
    next: datetime | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: list[asyncio.Task[None]] = field(default_factory=list)


class TimerHost:
    """One scheduling task per timer function; on-demand runs through :meth:`run_now`."""

    def __init__(self, functions: list[TimerFunction], invoker: Invoker) -> None:
        self.invoker = invoker
        self.timers = {fn.name: _TimerState(fn, fn.schedule) for fn in functions}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for state in self.timers.values():
            if state.fn.run_on_startup:
                self.run_now(state.fn.name, reason="Timer fired at startup (runOnStartup)")
            self._tasks.append(asyncio.create_task(self._schedule(state), name=f"timer:{state.fn.name}"))

    def run_now(self, name: str, reason: str = "This function was programmatically called via the host APIs.") -> bool:
        """Start a run of the named timer function now; False when there is no such timer."""
        state = self.timers.get(name)
        if state is None:
            return False
        task = asyncio.create_task(self._run(state, scheduled=datetime.now(UTC), reason=reason))
        state.pending.append(task)
        task.add_done_callback(state.pending.remove)
        return True

    async def _schedule(self, state: _TimerState) -> None:
        while True:
            now = datetime.now(UTC)
            # From the later of now and the occurrence just run: a wall clock a little behind the
            # sleep's monotonic clock must not fire the same occurrence twice.
            state.next = next_occurrence(state.schedule, max(now, state.next) if state.next else now)
            await asyncio.sleep(max(0.0, (state.next - datetime.now(UTC)).total_seconds()))
            await self._run(state, scheduled=state.next, reason=f"Timer fired at {state.next.isoformat()}")

    async def _run(self, state: _TimerState, *, scheduled: datetime, reason: str) -> None:
        fn = state.fn
        async with state.lock:  # one run at a time, as the host's singleton lock does
            state.running = True
            started_at = datetime.now(UTC)
            invocation_id = self.invoker.new_invocation_id()
            started = log_executing(fn.name, invocation_id, reason)
            request = TimerRequest(
                past_due=(started_at - scheduled).total_seconds() > PAST_DUE_SECONDS,
                schedule_status={"Last": state.last.isoformat() if state.last else None,
                                 "Next": next_occurrence(state.schedule, started_at).isoformat(),
                                 "LastUpdated": started_at.isoformat()},
                schedule={"AdjustForDST": True},
            )
            kwargs: dict[str, Any] = {fn.arg_name: request}
            if fn.context_arg:
                kwargs[fn.context_arg] = self.invoker.context(fn.name, invocation_id)
            try:
                await self.invoker.invoke(fn.user_function, kwargs)
            except Exception as exc:
                state.failures += 1
                log_executed(fn.name, invocation_id, started, exc)
            else:
                log_executed(fn.name, invocation_id, started)
            finally:
                state.runs += 1
                state.last = started_at
                state.running = False

    def status(self) -> dict[str, Any]:
        return {
            "timers": {
                name: {"schedule": state.schedule, "runs": state.runs, "failures": state.failures,
                       "running": state.running or bool(state.pending),
                       "last": state.last.isoformat() if state.last else None,
                       "next": state.next.isoformat() if state.next else None}
                for name, state in self.timers.items()
            }
        }

    async def stop(self) -> None:
        tasks = self._tasks + [t for state in self.timers.values() for t in state.pending]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
