"""RecordInsights: statistics over an entity's records, as Tilores'
recordInsights computes them. Fields are dot paths into a record, list
items addressed by number (`CREDIT_RESPONSE.CREDIT_SCORE.0.Value`). A path
that is missing gives null and nulls are skipped, so an unknown field name
gives an empty list or null, never an error. Distinctness ignores case unless
asked not to, and keeps the first value seen."""

from __future__ import annotations

import functools
import re
import statistics
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import re2


class InsightError(ValueError):
    """A computation the data cannot support, e.g. a sum over text."""


def path_value(record: Any, path: str) -> Any:
    value = record
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit():
            index = int(part)
            value = value[index] if index < len(value) else None
        else:
            return None
        if value is None:
            return None
    return value


def _key(value: Any, case_sensitive: bool) -> Any:
    if isinstance(value, str) and not case_sensitive:
        return value.lower()
    if isinstance(value, dict | list):
        return repr(value)
    return value


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool):
        raise InsightError(f"field {field!r} holds a Boolean, not a number")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        raise InsightError(f"field {field!r} holds {value!r}, which is not a number") from None


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp or a YYYY-MM-DD date; None when it is neither."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if _DATE_ONLY.match(text):
        text += "T00:00:00+00:00"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@functools.lru_cache(maxsize=64)
def _like(pattern: str, case_sensitive: bool) -> Any:
    """A caller's `likeRegex`, in RE2 syntax as Tilores (Go) reads it: time
    linear in the value, whatever the pattern."""
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        reason = error.args[0].decode(errors="replace") if error.args and isinstance(error.args[0], bytes) else error
        raise InsightError(f"likeRegex {pattern!r} is not a valid regular expression: {reason}") from None


def _matches(record: dict[str, Any], condition: dict[str, Any]) -> bool:
    field = condition["field"]
    value = path_value(record, field)
    case_sensitive = bool(condition.get("caseSensitive"))

    def text(v: Any) -> str:
        s = "" if v is None else str(v)
        return s if case_sensitive else s.lower()

    checks: list[bool] = []
    if "equals" in condition and condition["equals"] is not None:
        checks.append(value is not None and text(value) == text(condition["equals"]))
    if condition.get("isNull") is not None:
        checks.append((value is None) == bool(condition["isNull"]))
    if condition.get("startsWith") is not None:
        checks.append(value is not None and text(value).startswith(text(condition["startsWith"])))
    if condition.get("endsWith") is not None:
        checks.append(value is not None and text(value).endswith(text(condition["endsWith"])))
    if condition.get("likeRegex") is not None:
        checks.append(
            value is not None and _like(condition["likeRegex"], case_sensitive).search(str(value)) is not None
        )
    for name, compare in (
        ("lessThan", float.__lt__),
        ("lessEquals", float.__le__),
        ("greaterThan", float.__gt__),
        ("greaterEquals", float.__ge__),
    ):
        if condition.get(name) is not None:
            try:
                checks.append(value is not None and compare(_number(value, field), float(condition[name])))
            except InsightError:
                checks.append(False)
    for name, compare_times in (
        ("after", datetime.__gt__),
        ("since", datetime.__ge__),
        ("before", datetime.__lt__),
        ("until", datetime.__le__),
    ):
        if condition.get(name) is not None:
            when, bound = parse_time(value), parse_time(str(condition[name]))
            checks.append(when is not None and bound is not None and compare_times(when, bound))
    result = all(checks)
    return not result if condition.get("invert") else result


class RecordInsights:
    """Insights over a list of records (dicts), in their stored order."""

    def __init__(self, records: list[dict[str, Any]]):
        self.records = records

    # Narrowing: each gives a new RecordInsights.
    def filter(self, conditions: Iterable[dict[str, Any]]) -> RecordInsights:
        conditions = list(conditions)
        return RecordInsights([r for r in self.records if all(_matches(r, c) for c in conditions)])

    def sort(self, criteria: Iterable[dict[str, Any]]) -> RecordInsights:
        ordered = list(self.records)
        # Stable sorts applied from the last key to the first give a
        # multi-key sort; records without the value go last.
        for criterion in reversed(list(criteria)):
            field = criterion["field"]
            descending = criterion.get("direction") == "DESC"
            present = [r for r in ordered if path_value(r, field) is not None]
            missing = [r for r in ordered if path_value(r, field) is None]
            present.sort(key=lambda r: _sort_key(path_value(r, field)), reverse=descending)
            ordered = present + missing
        return RecordInsights(ordered)

    def limit(self, count: int, offset: int = 0) -> RecordInsights:
        if count < 0 or offset < 0:
            raise InsightError("limit count and offset must not be negative")
        return RecordInsights(self.records[offset : offset + count])

    # Values.
    def count(self) -> int:
        return len(self.records)

    def count_distinct(self, fields: list[str], case_sensitive: bool = False) -> int:
        seen = set()
        for record in self.records:
            values = tuple(_key(path_value(record, f), case_sensitive) for f in fields)
            if any(v is not None for v in values):
                seen.add(values)
        return len(seen)

    def first(self) -> dict[str, Any] | None:
        return self.records[0] if self.records else None

    def last(self) -> dict[str, Any] | None:
        return self.records[-1] if self.records else None

    def values(self, field: str) -> list[Any]:
        return [v for r in self.records if (v := path_value(r, field)) is not None]

    def values_distinct(self, field: str, case_sensitive: bool = False) -> list[Any]:
        return _distinct(self.values(field), case_sensitive)

    def flatten(self, field: str) -> list[Any]:
        out: list[Any] = []
        for value in self.values(field):
            out.extend(v for v in value if v is not None) if isinstance(value, list) else out.append(value)
        return out

    def flatten_distinct(self, field: str, case_sensitive: bool = False) -> list[Any]:
        return _distinct(self.flatten(field), case_sensitive)

    def frequency_distribution(
        self, field: str, case_sensitive: bool = False, top: int | None = None, direction: str = "DESC"
    ) -> list[dict[str, Any]]:
        values = self.values(field)
        counts: dict[Any, list[Any]] = {}
        for value in values:
            entry = counts.setdefault(_key(value, case_sensitive), [value, 0])
            entry[1] += 1
        total = len(values)
        rows = [{"value": v, "frequency": n, "percentage": n / total} for v, n in counts.values()]
        rows.sort(key=lambda row: row["frequency"], reverse=direction != "ASC")  # stable: first seen first
        return rows[:top] if top is not None and top >= 0 else rows

    def _numbers(self, field: str) -> list[float]:
        return [_number(v, field) for v in self.values(field)]

    def average(self, field: str) -> float | None:
        numbers = self._numbers(field)
        return statistics.fmean(numbers) if numbers else None

    def max(self, field: str) -> float | None:
        numbers = self._numbers(field)
        return max(numbers) if numbers else None

    def min(self, field: str) -> float | None:
        numbers = self._numbers(field)
        return min(numbers) if numbers else None

    def median(self, field: str) -> float | None:
        numbers = self._numbers(field)
        return statistics.median(numbers) if numbers else None

    def sum(self, field: str) -> float | None:
        numbers = self._numbers(field)
        return sum(numbers) if numbers else None

    def standard_deviation(self, field: str) -> float | None:
        numbers = self._numbers(field)
        return statistics.pstdev(numbers) if numbers else None

    def newest(self, field: str) -> dict[str, Any] | None:
        return self._by_time(field, max)

    def oldest(self, field: str) -> dict[str, Any] | None:
        return self._by_time(field, min)

    def _by_time(self, field: str, pick: Callable[..., Any]) -> dict[str, Any] | None:
        timed = [(t, n, r) for n, r in enumerate(self.records) if (t := parse_time(path_value(r, field))) is not None]
        if not timed:
            return None
        record: dict[str, Any] = pick(timed, key=lambda item: (item[0], -item[1] if pick is max else item[1]))[2]
        return record


def _distinct(values: list[Any], case_sensitive: bool) -> list[Any]:
    seen: dict[Any, Any] = {}
    for value in values:
        seen.setdefault(_key(value, case_sensitive), value)
    return list(seen.values())


def _sort_key(value: Any) -> tuple[Any, ...]:
    when = parse_time(value)
    if when is not None:
        return (0, when.timestamp(), "")
    try:
        return (0, _number(value, ""), "")
    except InsightError:
        return (1, 0.0, str(value).lower())
