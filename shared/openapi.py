"""OpenAPI 3.1 documents, built from the description each route carries next to its handler.

A handler is documented with `@operation(...)`, which attaches an `Operation` to it; a plane's
`openapi.py` then walks the app's own routes (`routes_of`) and assembles one document
(`build_document`) from what the handlers carry, so the document lists what the app serves.

Invariants:
- Each (method, path) of the document is a route of the app: paths come from the routes, never
  from a list kept elsewhere. A route whose handler carries no `Operation` is reported by
  `undocumented`, and a plane's test holds that list empty (HTML pages are kept out of the JSON
  API by a plane's explicit, visible list of excluded paths).
- Errors are one schema, `Error` (`shared.errors.error_body`); every operation may answer 500 with
  it, and every operation that needs the admin token may answer 401 with it (both added here).
- Path parameters are read from the route's path; their descriptions come from the plane.
- Schemas are JSON Schema 2020-12 (OpenAPI 3.1): `"type": ["string", "null"]` for nullable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

Schema = dict[str, Any]
Handler = TypeVar("Handler", bound=Callable[..., Any])

ATTRIBUTE = "__openapi__"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
"""Every method OpenAPI can describe: what a route that answers any method is documented with."""

ERROR_SCHEMA: Schema = {
    "type": "object",
    "description": "The one error body of FFAAS: the HTTP status again, and what is wrong "
    "(naming the field, limit or setting involved).",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "integer", "minimum": 400, "maximum": 599},
        "message": {"type": "string", "minLength": 1},
    },
    "additionalProperties": False,
}

TIMESTAMP: Schema = {
    "type": "string",
    "description": "RFC 3339, UTC, with microseconds and Z (2021-01-09T23:45:48.562721Z)",
    "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$",
}
UUID: Schema = {"type": "string", "format": "uuid"}

_WHITESPACE = "".join(f"\\u{ord(c):04x}" for c in map(chr, range(0x10000)) if c.isspace())
NOT_BLANK_PATTERN = f"[^{_WHITESPACE}]"
"""A string with a character that is not whitespace as Python's `str.strip` sees it (which differs
from JSON Schema's `\\s`: it counts \\x1c-\\x1f and \\x85, not \\ufeff), as the routes check it."""


def ref(name: str) -> Schema:
    """A reference to `#/components/schemas/<name>`."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


@dataclass(frozen=True)
class Answer:
    """One documented response: its description, and its body (`content`: media type -> schema)."""

    description: str
    content: Mapping[str, Schema] = field(default_factory=dict)
    headers: Mapping[str, Schema] = field(default_factory=dict)
    links: Mapping[str, Schema] = field(default_factory=dict)

    def as_openapi(self) -> Schema:
        shown: Schema = {"description": self.description}
        if self.headers:
            shown["headers"] = dict(self.headers)
        if self.content:
            shown["content"] = {media: {"schema": schema} for media, schema in self.content.items()}
        if self.links:
            shown["links"] = dict(self.links)
        return shown


def json_answer(description: str, schema: Schema, *, links: Mapping[str, Schema] | None = None) -> Answer:
    return Answer(description, {"application/json": schema}, links=links or {})


def error(description: str) -> Answer:
    """A response with the one JSON error body."""
    return Answer(description, {"application/json": ref("Error")})


def no_content(description: str) -> Answer:
    return Answer(description)


@dataclass(frozen=True)
class Body:
    """A request body: media type -> schema, and whether it may be left out."""

    content: Mapping[str, Schema]
    description: str = ""
    required: bool = True

    def as_openapi(self) -> Schema:
        shown: Schema = {
            "required": self.required,
            "content": {media: {"schema": schema} for media, schema in self.content.items()},
        }
        if self.description:
            shown["description"] = self.description
        return shown


def json_body(schema: Schema, description: str = "", *, required: bool = True) -> Body:
    return Body({"application/json": schema}, description, required)


def query(name: str, schema: Schema, description: str) -> Schema:
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


@dataclass(frozen=True)
class Operation:
    """What one handler does, as OpenAPI says it; `public` operations need no admin token."""

    summary: str
    tag: str
    responses: Mapping[int | str, Answer]
    description: str = ""
    body: Body | None = None
    parameters: Sequence[Schema] = ()
    public: bool = False
    operation_id: str = ""

    def as_openapi(self, path_parameters: Sequence[Schema], *, secured: bool) -> Schema:
        responses = dict(self.responses)
        if secured and not self.public:
            responses.setdefault(401, error("No admin token, or a wrong one (FFAAS_ADMIN_TOKEN)"))
        responses.setdefault(500, error("Internal error; the details are in the server log"))
        shown: Schema = {"operationId": self.operation_id, "summary": self.summary, "tags": [self.tag]}
        if self.description:
            shown["description"] = self.description
        parameters = [*path_parameters, *self.parameters]
        if parameters:
            shown["parameters"] = parameters
        if self.body is not None:
            shown["requestBody"] = self.body.as_openapi()
        shown["responses"] = {
            str(status): answer.as_openapi() for status, answer in sorted(responses.items(), key=_status_key)
        }
        if secured and self.public:
            shown["security"] = []
        return shown


def operation(
    summary: str,
    *,
    tag: str,
    responses: Mapping[int | str, Answer],
    description: str = "",
    body: Body | None = None,
    parameters: Sequence[Schema] = (),
    public: bool = False,
    operation_id: str = "",
) -> Callable[[Handler], Handler]:
    """Attach the handler's OpenAPI description to it; its operationId is `operation_id`, by default
    the handler's name (`build_document` refuses two operations with the same one)."""

    def attach(handler: Handler) -> Handler:
        described = Operation(
            summary=summary,
            tag=tag,
            responses=responses,
            description=description,
            body=body,
            parameters=parameters,
            public=public,
            operation_id=operation_id or handler.__name__,
        )
        setattr(handler, ATTRIBUTE, described)
        return handler

    return attach


def described(handler: object) -> Operation | None:
    found = getattr(handler, ATTRIBUTE, None)
    return found if isinstance(found, Operation) else None


@dataclass(frozen=True)
class ServedRoute:
    """One (path, method) the app answers, and the handler that answers it (None: a mounted app)."""

    path: str
    method: str
    handler: object
    parameters: tuple[str, ...]


def routes_of(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[ServedRoute]:
    """Every (path, method) of Starlette `routes`, mounts included; HEAD is left out where GET is,
    since Starlette answers it for every GET route. A mounted app that is not a router is one
    entry, its path ending in `/{path}` and its method `*`."""
    for route in routes:
        if isinstance(route, Route):
            methods = sorted(route.methods or ("GET",))
            for method in methods:
                if method == "HEAD" and "GET" in methods:
                    continue
                yield ServedRoute(prefix + route.path, method, route.endpoint, tuple(route.param_convertors))
        elif isinstance(route, Mount):
            inner = getattr(route.app, "routes", None)
            if inner is not None:
                yield from routes_of(inner, prefix + route.path)
            else:
                yield ServedRoute(prefix + route.path + "/{path}", "*", route.app, ("path",))


def is_excluded(path: str, excluded: Sequence[str]) -> bool:
    """`path` is one of `excluded`, or under one of them (`/ui` excludes `/ui` and `/ui/...`; `/` is
    only itself)."""
    return any(
        path == prefix or (prefix != "/" and path.startswith(prefix.rstrip("/") + "/")) for prefix in excluded
    )


def undocumented(served: Sequence[ServedRoute], excluded: Sequence[str]) -> list[str]:
    """`METHOD path` of every served route without an `Operation`, outside `excluded` (`is_excluded`)."""
    return [
        f"{route.method} {route.path}"
        for route in served
        if described(route.handler) is None and not is_excluded(route.path, excluded)
    ]


def build_document(
    *,
    title: str,
    version: str,
    description: str,
    served: Sequence[ServedRoute],
    path_parameters: Mapping[str, Schema],
    schemas: Mapping[str, Schema],
    tags: Sequence[Schema],
    secured: bool,
    extra_paths: Mapping[str, Mapping[str, Schema]] | None = None,
) -> Schema:
    """The OpenAPI 3.1 document of `served` (undocumented routes left out; see `undocumented`).

    `path_parameters`: name -> the parameter's schema and description (every path parameter of a
    documented route must be there). `secured`: every operation but the public ones needs the
    bearer token. `extra_paths`: operations that are not Starlette routes (the data plane's runs).
    """
    paths: dict[str, dict[str, Schema]] = {}
    for route in served:
        found = described(route.handler)
        if found is None:
            continue
        parameters = [_path_parameter(name, path_parameters) for name in route.parameters]
        paths.setdefault(route.path, {})[route.method.lower()] = found.as_openapi(parameters, secured=secured)
    for path, methods in (extra_paths or {}).items():
        paths.setdefault(path, {}).update(methods)
    seen: dict[str, str] = {}
    for path, methods in paths.items():
        for method, shown in methods.items():
            where = seen.setdefault(shown["operationId"], f"{method.upper()} {path}")
            if where != f"{method.upper()} {path}":
                raise ValueError(
                    f"operationId {shown['operationId']!r} of {method.upper()} {path} is already {where}'s; "
                    "give one of them operation_id=..."
                )
    components: Schema = {"schemas": {"Error": ERROR_SCHEMA, **schemas}}
    document: Schema = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "tags": list(tags),
        "paths": {path: paths[path] for path in sorted(paths)},
        "components": components,
    }
    if secured:
        components["securitySchemes"] = {
            "adminToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "The control plane's FFAAS_ADMIN_TOKEN. Without a configured token no "
                "route asks for it.",
            }
        }
        document["security"] = [{"adminToken": []}]
    return document


def path_parameters(path: str, known: Mapping[str, Schema]) -> list[Schema]:
    """The parameters of an OpenAPI path template (`/a/{name}/b`), described from `known`."""
    return [_path_parameter(name, known) for name in re.findall(r"{(\w+)}", path)]


def document_route(build: Callable[[Sequence[BaseRoute]], Schema], *, plane: str) -> Route:
    """`GET /openapi.json`: the document `build` makes of the app's routes, built on the first
    request and kept (an app's routes do not change while it runs)."""

    @operation(
        "This OpenAPI document",
        tag="status",
        public=True,
        responses={200: json_answer(f"The OpenAPI 3.1 document of the {plane}", {"type": "object"})},
    )
    async def get_openapi(request: Request) -> Response:
        state = request.app.state
        cached: bytes | None = getattr(state, "openapi_json", None)
        if cached is None:
            cached = json.dumps(build(request.app.routes), separators=(",", ":")).encode()
            state.openapi_json = cached
        return Response(cached, media_type="application/json")

    return Route("/openapi.json", get_openapi, methods=["GET"])


def package_version() -> str:
    try:
        return version("ffaas")
    except PackageNotFoundError:
        return "0"


def _path_parameter(name: str, known: Mapping[str, Schema]) -> Schema:
    if name not in known:
        raise KeyError(f"path parameter {name!r} has no description; add it to the plane's PATH_PARAMETERS")
    return {"name": name, "in": "path", "required": True, **known[name]}


def _status_key(item: tuple[int | str, Answer]) -> str:
    return str(item[0])
