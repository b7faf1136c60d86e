"""A moment as REST shows it: ISO 8601 in UTC with milliseconds
(`2026-12-06T09:44:07.250Z`), from the seconds since the epoch the domain
code keeps. What every JSON answer and report of the mesh writes for a time."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_of(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
