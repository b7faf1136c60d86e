"""The Tilores GraphQL schema (tilores.graphql) and what is derived from it:
the Record field names, the search parameters, the Boolean fields, and a
selection set that reads a whole record."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
)

SDL_PATH = Path(__file__).with_name("tilores.graphql")


@cache
def tilores_schema() -> GraphQLSchema:
    return build_schema(SDL_PATH.read_text())


def fields_of(schema: GraphQLSchema, type_name: str) -> Mapping[str, Any]:
    """An object or input type's fields by name; KeyError when the schema
    has no such type."""
    named = schema.type_map.get(type_name)
    if not isinstance(named, GraphQLObjectType | GraphQLInputObjectType):
        raise KeyError(f"the Tilores schema has no object type {type_name}")
    fields: Mapping[str, Any] = named.fields
    return fields


def _named(field_type: Any) -> Any:
    """The type a field holds, through non-null and list wrappers."""
    while isinstance(field_type, GraphQLNonNull | GraphQLList):
        field_type = field_type.of_type
    return field_type


def record_fields(schema: GraphQLSchema) -> tuple[str, ...]:
    return tuple(fields_of(schema, "Record"))


def search_parameters(schema: GraphQLSchema) -> frozenset[str]:
    return frozenset(fields_of(schema, "SearchParams"))


def boolean_fields(schema: GraphQLSchema) -> frozenset[str]:
    fields = fields_of(schema, "Record")
    return frozenset(name for name, f in fields.items() if _named(f.type).name == "Boolean")


def selection(schema: GraphQLSchema, type_name: str = "Record", depth: int = 6) -> str:
    """Every field of the type, nested object types expanded: the selection
    that reads a whole record (a bare object field is a validation error)."""
    parts = []
    for name, field in fields_of(schema, type_name).items():
        inner = _named(field.type)
        if isinstance(inner, GraphQLObjectType):
            if depth > 0:
                parts.append(f"{name} {{ {selection(schema, inner.name, depth - 1)} }}")
        else:
            parts.append(name)
    return " ".join(parts)
