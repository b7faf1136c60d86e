"""plain_dict: a protobuf message as the JSON a REST client expects. Unlike
protobuf's own JSON mapping, 64-bit integers stay numbers (not strings) and
enum values are lower-case words without their type prefix
(`EXPERIMENT_STATE_RUNNING` -> `running`); every field is present, with
null for an unset optional one. A google.protobuf.Timestamp is an ISO 8601
string in UTC (`2026-12-06T09:44:07.250Z`)."""

from __future__ import annotations

import re
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from services.runtime.moment_wire import seconds_of
from services.runtime.moments import iso_of

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_PREFIXES: dict[str, str] = {}
TIMESTAMP = "google.protobuf.Timestamp"


def enum_word(enum: EnumDescriptor, number: int) -> str | None:
    """`running` for EXPERIMENT_STATE_RUNNING; None for *_UNSPECIFIED."""
    prefix = _PREFIXES.get(enum.full_name)
    if prefix is None:
        prefix = _PREFIXES[enum.full_name] = _CAMEL.sub("_", enum.name).upper() + "_"
    value = enum.values_by_number.get(number)
    if value is None or number == 0:
        return None
    return value.name.removeprefix(prefix).lower()


def plain_dict(message: Message) -> dict[str, Any]:
    return _message(message, cast(Descriptor, message.DESCRIPTOR))


def _message(message: Message, descriptor: Descriptor) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in descriptor.fields:
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {key: _scalar(item, value_field) for key, item in value.items()}
        elif field.is_repeated:
            out[field.name] = [_scalar(item, field) for item in value]
        elif field.has_presence and not message.HasField(field.name):
            out[field.name] = None
        else:
            out[field.name] = _scalar(value, field)
    return out


def _scalar(value: Any, field: FieldDescriptor) -> Any:
    if field.message_type is not None:
        if field.message_type.full_name == TIMESTAMP:
            return iso_of(seconds_of(value))
        return _message(value, field.message_type)
    if field.enum_type is not None:
        return enum_word(field.enum_type, value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return value.hex()
    return value


_INTEGERS = frozenset(
    {
        FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)  # fmt: skip
_JSON_TYPES = {FieldDescriptor.TYPE_BOOL: "boolean", FieldDescriptor.TYPE_DOUBLE: "number"}
_JSON_TYPES |= {FieldDescriptor.TYPE_FLOAT: "number", FieldDescriptor.TYPE_STRING: "string"}
_JSON_TYPES |= {FieldDescriptor.TYPE_BYTES: "string"} | dict.fromkeys(_INTEGERS, "integer")
SCHEMA_REF = "#/components/schemas/"


def plain_schemas(*messages: type[Message]) -> dict[str, dict[str, Any]]:
    """The JSON Schema (2020-12, as OpenAPI 3.1 takes it) of what plain_dict
    writes for each message and every message it holds, by message name:
    every field present (`required`), nothing else, null where plain_dict
    writes null (an unset optional field or message, an unspecified enum)."""
    schemas: dict[str, dict[str, Any]] = {}
    pending = [cast(Descriptor, message.DESCRIPTOR) for message in messages]
    while pending:
        descriptor = pending.pop()
        if descriptor.name in schemas:
            continue
        properties = {}
        for field in descriptor.fields:
            properties[field.name] = _field_schema(field, pending)
        schemas[descriptor.name] = {
            "type": "object",
            "required": [field.name for field in descriptor.fields],
            "properties": properties,
            "additionalProperties": False,
        }
    return schemas


def schema_ref(message: type[Message]) -> dict[str, str]:
    return _ref(cast(Descriptor, message.DESCRIPTOR))


def _ref(descriptor: Descriptor) -> dict[str, str]:
    return {"$ref": SCHEMA_REF + descriptor.name}


def _field_schema(field: FieldDescriptor, pending: list[Descriptor]) -> dict[str, Any]:
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        return {"type": "object", "additionalProperties": _value_schema(message.fields_by_name["value"], pending)}
    value = _value_schema(field, pending)
    if field.is_repeated:
        return {"type": "array", "items": value}
    if field.has_presence and message is None and value["type"] != ["string", "null"]:
        return {**value, "type": [value["type"], "null"]}
    if message is not None and message.full_name != TIMESTAMP:
        return {"anyOf": [value, {"type": "null"}]}
    return value


def _value_schema(field: FieldDescriptor, pending: list[Descriptor]) -> dict[str, Any]:
    message = field.message_type
    if message is not None:
        if message.full_name == TIMESTAMP:
            return {"type": ["string", "null"], "format": "date-time"}
        pending.append(message)
        return _ref(message)
    if field.enum_type is not None:
        words = [enum_word(field.enum_type, v.number) for v in field.enum_type.values if v.number]
        return {"type": ["string", "null"], "enum": [*words, None]}
    return {"type": _JSON_TYPES[field.type]}
