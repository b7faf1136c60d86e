"""record_input: check records before they are submitted, against the
schema's RecordInput: known field names, Boolean fields as booleans, the
rest as text, a credit response as an object, an id on every record."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLList, GraphQLNonNull, GraphQLSchema

from services.runtime.faults import InvalidArgument
from services.tilores_data.tilores_schema import fields_of

MAX_RECORDS = 1000


def checked_records(records: list[dict[str, Any]], schema: GraphQLSchema) -> list[dict[str, Any]]:
    """The records with empty values dropped; InvalidArgument naming
    `records[n].FIELD` for the first problem found."""
    if not records:
        raise InvalidArgument("records must not be empty", field="records")
    if len(records) > MAX_RECORDS:
        raise InvalidArgument(f"at most {MAX_RECORDS} records per call, got {len(records)}", field="records")
    fields = fields_of(schema, "RecordInput")
    checked = []
    for n, record in enumerate(records):
        out = {}
        for name, value in record.items():
            where = f"records[{n}].{name}"
            if name not in fields:
                raise InvalidArgument(f"{where}: unknown field (not a Tilores RecordInput field)", field=where)
            if value is None or value == "":
                continue
            field_type = fields[name].type
            while isinstance(field_type, GraphQLNonNull | GraphQLList):
                field_type = field_type.of_type
            kind = field_type.name
            if kind == "Boolean" and not isinstance(value, bool):
                raise InvalidArgument(f"{where} must be true or false", field=where)
            if kind in ("String", "ID") and not isinstance(value, str):
                raise InvalidArgument(f"{where} must be text (Tilores stores numbers as strings)", field=where)
            if kind == "Map" and not isinstance(value, dict):
                raise InvalidArgument(f"{where} must be an object", field=where)
            out[name] = value
        if not str(out.get("id", "")).strip():
            raise InvalidArgument(f"records[{n}].id is required", field=f"records[{n}].id")
        checked.append(out)
    return checked
