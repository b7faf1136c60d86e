"""SchemaFiller: fills a JSON schema (a tool's parameters, a response
format's schema) with values the conversation and the customer's records
hold, and nothing else.

A property is matched by the words of its name (and, to choose among
several facts, of its description) against the words of a fact's label:
`last_payment_date` takes "Last approved payment date", `credit_score`
one of the bureaus' "… credit score" (the one its description names, if
it names one), `open_tickets` as an integer takes "Open tickets" and as an
array the open tickets themselves. A value is converted to the type the
schema asks for only when it says that type: a number out of "705", a
boolean out of "yes" or a count, a member of an enum named in the value.
A property no value fits is left out when optional, `null` when the schema
allows it, and otherwise the whole schema cannot be filled: `Unfillable`
names the property. The result is validated against the schema, with
regular expressions run by RE2 so a hostile `pattern` costs linear time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import re2
from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import SchemaError

MAX_DEPTH = 8  # nested objects and $refs followed; a recursive schema stops here
MAX_ITEMS = 20  # items an array takes
MAX_NAMED_CHARS = 200  # of a property's path in an error
MAX_PROPERTIES = 256  # properties filled in all: a schema's cost is bounded, whatever its size

_NAME_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_ONE_WORD = re.compile(r"(?i)trans[\s_-]?union")  # a bureau's name, however it is cased
# A value that says a number: it starts with one, not a date's or a series' first part.
_NUMBER = re.compile(r"([-+]?\d+(?:,\d{3})*(?:\.\d+)?)(?:%|\s|,|$)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?(?:Z|[+-]\d{2}:\d{2})")
# Words a property's name says that no label says: "the customer's current
# credit score" is the credit score.
_FILLER = frozenset(
    "a an the of for to in on by is are has have had any was were its their her his customer customers "
    "current latest most recent value user person this that".split()
)
_SYNONYMS = {
    "mail": "email",
    "telephone": "phone",
    "mobile": "phone",
    "cell": "phone",
    "tel": "phone",
    "dob": "birth",
    "birthday": "birth",
    "born": "birth",
    "fico": "credit",
    "surname": "last",
    "given": "first",
    "family": "last",
    "amt": "amount",
    "bal": "balance",
}
# A property that holds the answer itself, in words.
ANSWER_WORDS = frozenset("answer summary response reply explanation text message content note notes".split())
QUESTION_WORDS = frozenset("question prompt request input".split())
NULL_TYPES = ("null",)


def words_of(text: str) -> frozenset[str]:
    """A name's or label's words, lower case, singular, synonyms merged:
    "lastPaymentDate" and "Last payment dates" both say {last, payment,
    date}. Figures are not words."""
    out = set()
    for part in _NAME_PART.findall(_ONE_WORD.sub("transunion", text)):
        word = part.lower()
        if word.isdigit():
            continue
        word = _SYNONYMS.get(word, word)
        if len(word) > 4 and word.endswith("ies"):
            word = word[:-3] + "y"
        elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.add(word)
    if {"customer", "id"} <= out or {"account", "id"} <= out or {"account", "number"} <= out:
        out -= {"customer", "account", "number"}
        out |= {"client", "id"}
    if "phone" in out:
        out.discard("number")
    return frozenset(out)


@dataclass(frozen=True)
class Source:
    """A value a property may take: a fact of the records, or an identifier
    the user gave, under its label."""

    label: str
    value: str
    generic: bool = False  # an identifier: also fills "identifier", "query", "lookup"
    words: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", words_of(self.label))  # read once, matched per property

    @property
    def item(self) -> bool:
        """One of several listed items ("Charge on 2026-10-26", "Open
        ticket 597128"), told by the figure in its label."""
        return any(c.isdigit() for c in self.label)


GENERIC_WORDS = frozenset("identifier query lookup search key q id customer client who".split())


class Unfillable(ValueError):
    """No value the conversation or the records hold fits this property."""

    def __init__(self, path: str, why: str):
        # Property names are the caller's: an error names one, never echoes a megabyte.
        path = path if len(path) <= MAX_NAMED_CHARS else path[:MAX_NAMED_CHARS] + "…"
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


class SchemaFiller:
    def __init__(self, sources: Iterable[Source], answer: str = "", question: str = ""):
        self._sources = list(sources)
        self._answer = answer
        self._question = question
        self._visited = 0

    def fill(self, schema: dict[str, Any]) -> dict[str, Any]:
        """An object valid against `schema` (whose top level is an object)."""
        checked = _validator(schema)
        self._visited = 0
        value = self._value(schema, "", "", schema, 0)
        if not isinstance(value, dict):
            raise Unfillable("", "the schema's top level must be an object")
        error = next(iter(sorted(checked.iter_errors(value), key=lambda e: len(e.path))), None)
        if error is not None:
            where = ".".join(str(p) for p in error.path) or "(top level)"
            raise Unfillable(where, f"the value on file does not satisfy the schema ({error.message[:160]})")
        return value

    def fillable(self, schema: dict[str, Any]) -> str:
        """ "" when `schema` can be filled, else the property that cannot."""
        try:
            self.fill(schema)
        except Unfillable as unfillable:
            return unfillable.path or "(top level)"
        return ""

    def from_identifiers(self, schema: dict[str, Any]) -> int:
        """How many of the schema's top-level properties an identifier the
        user gave fills: how much a tool is about the customer named."""
        properties = schema.get("properties") if isinstance(schema, dict) else None
        if not isinstance(properties, dict):
            return 0
        count = 0
        for name, sub in properties.items():
            description = sub.get("description", "") if isinstance(sub, dict) else ""
            picked = self._pick(str(name), str(description))
            if any(source.generic for source in picked[:1]):
                count += 1
        return count

    # -- one value per schema --------------------------------------------

    def _value(self, schema: object, name: str, description: str, root: dict[str, Any], depth: int) -> object:
        if depth > MAX_DEPTH:
            raise Unfillable(name, "the schema nests too deep")
        self._visited += 1
        if self._visited > MAX_PROPERTIES:
            raise Unfillable(name, f"the schema has more than {MAX_PROPERTIES} properties to fill")
        if not isinstance(schema, dict):
            raise Unfillable(name, "not a schema")
        if "$ref" in schema:
            return self._value(_resolve(root, schema["$ref"], name), name, description, root, depth + 1)
        description = str(schema.get("description") or description)
        if "const" in schema:
            return schema["const"]
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                return self._branches(schema[key], name, description, root, depth)
        if isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            return self._value(schema["allOf"][0], name, description, root, depth + 1)
        types = schema.get("type")
        types = [types] if isinstance(types, str) else list(types or ())
        concrete = [t for t in types if t != "null"]
        kind = concrete[0] if concrete else ("object" if "properties" in schema else "string")
        try:
            if kind == "object":
                return self._object(schema, name, root, depth)
            if kind == "array":
                return self._array(schema, name, description)
            return self._scalar(kind, schema, name, description)
        except Unfillable:
            if "null" in types:
                return None
            raise

    def _branches(self, branches: list[Any], name: str, description: str, root: dict[str, Any], depth: int) -> object:
        nullable = any(isinstance(b, dict) and b.get("type") == "null" for b in branches)
        failure = Unfillable(name, "no value on file fits it")
        for branch in branches:
            if isinstance(branch, dict) and branch.get("type") == "null":
                continue
            try:
                return self._value(branch, name, description, root, depth + 1)
            except Unfillable as unfillable:
                failure = unfillable
        if nullable:
            return None
        raise failure

    def _object(self, schema: dict[str, Any], name: str, root: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        out = {}
        for key, sub in properties.items():
            path = f"{name}.{key}" if name else str(key)
            try:
                out[key] = self._value(sub, path, "", root, depth + 1)
            except Unfillable:
                if key in required:
                    raise
        return out

    def _array(self, schema: dict[str, Any], name: str, description: str) -> list[Any]:
        given = schema.get("items")
        items: dict[str, Any] = given if isinstance(given, dict) else {"type": "string"}
        kind = items.get("type", "string")
        if kind not in ("string", "integer", "number"):
            raise Unfillable(name, "a list of objects is not filled from the records")
        listed = [s for s in self._pick(_last(name), description) if s.item]
        values = []
        for source in listed[:MAX_ITEMS]:
            text = f"{source.label}: {source.value}" if kind == "string" else source.value
            value = _converted(kind, items, text)
            if value is not None:
                values.append(value)
        if not values:
            raise Unfillable(name, "no items on file fit it")
        return values

    def _scalar(self, kind: str, schema: dict[str, Any], name: str, description: str) -> object:
        words = words_of(_last(name))
        if kind == "string" and words & ANSWER_WORDS and self._answer:
            return self._answer
        if kind == "string" and words & QUESTION_WORDS and self._question:
            return self._question
        for source in self._pick(_last(name), description):
            value = _converted(kind, schema, source.value)
            if value is not None:
                return value
        raise Unfillable(name, "no value on file fits it")

    def _pick(self, name: str, description: str) -> list[Source]:
        """The sources a property's name matches, best first: every word of
        the name in the label, fewest other words, most of the
        description's words; a generic name ("identifier") takes the user's
        identifiers, most precise first."""
        wanted = words_of(name) - _FILLER
        if not wanted:
            return []
        told = words_of(description) - _FILLER
        ranked = []
        for n, source in enumerate(self._sources):
            label = source.words
            if wanted <= label:
                ranked.append((0, len(label - wanted), -len(told & label), n, source))
            elif source.generic and wanted <= GENERIC_WORDS:
                ranked.append((1, 0, 0, n, source))
        return [entry[-1] for entry in sorted(ranked, key=lambda e: e[:4])]


def _last(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _converted(kind: str, schema: dict[str, Any], text: str) -> object:
    """`text` as the schema's type, or None when it does not say one."""
    if kind == "string":
        return _string(schema, text)
    if kind in ("integer", "number"):
        match = _NUMBER.match(text.strip())
        if match is None:
            return None
        number = float(match.group(1).replace(",", ""))
        if kind == "integer":
            return int(number) if number.is_integer() else None
        return int(number) if number.is_integer() else number
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in ("yes", "true", "active"):
            return True
        if lowered in ("no", "false", "inactive"):
            return False
        match = _NUMBER.fullmatch(lowered)
        return float(match.group(1).replace(",", "")) > 0 if match else None
    return None


def _string(schema: dict[str, Any], text: str) -> str | None:
    enum = schema.get("enum")
    if isinstance(enum, list):
        lowered = text.lower()
        named = [e for e in enum if isinstance(e, str) and e.lower() == lowered]
        named = named or sorted(
            (e for e in enum if isinstance(e, str) and e and re.search(rf"\b{re.escape(e.lower())}\b", lowered)),
            key=len,
            reverse=True,
        )
        return named[0] if named else None
    form = schema.get("format")
    if form == "date":
        match = _DATE.search(text)
        return match.group(0) if match else None
    if form == "date-time":
        match = _DATE_TIME.search(text)
        return match.group(0) if match else None
    return text


def _resolve(root: dict[str, Any], ref: object, name: str) -> dict[str, Any]:
    if ref == "#":
        return root
    if not isinstance(ref, str) or not ref.startswith("#/"):
        raise Unfillable(name, f"only local references are followed, not {str(ref)[:80]!r}")
    node: object = root
    for escaped in ref[2:].split("/"):
        part = escaped.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise Unfillable(name, f"reference {ref[:80]!r} names nothing in the schema")
        node = node[part]
    if not isinstance(node, dict):
        raise Unfillable(name, f"reference {ref[:80]!r} is not a schema")
    return node


# -- validation with RE2 patterns -----------------------------------------


def _pattern(validator: Any, pattern: str, instance: object, schema: object) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _re2(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: object
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _re2(pattern).search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _re2(pattern: str) -> Any:
    try:
        return re2.compile(pattern)
    except re2.error as error:
        raise Unfillable("", f"pattern {pattern[:80]!r} is not a regular expression RE2 accepts") from error


def _too_big(schema: object) -> bool:
    """More nodes than MAX_SCHEMA_NODES, counted without recursion and
    stopping as soon as the bound is passed."""
    pending, seen = [schema], 0
    while pending:
        node = pending.pop()
        seen += 1
        if seen > MAX_SCHEMA_NODES:
            return True
        if isinstance(node, dict):
            pending.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            pending.extend(v for v in node if isinstance(v, (dict, list)))
    return False


_Validator: Any = validators.extend(  # type: ignore[no-untyped-call]  # the stubs leave extend untyped
    Draft202012Validator, {"pattern": _pattern, "patternProperties": _pattern_properties}
)


MAX_SCHEMA_NODES = 4_096  # objects and lists in a schema; checking one costs time in its size


def _validator(schema: dict[str, Any]) -> Any:
    if _too_big(schema):
        raise Unfillable("", f"the schema has more than {MAX_SCHEMA_NODES} parts")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        where = ".".join(str(p) for p in error.path) or "(top level)"
        raise Unfillable(where, f"not a valid JSON schema ({error.message[:160]})") from error
    return _Validator(schema)
