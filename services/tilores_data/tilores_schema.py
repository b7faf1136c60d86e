"""The Tilores GraphQL schema (tilores.graphql) and what is derived from it:
the Record field names, the search parameters, the Boolean fields, and a
selection set that reads a whole record."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from graphql import (
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


def _named(field_type):
    while isinstance(field_type, GraphQLNonNull | GraphQLList):
        field_type = field_type.of_type
    return field_type


def record_fields(schema: GraphQLSchema) -> tuple[str, ...]:
    return tuple(schema.type_map["Record"].fields)


def search_parameters(schema: GraphQLSchema) -> frozenset[str]:
    return frozenset(schema.type_map["SearchParams"].fields)


def boolean_fields(schema: GraphQLSchema) -> frozenset[str]:
    fields = schema.type_map["Record"].fields
    return frozenset(name for name, f in fields.items() if _named(f.type).name == "Boolean")


def selection(schema: GraphQLSchema, type_name: str = "Record", depth: int = 6) -> str:
    """Every field of the type, nested object types expanded: the selection
    that reads a whole record (a bare object field is a validation error)."""
    object_type = schema.type_map[type_name]
    parts = []
    for name, field in object_type.fields.items():
        inner = _named(field.type)
        if isinstance(inner, GraphQLObjectType):
            if depth > 0:
                parts.append(f"{name} {{ {selection(schema, inner.name, depth - 1)} }}")
        else:
            parts.append(name)
    return " ".join(parts)
