"""Checking real responses against a plane's OpenAPI document (GET /openapi.json).

`Conformance.check(response)` finds the operation the request went to, then asserts that the
document lists the response's status (or a `default`), its content type (`*/*` allows any),
and, for JSON, that the body validates against the documented schema (JSON Schema 2020-12,
with the document's components). A request that is no documented operation (an unknown path,
a method the path does not have) is not checked here: the route tests hold the document equal
to the app's routes. Bodies of event streams are not read (they never end).

The e2e `Cluster` installs it on its HTTP clients, so every response of the e2e tests is checked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import httpx
from jsonschema import Draft202012Validator

STREAMING = "text/event-stream"


class ConformanceError(AssertionError):
    pass


@dataclass(frozen=True)
class _Template:
    path: str
    pattern: re.Pattern[str]
    literal_segments: int


class Conformance:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._validators: dict[str, Draft202012Validator] = {}

    @cached_property
    def _templates(self) -> list[_Template]:
        templates = []
        for path in self.document["paths"]:
            # `{path}` (the data plane's sub-path) may hold several segments; other parameters one.
            regex = re.sub(
                r"\\{(\w+)\\}", lambda m: ".+" if m.group(1) == "path" else "[^/]+", re.escape(path)
            )
            literal = sum(1 for segment in path.split("/") if segment and not segment.startswith("{"))
            templates.append(_Template(path, re.compile(regex), literal))
        # Most literal first: /processor/{id}/run before /{endpoint_id}/{path}.
        return sorted(templates, key=lambda template: -template.literal_segments)

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for template in self._templates:
            if template.pattern.fullmatch(path):
                found = self.document["paths"][template.path].get(method.lower())
                if found is not None:
                    return template.path, found
        return None

    def check(self, response: httpx.Response) -> None:
        request = response.request
        found = self.operation(request.method, request.url.path)
        if found is None:
            return
        path, described = found
        where = f"{request.method} {request.url.path} (documented as {path})"
        responses = described["responses"]
        answer = responses.get(str(response.status_code)) or responses.get("default")
        if answer is None:
            raise ConformanceError(
                f"{where} answered {response.status_code}, which the OpenAPI document does not list "
                f"(it lists {', '.join(responses)}): {response.text[:300] if _readable(response) else ''}"
            )
        content = answer.get("content", {})
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.method == "HEAD":
            return
        if media_type == STREAMING:
            if STREAMING not in content:
                raise ConformanceError(f"{where} answered an event stream, which is not documented")
            return
        body = response.read()
        if not content:
            if body:
                raise ConformanceError(
                    f"{where} answered {response.status_code} with a body; none is documented"
                )
            return
        documented = content.get(media_type) or content.get("*/*")
        if documented is None:
            raise ConformanceError(
                f"{where} answered {response.status_code} as {media_type or 'no content type'}; "
                f"documented: {', '.join(content)}"
            )
        schema = documented.get("schema")
        if media_type != "application/json" or not schema:
            return
        try:
            value = json.loads(body)
        except ValueError as exc:
            raise ConformanceError(
                f"{where} answered {response.status_code} with invalid JSON: {exc}"
            ) from exc
        errors = sorted(self._validator(schema).iter_errors(value), key=lambda error: list(error.path))
        if errors:
            details = "; ".join(
                f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}" for e in errors[:5]
            )
            raise ConformanceError(
                f"{where} answered {response.status_code} with a body the OpenAPI document does not allow: "
                f"{details}\nbody: {body[:500]!r}"
            )

    def _validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._validators:
            root = {"allOf": [schema], "components": self.document.get("components", {})}
            self._validators[key] = Draft202012Validator(root)
        return self._validators[key]


def _readable(response: httpx.Response) -> bool:
    return not response.headers.get("content-type", "").startswith(STREAMING)
