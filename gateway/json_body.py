"""JSON request bodies and their fields, checked in OpenAI's words: every
error is a 400 that names the field, so nothing reaches a protobuf setter
that would fail on it (an integer beyond 32 or 64 bits, a megabyte id)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import orjson

from gateway.openai_errors import OpenAIError

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# Ids and names travel in gRPC metadata and error details (16 KiB in all):
# a longer value is a mistake, not an id.
MAX_ID_CHARS = 256


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; a 400 when it is not one."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = _stdlib_json(raw)
    if not isinstance(body, dict):
        raise OpenAIError(400, f"Invalid request body: expected a JSON object, but got {type_name(body)} instead.")
    return body


def _stdlib_json(raw: bytes) -> object:
    # What orjson refuses (an integer beyond 64 bits in some positions, a
    # lone surrogate escaped as \ud800) the standard library may read, so
    # the field checks, or the check for text that is not Unicode, can name
    # the field.
    def no_constant(name: str) -> None:
        raise ValueError(name)

    try:
        body = json.loads(raw, parse_constant=no_constant)
    except (ValueError, RecursionError):
        raise OpenAIError(
            400,
            "We could not parse the JSON body of your request. The API expects a JSON payload "
            "(Content-Type: application/json).",
        ) from None
    _check_unicode(body)
    return body


def _check_unicode(body: object) -> None:
    """A 400 naming the first string (or key) that holds a lone surrogate:
    JSON may escape one, but it is no Unicode text and no protobuf string."""
    pending: list[tuple[str, object]] = [("", body)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                inner = f"{where}.{key}" if where else str(key)
                _encodable(inner, key)
                pending.append((inner, item))
        elif isinstance(value, list):
            pending.extend((f"{where}[{n}]", item) for n, item in enumerate(value))
        elif isinstance(value, str):
            _encodable(where, value)


def _encodable(where: str, text: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError as error:
        param = where.encode(errors="backslashreplace").decode()
        raise OpenAIError(
            400,
            f"Invalid '{param}': the string holds a lone surrogate ({text[error.start]!r} at position "
            f"{error.start}), which is not valid Unicode text.",
            param=param,
            code="invalid_value",
        ) from None


def reject_unknown(body: dict[str, Any], known: Iterable[str]) -> None:
    allowed = set(known)
    for name in body:
        if name not in allowed:
            raise OpenAIError(400, f"Unrecognized request argument supplied: {name}", param=name)


def type_name(value: object) -> str:
    return {
        str: "a string", bool: "a boolean", int: "an integer", float: "a number",
        list: "an array", dict: "an object", type(None): "null",
    }.get(type(value), "a value")  # fmt: skip


def invalid_type(param: str, expected: str, value: object) -> OpenAIError:
    return OpenAIError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def missing(param: str) -> OpenAIError:
    return OpenAIError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def check_integer(param: str, value: object, lo: int, hi: int) -> int:
    """`value` as an integer within lo..hi; a 400 naming `param` otherwise."""
    if isinstance(value, float) and value.is_integer() and abs(value) >= 2**63:
        # orjson reads an integer beyond 64 bits as a float, rounded: out of
        # range whatever it was.
        value = hi + 1 if value > 0 else lo - 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(param, "an integer", value)
    if value < lo:
        raise OpenAIError(
            400,
            f"Invalid '{param}': integer below minimum value. Expected a value >= {lo}, but got {value} instead.",
            param=param,
            code="integer_below_min_value",
        )
    if value > hi:
        raise OpenAIError(
            400,
            f"Invalid '{param}': integer above maximum value. Expected a value <= {hi}, but got {value} instead.",
            param=param,
            code="integer_above_max_value",
        )
    return value


def check_string(param: str, value: object, max_chars: int = MAX_ID_CHARS, *, empty: bool = True) -> str:
    """`value` as a string of at most `max_chars`; a 400 naming `param` otherwise."""
    if not isinstance(value, str):
        raise invalid_type(param, "a string", value)
    if not empty and not value:
        raise OpenAIError(400, f"Invalid '{param}': empty string.", param=param, code="invalid_value")
    if len(value) > max_chars:
        raise OpenAIError(
            400,
            f"Invalid '{param}': string too long. Expected a string with maximum length {max_chars}, "
            f"but got a string with length {len(value)} instead.",
            param=param,
            code="string_above_max_length",
        )
    return value


def field(
    body: dict[str, Any],
    name: str,
    kind: type | tuple[Any, ...],
    *,
    required: bool = False,
    default: Any = None,
    param: str = "",
) -> Any:
    """A field of a given JSON type (bool is never an integer or a number);
    `param` is its path in errors when it is not `name`."""
    param = param or name
    if name not in body:
        if required:
            raise missing(param)
        return default
    value = body[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = {str: "a string", bool: "a boolean", int: "an integer", list: "an array", dict: "an object"}
        expected = "a number" if float in kinds else " or ".join(names[k] for k in kinds)
        raise invalid_type(param, expected, value)
    return value


def check_number(param: str, value: float, lo: float, hi: float) -> float:
    """A finite number within lo..hi; a 400 naming `param` otherwise."""
    if not lo <= value <= hi:
        raise OpenAIError(
            400,
            f"Invalid '{param}': expected a value between {lo:g} and {hi:g}, but got {value} instead.",
            param=param,
            code="invalid_value",
        )
    return float(value)
