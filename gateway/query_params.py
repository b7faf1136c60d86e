"""Query strings of GET routes: only the parameters a route names, each at
most once, numbers read as numbers, and a 400 naming the parameter for
anything else."""

from __future__ import annotations

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
