"""Match request paths against Functions route templates.

Functions routes use ASP.NET templates (``items/{id:int}``, ``files/{*path}``,
``{name?}``, ``{page=1}``), which Starlette's path syntax cannot express:
matching is case-insensitive, constraints such as ``min(1)`` or ``length(3,8)``
exist, and route values reach the function as strings. So each template is
compiled here into a regex plus constraint checks, wrapped in a Starlette
route. A method mismatch is a 404, as on the real host (it has no 405).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import ASGIApp, Receive, Scope, Send

_PARAM = re.compile(r"\{([^{}]*)\}")
_CONSTRAINT = re.compile(r"([A-Za-z]+)(?:\((.*)\))?$")

# Regex fragments for constraints that decide what a segment may look like.
_SHAPES: dict[str, str] = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "double": r"-?\d+(?:\.\d+)?",
    "float": r"-?\d+(?:\.\d+)?",
    "decimal": r"-?\d+(?:\.\d+)?",
    "bool": r"(?i:true|false)",
    "alpha": r"[A-Za-z]+",
    "guid": r"\{?[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}\}?",
    "datetime": r"[^/]+",
}
_CHECKED = {"min", "max", "range", "length", "minlength", "maxlength", "regex", "required"}

# Segment kinds ordered the way ASP.NET ranks route precedence (lower wins).
_LITERAL, _COMPLEX, _CONSTRAINED, _PLAIN, _CATCH_ALL = range(1, 6)


class RouteTemplateError(ValueError):
    """A route template that the local host cannot compile."""


@dataclass(frozen=True)
class Constraint:
    """One ``:name(args)`` constraint checked after the regex matched."""

    name: str
    args: tuple[str, ...] = ()

    def accepts(self, value: str) -> bool:
        try:
            if self.name in ("min", "max", "range"):
                number = float(value)
                bounds = [float(a) for a in self.args]
                if self.name == "min":
                    return number >= bounds[0]
                if self.name == "max":
                    return number <= bounds[0]
                return bounds[0] <= number <= bounds[1]
            if self.name == "length":
                if len(self.args) == 1:
                    return len(value) == int(self.args[0])
                return int(self.args[0]) <= len(value) <= int(self.args[1])
            if self.name == "minlength":
                return len(value) >= int(self.args[0])
            if self.name == "maxlength":
                return len(value) <= int(self.args[0])
            if self.name == "regex":
                return re.search(",".join(self.args), value, re.IGNORECASE) is not None
            if self.name == "required":
                return value != ""
        except (ValueError, IndexError):
            return False
        return True


@dataclass(frozen=True)
class Parameter:
    """A ``{...}`` placeholder of a template."""

    name: str
    shape: str = r"[^/]+"
    constraints: tuple[Constraint, ...] = ()
    optional: bool = False
    default: str | None = None
    catch_all: bool = False


@dataclass(frozen=True)
class CompiledRoute:
    """A template turned into a regex, its parameters and its precedence."""

    template: str
    path: str
    regex: re.Pattern[str]
    parameters: dict[str, Parameter] = field(default_factory=dict)
    precedence: tuple[int, ...] = ()

    def match(self, path: str) -> dict[str, str] | None:
        """Route values for a path, or None when the path is not this route's."""
        found = self.regex.match(path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for name, param in self.parameters.items():
            raw = found.group(name)
            if raw is None:
                if param.default is not None:
                    values[name] = param.default
                continue
            if not all(c.accepts(raw) for c in param.constraints):
                return None
            values[name] = raw
        return values


def _parse_parameter(body: str) -> Parameter:
    text = body.strip()
    catch_all = text.startswith("*")
    text = text.lstrip("*")
    default: str | None = None
    if "=" in text:
        text, default = text.split("=", 1)
    optional = text.endswith("?")
    text = text.rstrip("?")
    name, *raw_constraints = text.split(":")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise RouteTemplateError(f"invalid route parameter name {name!r}")
    shape = r".*" if catch_all else r"[^/]+"
    constraints: list[Constraint] = []
    for raw in raw_constraints:
        found = _CONSTRAINT.match(raw)
        if not found:
            raise RouteTemplateError(f"invalid route constraint {raw!r} on {name!r}")
        kind = found[1].lower()
        args = tuple(a.strip() for a in found[2].split(",")) if found[2] else ()
        if kind in _SHAPES:
            shape = _SHAPES[kind]
        elif kind in _CHECKED:
            constraints.append(Constraint(kind, args))
        else:
            raise RouteTemplateError(f"unsupported route constraint {kind!r} on {name!r}")
    return Parameter(
        name=name,
        shape=shape,
        constraints=tuple(constraints),
        optional=optional or default is not None or catch_all,
        default=default,
        catch_all=catch_all,
    )


def _compile_segment(segment: str, parameters: dict[str, Parameter]) -> tuple[str, int, Parameter | None]:
    """Regex for one path segment, its precedence rank and its parameter if it is only one."""
    pieces: list[str] = []
    position = 0
    found_params: list[Parameter] = []
    for found in _PARAM.finditer(segment):
        pieces.append(re.escape(segment[position : found.start()]))
        param = _parse_parameter(found[1])
        if param.name in parameters:
            raise RouteTemplateError(f"duplicate route parameter {param.name!r}")
        parameters[param.name] = param
        found_params.append(param)
        position = found.end()
    pieces.append(re.escape(segment[position:]))
    if not found_params:
        return "".join(pieces), _LITERAL, None
    whole = len(found_params) == 1 and _PARAM.fullmatch(segment) is not None
    if whole:
        param = found_params[0]
        if param.catch_all:
            rank = _CATCH_ALL
        elif param.shape != r"[^/]+" or param.constraints:
            rank = _CONSTRAINED
        else:
            rank = _PLAIN
        return f"(?P<{param.name}>{param.shape})", rank, param
    # A segment mixing text and parameters: parameters match lazily so the
    # literal separators between them decide where each one ends.
    regex = ""
    position = 0
    for found, param in zip(_PARAM.finditer(segment), found_params, strict=True):
        regex += re.escape(segment[position : found.start()])
        shape = param.shape if param.shape != r"[^/]+" else r"[^/]+?"
        regex += f"(?P<{param.name}>{shape})"
        position = found.end()
    regex += re.escape(segment[position:])
    return regex, _COMPLEX, None


def compile_route(template: str, prefix: str = "") -> CompiledRoute:
    """Compile ``prefix/template`` (both without leading slashes) into a matcher."""
    prefix_segments = [s for s in prefix.strip("/").split("/") if s]
    route_segments = [s for s in template.strip().strip("/").split("/") if s]
    parameters: dict[str, Parameter] = {}
    regex = "^"
    ranks: list[int] = []
    for segment in prefix_segments:
        regex += "/" + re.escape(segment)
    for i, segment in enumerate(route_segments):
        piece, rank, param = _compile_segment(segment, parameters)
        ranks.append(rank)
        last = i == len(route_segments) - 1
        if param is not None and param.optional:
            if not last:
                raise RouteTemplateError(f"{template}: only the last segment may be optional or catch-all")
            regex += f"(?:/{piece})?"
        else:
            regex += "/" + piece
    if regex == "^":
        regex += "/"
    regex += "/?$" if route_segments or prefix_segments else "$"
    path = "/" + "/".join(prefix_segments + route_segments)
    return CompiledRoute(
        template=template,
        path=path,
        regex=re.compile(regex, re.IGNORECASE),
        parameters=parameters,
        precedence=tuple(ranks),
    )


class FunctionRoute(BaseRoute):
    """A Starlette route for one HTTP function, with Functions matching rules."""

    def __init__(
        self,
        compiled: CompiledRoute,
        app: ASGIApp,
        *,
        methods: tuple[str, ...] | None,
        name: str,
    ) -> None:
        self.compiled = compiled
        self.path = compiled.path
        self.app = app
        self.name = name
        self.methods: frozenset[str] | None = None if methods is None else frozenset(m.upper() for m in methods)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        if self.methods is not None and scope["method"] not in self.methods:
            return Match.NONE, {}
        values = self.compiled.match(scope["path"])
        if values is None:
            return Match.NONE, {}
        return Match.FULL, {"endpoint": self.app, "path_params": values}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def __repr__(self) -> str:
        return f"FunctionRoute(path={self.path!r}, name={self.name!r}, methods={self.methods})"


def order_by_precedence(routes: list[FunctionRoute]) -> list[FunctionRoute]:
    """Literal segments before parameters before catch-alls, like ASP.NET routing."""
    return sorted(routes, key=_precedence)


def _precedence(route: FunctionRoute) -> tuple[int, ...]:
    return route.compiled.precedence
