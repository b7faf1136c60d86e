"""Query strings of GET routes: only the parameters a route names, each at
most once, numbers read as numbers, and a 400 naming the parameter for
anything else."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs

from gateway.json_body import check_number
from gateway.openai_errors import OpenAIError


def query_params(text: str, allowed: tuple[str, ...]) -> dict[str, str]:
    try:
        parsed = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=len(allowed) + 1)
    except ValueError:
        raise OpenAIError(400, "The query string is malformed.", code="invalid_value") from None
    for name, values in parsed.items():
        if name not in allowed:
            raise OpenAIError(
                400, f"Unknown parameter: '{name}' (one of {', '.join(allowed)}).", param=name, code="unknown_parameter"
            )
        if len(values) > 1:
            raise OpenAIError(400, f"Invalid '{name}': given more than once.", param=name, code="invalid_value")
    return {name: values[0] for name, values in parsed.items()}


def number_param(query: dict[str, str], name: str, low: float, high: float, what: str) -> float:
    """The parameter as a number between `low` and `high` (0 when absent)."""
    text = query.get(name, "")
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise OpenAIError(400, f"Invalid '{name}': expected {what}.", param=name, code="invalid_type") from None
    return check_number(name, value, low, high)


def moment_param(query: dict[str, str], name: str) -> float:
    """The parameter as seconds since the epoch (0 when absent), given as
    an ISO 8601 time (`2026-12-06T09:44:07Z`, as answers show times; no
    zone means UTC) or as seconds since the epoch."""
    text = query.get(name, "")
    if not text or not text[:1].isdigit() or text.replace(".", "", 1).isdigit():
        return number_param(query, name, 0, 1e11, "an ISO 8601 time or seconds since the epoch")
    if len(text) > 40:
        raise OpenAIError(400, f"Invalid '{name}': expected an ISO 8601 time.", param=name, code="invalid_value")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise OpenAIError(
            400, f"Invalid '{name}': expected an ISO 8601 time.", param=name, code="invalid_value"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return check_number(name, moment.timestamp(), 0, 1e11)
