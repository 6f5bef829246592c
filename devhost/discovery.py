"""Find the function app and describe its functions the way the host indexes them.

The Python worker imports ``function_app`` from the script root, takes the one
``FunctionApp`` instance it finds there and reads each function's trigger
metadata. Doing the same here means the local host sees exactly the functions,
routes and queues that Azure would, straight from the decorators.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
from azure.functions.decorators.function_app import FunctionRegister

from devhost.ncrontab import ScheduleError, parse_schedule

ALL_METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")


class DiscoveryError(RuntimeError):
    """The script root does not hold a usable function app."""


@dataclass(frozen=True)
class HttpFunction:
    """An HTTP-triggered function and how to call it."""

    name: str
    arg_name: str
    route: str
    methods: tuple[str, ...] | None
    auth_level: str
    user_function: Callable[..., Any]
    classic: bool = False
    context_arg: str | None = None


@dataclass(frozen=True)
class QueueFunction:
    """A queue-triggered function and how to call it."""

    name: str
    arg_name: str
    queue_name: str
    connection: str
    user_function: Callable[..., Any]
    arg_kind: str = "message"  # "message" | "str" | "bytes"
    context_arg: str | None = None


@dataclass(frozen=True)
class TimerFunction:
    """A timer-triggered function and its schedule (NCRONTAB, setting expressions resolved)."""

    name: str
    arg_name: str
    schedule: str
    run_on_startup: bool
    user_function: Callable[..., Any]
    context_arg: str | None = None


@dataclass
class FunctionIndex:
    """Everything the host will serve, plus what it had to leave out."""

    http: list[HttpFunction] = field(default_factory=list)
    queues: list[QueueFunction] = field(default_factory=list)
    timers: list[TimerFunction] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.http] + [f.name for f in self.queues] + [f.name for f in self.timers]



_SETTING_EXPRESSION = re.compile(r"%([^%]+)%")


def resolve_setting_expressions(value: str) -> str:
    """Binding expressions like ``%EMBEDDING_JOBS_QUEUE%`` name an app setting, as in the real host.

    A missing setting is an error there too (the function fails to index), so it is one here.
    """

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ValueError(f"binding expression %{name}% names an app setting that is not set")
        return os.environ[name]

    return _SETTING_EXPRESSION.sub(setting, value)

def import_function_app_module(script_root: Path, module_name: str = "function_app") -> ModuleType:
    """Import the app module from the script root, ahead of anything else on sys.path."""
    root = str(script_root.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    if not (script_root / f"{module_name}.py").is_file() and not (script_root / module_name).is_dir():
        raise DiscoveryError(f"no {module_name}.py in {script_root}")
    # The host's own storage SDK first: an app may start importing in a background thread as it
    # loads, and two threads entering the Azure SDK's circular imports at once can see a partially
    # initialised module. (In Azure the host is another process; here it shares the app's.)
    importlib.import_module("azure.storage.queue.aio")
    return importlib.import_module(module_name)


def find_function_app(module: ModuleType) -> FunctionRegister:
    """Return the single FunctionApp instance defined in the module."""
    apps = {id(v): v for v in vars(module).values() if isinstance(v, FunctionRegister)}
    if not apps:
        raise DiscoveryError(f"{module.__name__} defines no azure.functions.FunctionApp instance")
    if len(apps) > 1:
        raise DiscoveryError(f"{module.__name__} defines more than one FunctionApp instance")
    return next(iter(apps.values()))


def _enum_value(value: Any) -> str:
    return str(getattr(value, "value", value))


def _type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:
        # Unresolvable forward references should not hide the function; fall
        # back to raw annotations, which are good enough for identity checks.
        return dict(getattr(function, "__annotations__", {}))


def _is_subclass(annotation: Any, base: type) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, base)


def _context_arg(function: Callable[..., Any], hints: dict[str, Any]) -> str | None:
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return None
    for name in params:
        if name == "context" or _is_subclass(hints.get(name), func.Context):
            return name
    return None


def _unbound_params(function: Callable[..., Any], supplied: set[str]) -> list[str]:
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in params
        if p.name not in supplied
        and p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]


def _queue_arg_kind(annotation: Any) -> str:
    if annotation is str:
        return "str"
    if annotation is bytes:
        return "bytes"
    return "message"


def index_functions(app: FunctionRegister) -> FunctionIndex:
    """Describe every function of the app; unsupported triggers become warnings."""
    index = FunctionIndex()
    for fn in app.get_functions():
        name = str(fn.get_function_name())
        trigger_binding = fn.get_trigger()
        if trigger_binding is None:
            index.warnings.append(f"{name}: has no trigger; skipped")
            continue
        trigger = trigger_binding.get_dict_repr()
        user_function = fn.get_user_function()
        hints = _type_hints(user_function)
        arg_name = str(trigger.get("name"))
        context_arg = _context_arg(user_function, hints)
        supplied = {arg_name} | ({context_arg} if context_arg else set())
        extra_bindings = [
            str(b.get_dict_repr().get("name"))
            for b in fn.get_bindings()
            if b.get_dict_repr().get("name") not in (arg_name, "$return")
        ]
        if extra_bindings:
            index.warnings.append(
                f"{name}: bindings {extra_bindings} are not supported by devhost and are not supplied"
            )
        missing = [p for p in _unbound_params(user_function, supplied) if p not in extra_bindings]
        if missing:
            index.warnings.append(f"{name}: parameters {missing} will not be supplied")

        trigger_type = trigger.get("type")
        if trigger_type == "httpTrigger":
            methods = trigger.get("methods")
            route = trigger.get("route")
            index.http.append(
                HttpFunction(
                    name=name,
                    arg_name=arg_name,
                    route=name if route is None else str(route),
                    methods=tuple(_enum_value(m).upper() for m in methods) if methods else None,
                    auth_level=_enum_value(trigger.get("authLevel", "function")).lower(),
                    user_function=user_function,
                    classic=_is_subclass(hints.get(arg_name), func.HttpRequest),
                    context_arg=context_arg,
                )
            )
        elif trigger_type == "queueTrigger":
            index.queues.append(
                QueueFunction(
                    name=name,
                    arg_name=arg_name,
                    queue_name=resolve_setting_expressions(str(trigger["queueName"])),
                    connection=resolve_setting_expressions(str(trigger.get("connection") or "AzureWebJobsStorage")),
                    user_function=user_function,
                    arg_kind=_queue_arg_kind(hints.get(arg_name)),
                    context_arg=context_arg,
                )
            )
        elif trigger_type == "timerTrigger":
            try:
                schedule = parse_schedule(resolve_setting_expressions(str(trigger.get("schedule", ""))))
            except ScheduleError as exc:
                index.warnings.append(f"{name}: {exc}; skipped")
                continue
            index.timers.append(
                TimerFunction(
                    name=name,
                    arg_name=arg_name,
                    schedule=schedule,
                    run_on_startup=bool(trigger.get("runOnStartup")),
                    user_function=user_function,
                    context_arg=context_arg,
                )
            )
        else:
            index.warnings.append(f"{name}: trigger type {trigger_type!r} is not supported by devhost; skipped")
    return index


def load_functions(script_root: Path, module_name: str = "function_app") -> FunctionIndex:
    """Import the app from the script root and index it."""
    module = import_function_app_module(script_root, module_name)
    return index_functions(find_function_app(module))
