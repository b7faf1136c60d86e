"""A SQL statement written once, with `:named` parameters, in the spelling
of each driver the optimizer's stores use: sqlite3 takes `:name` as
written, psycopg takes `%(name)s` (and `%%` for a literal `%`). The
translation is made once, when the statement is defined."""

from __future__ import annotations

import functools
import re

# A quoted literal is kept as it is; a `:name` outside one is a parameter
# (`::type` casts and `a:b` inside identifiers are not).
_PARAMETER = re.compile(r"'[^']*'|(?<![:\w]):([A-Za-z_]\w*)")


class Statement:
    """One statement of the part of SQL that SQLite and PostgreSQL share."""

    __slots__ = ("postgres", "sqlite", "text")

    def __init__(self, text: str):
        self.text = text
        self.sqlite = text
        self.postgres = _PARAMETER.sub(_psycopg, text.replace("%", "%%"))

    def __repr__(self) -> str:
        return f"Statement({self.text!r})"

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def of(text: str) -> Statement:
        """An ad-hoc statement (an operator's or a test's query), spelled
        once per distinct text."""
        return Statement(text)


def _psycopg(match: re.Match[str]) -> str:
    name = match.group(1)
    return match.group(0) if name is None else f"%({name})s"
