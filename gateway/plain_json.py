"""plain_dict: a protobuf message as the JSON a REST client expects. Unlike
protobuf's own JSON mapping, 64-bit integers stay numbers (not strings) and
enum values are lower-case words without their type prefix
(`EXPERIMENT_STATE_RUNNING` -> `running`); every field is present, with
null for an unset optional one."""

from __future__ import annotations

import re
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_PREFIXES: dict[str, str] = {}


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
        return _message(value, field.message_type)
    if field.enum_type is not None:
        return enum_word(field.enum_type, value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return value.hex()
    return value
