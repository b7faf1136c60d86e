"""search_parameters: check a search request before any backend sees it, so
both backends refuse the same things with the same words. Names are the
Tilores SearchParams fields; empty values count as unset."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from services.runtime.faults import InvalidArgument

_DIGITS = re.compile(r"\d")


def search_parameters(raw: Mapping[str, str], known: Collection[str]) -> dict[str, str]:
    """The set parameters, stripped; InvalidArgument naming the field when a
    name is unknown, nothing is set, a name is half given or a phone number
    is too short to be one."""
    unknown = sorted(name for name in raw if name not in known)
    if unknown:
        raise InvalidArgument(
            f"unknown search parameter {unknown[0]!r} (not a Tilores SearchParams field)",
            field=f"parameters.{unknown[0]}",
        )
    params = {name: value.strip() for name, value in raw.items() if value is not None and value.strip()}
    if not params:
        raise InvalidArgument("at least one search parameter must be set", field="parameters")
    if bool(params.get("FIRST_NAME")) != bool(params.get("LAST_NAME")):
        missing = "LAST_NAME" if params.get("FIRST_NAME") else "FIRST_NAME"
        raise InvalidArgument("FIRST_NAME and LAST_NAME are searched together", field=f"parameters.{missing}")
    for name in ("PHONE_NUMBER", "PHONE_EXTERNAL"):
        if name in params and len(_DIGITS.findall(params[name])) < 10:
            raise InvalidArgument(f"{name} must hold at least 10 digits", field=f"parameters.{name}")
    return params
