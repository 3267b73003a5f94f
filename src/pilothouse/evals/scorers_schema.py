"""The JSON Schema subset the `json_schema` scorer understands (jsonschema is not a dependency).

`check_schema` rejects, at build time, any keyword outside the subset: a silently ignored
keyword would let outputs pass that a full validator rejects.
"""

from __future__ import annotations

from typing import Any

from pilothouse.evals.scorers_options import ScorerConfigError, is_number, json_equal

_TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
_SUPPORTED = {
    "type",
    "enum",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
}
_ANNOTATIONS = {"title", "description", "default", "examples", "$schema", "$id", "$comment"}


def _bad(where: str, what: str) -> ScorerConfigError:
    return ScorerConfigError(f"scorer 'json_schema': option 'schema' at {where}: {what}")


def check_schema(schema: Any, where: str = "#") -> None:
    """Raises ScorerConfigError unless `schema` uses only the supported subset, well formed."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise _bad(where, f"a schema must be an object or true/false, got {schema!r}")
    unknown = sorted(set(schema) - _SUPPORTED - _ANNOTATIONS)
    if unknown:
        raise _bad(
            where,
            f"unsupported keyword(s) {', '.join(unknown)}; supported: {', '.join(sorted(_SUPPORTED))}",
        )
    if "type" in schema:
        t = schema["type"]
        names = t if isinstance(t, list) else [t]
        if not names or not all(n in _TYPES for n in names):
            raise _bad(where, f"type must be one of {', '.join(_TYPES)} or a list of them")
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        raise _bad(where, "enum must be a non-empty list")
    if "required" in schema and (
        not isinstance(schema["required"], list)
        or not all(isinstance(k, str) for k in schema["required"])
    ):
        raise _bad(where, "required must be a list of property names")
    if "properties" in schema:
        if not isinstance(schema["properties"], dict):
            raise _bad(where, "properties must be an object of schemas")
        for name, sub in schema["properties"].items():
            check_schema(sub, f"{where}/properties/{name}")
    if "additionalProperties" in schema:
        check_schema(schema["additionalProperties"], f"{where}/additionalProperties")
    if "items" in schema:
        if isinstance(schema["items"], list):
            raise _bad(where, "items as a list (tuple validation) is not supported")
        check_schema(schema["items"], f"{where}/items")
    for key in ("minimum", "maximum"):
        if key in schema and not is_number(schema[key]):
            raise _bad(where, f"{key} must be a number")
    for key in ("minLength", "maxLength"):
        v = schema.get(key)
        if key in schema and not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            raise _bad(where, f"{key} must be a whole number of at least 0")


def _is_type(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if name == "integer":
        return is_number(value) and float(value).is_integer()
    return is_number(value)  # "number"


def _kind(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is_type(value, name):
            return name
    return type(value).__name__


def validate(value: Any, schema: Any, at: str = "$") -> list[str]:
    """Every way `value` breaks `schema` (checked by `check_schema`), as "path: problem"."""
    if schema is True:
        return []
    if schema is False:
        return [f"{at}: no value is allowed here"]
    errors: list[str] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, n) for n in names):
            return [f"{at}: expected {' or '.join(names)}, got {_kind(value)}"]
    if "enum" in schema and not any(json_equal(value, x) for x in schema["enum"]):
        errors.append(f"{at}: {value!r} is not one of {schema['enum']!r}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{at}: missing required property {key!r}")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                errors.extend(validate(item, props[key], f"{at}.{key}"))
            elif extra is False:
                errors.append(f"{at}: property {key!r} is not allowed")
            else:
                errors.extend(validate(item, extra, f"{at}.{key}"))
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors.extend(validate(item, schema["items"], f"{at}[{i}]"))
    elif is_number(value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{at}: {value!r} is below the minimum {schema['minimum']!r}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{at}: {value!r} is above the maximum {schema['maximum']!r}")
    elif isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(f"{at}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{at}: longer than {schema['maxLength']} characters")
    return errors
