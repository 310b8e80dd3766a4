"""Check recorded requests (and answers) against Twilio's OpenAPI description.

`twilio_api_v2010_subset.json` beside this file is a copy of
`/work/shared/twilio-oai/twilio_api_v2010_subset.json` (cut from twilio/twilio-oai
`spec/json/twilio_api_v2010.json`, commit d50069b), kept in the repository so the suite
runs anywhere.

Form bodies and query strings carry strings only: each value is converted to the type
its schema declares (integer, number, boolean) and then checked with jsonschema (enums,
patterns, bounds). Arrays with `style: form, explode: true` are repeated keys; any other
field must appear once. OpenAPI 3.0's `nullable` and `$ref` are turned into plain JSON
Schema first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SPEC_PATH = Path(__file__).with_name("twilio_api_v2010_subset.json")
_INTEGER = re.compile(r"^-?\d+$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class _Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    spec: Mapping[str, Any]


class OpenApiValidator:
    """Validates requests and answers against one OpenAPI 3.0 document."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._document = document
        self._schemas: dict[str, dict[str, Any]] = {}
        self._operations: list[_Operation] = []
        for template, item in document["paths"].items():
            regex = "".join(
                f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part)
                for part in re.split(r"(\{[^}]+\})", template)
            )
            for method, operation in item.items():
                if method in ("get", "post", "put", "delete", "patch"):
                    self._operations.append(
                        _Operation(method.upper(), template, re.compile(f"^{regex}$"), operation)
                    )

    # -- requests ----------------------------------------------------------------------
    def request_errors(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        form: Mapping[str, list[str]],
        content_type: str | None = None,
    ) -> list[str]:
        """Every way the request departs from the description (empty: it conforms)."""
        matches = [op for op in self._operations if op.pattern.match(path)]
        if not matches:
            return [f"{path}: no path template matches"]
        operation = next((op for op in matches if op.method == method), None)
        if operation is None:
            return [f"{method} {matches[0].template}: method not declared"]
        where = f"{method} {operation.template}"
        errors: list[str] = []
        parameters = [self._resolve(p) for p in operation.spec.get("parameters", [])]
        path_values = operation.pattern.match(path).groupdict()  # type: ignore[union-attr]
        for parameter in parameters:
            if parameter["in"] == "path":
                errors += self._value_errors(
                    where, parameter["name"], [path_values[parameter["name"]]], parameter["schema"]
                )
        declared_query = {p["name"]: p for p in parameters if p["in"] == "query"}
        for name, values in query.items():
            parameter = declared_query.get(name)
            if parameter is None:
                errors.append(f"{where}: query parameter {name!r} is not declared")
                continue
            errors += self._value_errors(where, name, values, parameter["schema"])
        for name, parameter in declared_query.items():
            if parameter.get("required") and name not in query:
                errors.append(f"{where}: required query parameter {name!r} is missing")

        body = operation.spec.get("requestBody")
        if body is None:
            if form:
                errors.append(f"{where}: sends a body ({sorted(form)}) but none is declared")
            return errors
        media = body["content"].get("application/x-www-form-urlencoded")
        if media is None:
            return [*errors, f"{where}: no form-encoded body declared"]
        if content_type is not None and not content_type.startswith(
            "application/x-www-form-urlencoded"
        ):
            errors.append(f"{where}: Content-Type is {content_type!r}, not form-encoded")
        schema = self._resolve(media["schema"])
        properties = schema.get("properties", {})
        encoding = media.get("encoding", {})
        for name, values in form.items():
            field_schema = properties.get(name)
            if field_schema is None:
                errors.append(f"{where}: form field {name!r} is not declared")
                continue
            field_schema = self._resolve(field_schema)
            if field_schema.get("type") == "array":
                style = encoding.get(name, {})
                if style.get("style", "form") != "form" or not style.get("explode", True):
                    errors.append(f"{where}: array field {name!r} is not form/explode encoded")
            errors += self._value_errors(where, name, values, field_schema)
        for name in schema.get("required", []):
            if name not in form:
                errors.append(f"{where}: required form field {name!r} is missing")
        return errors

    def assert_request_valid(self, request: Any) -> None:
        """Assert one `RecordedRequest` conforms (the message lists every departure)."""
        errors = self.request_errors(
            request.method, request.path, request.query, request.form, request.content_type
        )
        assert not errors, "\n".join(errors)

    # -- answers -----------------------------------------------------------------------
    def response_errors(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """Departures of a JSON answer from the schema declared for that status."""
        operation = next(
            (op for op in self._operations if op.method == method and op.pattern.match(path)),
            None,
        )
        if operation is None:
            return [f"{method} {path}: no operation"]
        response = operation.spec["responses"].get(str(status))
        if response is None:
            return [f"{method} {operation.template}: status {status} not declared"]
        media = response.get("content", {}).get("application/json")
        if media is None:
            return []
        schema = self._json_schema(json.dumps(media["schema"], sort_keys=True))
        validator = jsonschema.Draft202012Validator(schema)
        return [
            f"{method} {operation.template} answer: {error.json_path}: {error.message}"
            for error in validator.iter_errors(body)
        ]

    # -- helpers -----------------------------------------------------------------------
    def _value_errors(
        self, where: str, name: str, values: list[str], schema: Mapping[str, Any]
    ) -> list[str]:
        schema = self._resolve(schema)
        is_array = schema.get("type") == "array"
        if not is_array and len(values) != 1:
            return [f"{where}: {name!r} sent {len(values)} times but is not an array"]
        item_schema = self._resolve(schema["items"]) if is_array else schema
        converted: list[Any] = []
        for raw in values:
            value, problem = _convert(raw, item_schema.get("type"))
            if problem:
                return [f"{where}: {name!r}={raw!r} {problem}"]
            converted.append(value)
        instance: Any = converted if is_array else converted[0]
        json_schema = self._json_schema(json.dumps(schema, sort_keys=True))
        validator = jsonschema.Draft202012Validator(json_schema)
        return [
            f"{where}: {name!r}={instance!r}: {error.message}"
            for error in validator.iter_errors(instance)
        ]

    def _resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in node:
            node = self._lookup(node["$ref"])
        return node

    def _lookup(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#/"):
            raise ValueError(f"Only local $refs are supported, not {ref!r}")
        node: Any = self._document
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node  # type: ignore[no-any-return]

    def _json_schema(self, schema_json: str) -> dict[str, Any]:
        if schema_json not in self._schemas:
            self._schemas[schema_json] = self._convert_schema(json.loads(schema_json), depth=0)
        return self._schemas[schema_json]

    def _convert_schema(self, node: Any, depth: int) -> Any:
        """OpenAPI 3.0 schema -> JSON Schema: inline $refs, `nullable` -> a null type."""
        if depth > 50:
            raise ValueError("Schema nesting too deep (a recursive $ref?)")
        if isinstance(node, list):
            return [self._convert_schema(item, depth + 1) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return self._convert_schema(self._lookup(node["$ref"]), depth + 1)
        converted = {
            key: self._convert_schema(value, depth + 1)
            for key, value in node.items()
            if key != "nullable" and not key.startswith("x-")
        }
        if node.get("nullable"):
            kind = converted.get("type")
            if isinstance(kind, str):
                converted["type"] = [kind, "null"]
            if "enum" in converted:
                converted["enum"] = [*converted["enum"], None]
        return converted


def _convert(raw: str, kind: str | None) -> tuple[Any, str | None]:
    """A form value as the type its schema declares, or a reason it cannot be."""
    if kind == "integer":
        return (int(raw), None) if _INTEGER.match(raw) else (None, "is not an integer")
    if kind == "number":
        return (float(raw), None) if _NUMBER.match(raw) else (None, "is not a number")
    if kind == "boolean":
        if raw in ("true", "false"):
            return raw == "true", None
        return None, "is not 'true' or 'false'"
    return raw, None


@cache
def twilio_validator() -> OpenApiValidator:
    """The validator for the Twilio subset (parsed once per test session)."""
    return OpenApiValidator(json.loads(SPEC_PATH.read_text(encoding="utf-8")))
