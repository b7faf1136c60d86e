"""Audience: what the person on the other side of a conversation may be
shown of a customer's record, by mode. The agent sees the operational
record; the customer sees their own account without internals. Like the
field policy it is configuration (services/router/audiences.yaml, or the
file AUDIENCE_POLICY_PATH names), read once at start.

AUDIENCE_POLICY_PATH  the audiences file (default: the bundled audiences.yaml)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from services.runtime.agent_modes import MODE_BY_NAME
from services.runtime.conversation import Fact
from services.runtime.settings import SettingsError, env_str
from services.runtime.topics import TOPIC_NAMES

BUNDLED = Path(__file__).with_name("audiences.yaml")
_FIELDS = {"record_ids", "own_account_only", "hide_topics", "hide_labels", "hide_value_parts"}


class AudienceError(ValueError):
    """The audiences file is malformed; the message names the entry."""


@dataclass(frozen=True)
class Audience:
    name: str
    record_ids: bool = True
    own_account_only: bool = False
    hide_topics: frozenset[str] = frozenset()
    hide_labels: tuple[str, ...] = ()
    hide_value_parts: tuple[str, ...] = ()

    def shown(self, facts: list[Fact]) -> list[Fact]:
        """The facts this audience may see, values trimmed of hidden parts."""
        if self.record_ids and not (self.hide_topics or self.hide_labels or self.hide_value_parts):
            return facts  # the whole record: nothing to copy
        out = []
        for fact in facts:
            if fact.topic in self.hide_topics or fact.label.startswith(self.hide_labels):
                continue
            value = self._trimmed(fact.value)
            if not value:
                continue
            record_id = fact.record_id if self.record_ids else ""
            same = value == fact.value and record_id == fact.record_id
            out.append(fact if same else Fact(fact.topic, fact.label, value, record_id, fact.pii_kind))
        return out

    def _trimmed(self, value: str) -> str:
        if not self.hide_value_parts or (", " not in value and " " not in value):
            return value
        parts = [p for p in value.split(", ") if p.split(" ", 1)[0].lower() not in self.hide_value_parts]
        return ", ".join(parts)


@dataclass(frozen=True)
class Audiences:
    by_mode: dict[str, Audience]

    def of(self, mode: str) -> Audience:
        return self.by_mode[mode]

    @classmethod
    def from_yaml(cls, text: str) -> Audiences:
        data = yaml.safe_load(text) or {}
        entries = data.get("audiences") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            raise AudienceError("expected a mapping 'audiences' of mode to audience")
        unknown = sorted(set(entries) - set(MODE_BY_NAME))
        if unknown:
            raise AudienceError(f"audiences.{unknown[0]}: unknown mode; modes: {', '.join(MODE_BY_NAME)}")
        missing = sorted(set(MODE_BY_NAME) - set(entries))
        if missing:
            raise AudienceError(f"audiences.{missing[0]}: every mode needs an audience")
        return cls({mode: _audience(mode, entry) for mode, entry in entries.items()})

    @classmethod
    def bundled(cls) -> Audiences:
        return cls.from_yaml(BUNDLED.read_text())

    @classmethod
    def from_env(cls) -> Audiences:
        path = env_str("AUDIENCE_POLICY_PATH")
        try:
            return cls.from_yaml(Path(path).read_text()) if path else cls.bundled()
        except (OSError, AudienceError, yaml.YAMLError) as error:
            raise SettingsError(f"AUDIENCE_POLICY_PATH: {error}") from None


def _audience(mode: str, entry: object) -> Audience:
    where = f"audiences.{mode}"
    if not isinstance(entry, dict):
        raise AudienceError(f"{where}: expected a mapping")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise AudienceError(f"{where}.{unknown[0]}: unknown field; fields: {', '.join(sorted(_FIELDS))}")
    for flag in ("record_ids", "own_account_only"):
        if not isinstance(entry.get(flag, False), bool):
            raise AudienceError(f"{where}.{flag}: expected true or false")

    def strings(name: str) -> tuple[str, ...]:
        value = entry.get(name) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise AudienceError(f"{where}.{name}: expected a list of non-empty strings")
        return tuple(value)

    topics = strings("hide_topics")
    bad = next((t for t in topics if t not in TOPIC_NAMES), None)
    if bad is not None:
        raise AudienceError(f"{where}.hide_topics: unknown topic {bad!r}; topics: {', '.join(TOPIC_NAMES)}")
    return Audience(
        mode,
        record_ids=entry.get("record_ids", True),
        own_account_only=entry.get("own_account_only", False),
        hide_topics=frozenset(topics),
        hide_labels=strings("hide_labels"),
        hide_value_parts=tuple(p.lower() for p in strings("hide_value_parts")),
    )
