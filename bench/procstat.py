"""CPU time of other processes, read from ``/proc`` (no psutil needed).

The benchmark charges each request's CPU to the process that spent it: the load generator reads
its own ``getrusage`` and, at the same instants, the servers' ``/proc/<pid>/stat``. Servers are
read as whole process groups so that a server that forks workers (LiteLLM can) is counted fully.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after its closing one.
    return raw.rsplit(")", 1)[1].split()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads); 0 when it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the name: state(0) ppid(1) pgrp(2) ... utime(11) stime(12)
    return (int(fields[11]) + int(fields[12])) / _TICKS


def group_members(pgid: int) -> list[int]:
    """Pids whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and len(fields) > 2 and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid``, plus the rest of its process group when it leads one."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    if int(fields[2]) != pid:
        return process_cpu_seconds(pid)
    return sum(process_cpu_seconds(member) for member in group_members(pid))


def status_kib(pid: int, field: str) -> int | None:
    """A memory figure of ``/proc/<pid>/status`` in KiB: ``VmRSS`` (resident now) or ``VmHWM`` (its peak);
    None when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of ``pid`` (and of its group) to ``cpus``; threads started later inherit it."""
    pids = group_members(pid) if (_stat_fields(pid) or ["", "", "0"])[2] == str(pid) else [pid]
    for member in pids or [pid]:
        try:
            tasks = [int(t.name) for t in Path(f"/proc/{member}/task").iterdir()]
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(task, cpus)
