"""PromptRegistry: named system prompts with immutable numbered versions
(template, the variables it uses, a note, when it was made), an active
pointer, activation, one-step rollback and an audit trail. A new store
starts with the built-in defaults as version 1."""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

import orjson

from services.optimizer.storage import OptimizerStore, statements
from services.runtime.agent_modes import MODE_CATEGORIES
from services.runtime.faults import InvalidArgument, NotFound

# What a template may use; the router fills them in.
VARIABLES = {"context": "the customer context block"}
MAX_TEMPLATE_CHARS = 20_000

_AGENT = (
    "You are the customer-data assistant of a credit-services call centre. "
    "Answer the agent's question about the customer using only the Tilores data below. "
    "Quote values exactly as they appear and mention the record id in brackets after each fact. "
    "If a value the question asks for is not in the data, say that it is not on file; never guess "
    "or invent customer data."
)
_CLIENT = (
    "You are the customer-service assistant of a credit-services company, chatting with one of its customers "
    "about their own account. Speak to them directly and plainly, without internal terms. Use only the account "
    "data below and quote amounts and dates exactly. Never mention record ids, agent names, campaigns or internal "
    "notes, and never discuss any other person. If no account has been found yet, ask for the e-mail address or "
    "client id on their account. If something they ask about is not on file, say so; never guess."
)
# What each category of a mode leads with.
_FOCUS = {
    "status": "the account: its status, product, enrollment and any cancellation",
    "credit": "credit: the bureau scores, the band, utilization, late payments and inquiries",
    "billing": "billing: the last and the next payment, the monthly fee, the balance and failed payments",
}


def _focused(base: str, category: str) -> str:
    return f"{base} Lead with {_FOCUS[category]}; still answer whatever else is asked.\n\n{{context}}"


DEFAULT_PROMPTS = {
    "customer": _AGENT + "\n\n{context}",
    "general": (
        "You are the customer-data assistant of a credit-services call centre. "
        "The question does not name a customer. Answer general questions briefly; to look up a customer, "
        "ask for their e-mail, client id, Salesforce contact id or phone number. Never invent customer data."
        "\n\n{context}"
    ),
    # The agent modes' prompts (services/runtime/agent_modes.py prompt_name).
    **{f"agent_{c}": _focused(_AGENT, c) for c in MODE_CATEGORIES},
    "client": _CLIENT + "\n\n{context}",
    **{f"client_{c}": _focused(_CLIENT, c) for c in MODE_CATEGORIES},
}


# The actor of the optimizer's own decisions (a cycle's versions, a promotion).
SELF = "optimizer"


@dataclass(frozen=True)
class PromptVersion:
    name: str
    version: int
    template: str
    variables: tuple[str, ...] = ()
    note: str = ""
    created_at: float = 0.0


@dataclass(frozen=True)
class AuditEntry:
    at: float
    action: str  # created, activated, rolled_back
    version: int
    previous_version: int | None
    detail: str
    actor: str = ""  # key/<id>, client/<name>, or optimizer


def template_variables(template: str) -> tuple[str, ...]:
    """The variables a template uses; InvalidArgument naming an unknown one
    or a lone brace."""
    if not template.strip():
        raise InvalidArgument("template must not be empty", field="template")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise InvalidArgument(f"template is longer than {MAX_TEMPLATE_CHARS} characters", field="template")
    try:
        names = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as error:
        raise InvalidArgument(f"template: {error} (write a literal brace as {{{{ or }}}})", field="template") from None
    for name in names:
        if name not in VARIABLES:
            known = ", ".join("{" + v + "}" for v in VARIABLES)
            raise InvalidArgument(f"template uses unknown variable {{{name}}}; known: {known}", field="template")
    return tuple(dict.fromkeys(names))


class PromptRegistry:
    def __init__(self, storage: OptimizerStore):
        self.storage = storage
        for name, template in DEFAULT_PROMPTS.items():
            with storage.transaction() as db:
                if db.execute(statements.HAS_ACTIVE_PROMPT, name=name).fetchone():
                    continue
                if not db.execute(statements.HAS_PROMPT_VERSIONS, name=name).fetchone():
                    storage.add_version(db, name, template, list(template_variables(template)), "built-in default")
                db.execute(statements.ACTIVATE_FIRST_VERSION, name=name)
                storage.audit(db, name, "activated", 1, None, "built-in default")

    def _row(self, row: tuple[Any, ...]) -> PromptVersion:
        name, version, template, variables, note, created_at = row
        return PromptVersion(name, version, template, tuple(orjson.loads(variables)), note, created_at)

    def active(self, name: str) -> PromptVersion:
        if not name:
            raise InvalidArgument("name is required", field="name")
        rows = self.storage.query(statements.ACTIVE_PROMPT, name=name)
        if not rows:
            raise NotFound(f"no prompt named {name!r}", field="name")
        return self._row(rows[0])

    def get(self, name: str, version: int) -> PromptVersion:
        rows = self.storage.query(statements.PROMPT_VERSION, name=name, version=version)
        if not rows:
            self.active(name)  # NOT_FOUND naming the prompt when the prompt itself is unknown
            raise NotFound(f"prompt {name!r} has no version {version}", field="version")
        return self._row(rows[0])

    def names(self) -> list[tuple[str, int, int, float]]:
        """Every prompt: (name, active version, versions, when its newest version was made)."""
        rows = self.storage.query(statements.PROMPTS)
        return [(name, int(active), int(count), float(at)) for name, active, count, at in rows]

    def versions(self, name: str) -> list[PromptVersion]:
        self.active(name)
        rows = self.storage.query(statements.PROMPT_VERSIONS, name=name)
        return [self._row(r) for r in rows]

    def history(self, name: str) -> list[AuditEntry]:
        self.active(name)
        rows = self.storage.query(statements.PROMPT_HISTORY, name=name)
        return [AuditEntry(*row) for row in rows]

    def create(
        self, name: str, template: str, note: str = "", activate: bool = False, actor: str = SELF
    ) -> PromptVersion:
        """A new version (a new prompt when the name is new); `actor` did it."""
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise InvalidArgument("name: letters, digits, '-' and '_' only", field="name")
        variables = template_variables(template)
        with self.storage.transaction() as db:
            version = self.storage.add_version(db, name, template, list(variables), note)
            self.storage.audit(db, name, "created", version, None, note, actor)
            if version == 1:
                db.execute(statements.ACTIVATE_FIRST_VERSION, name=name)
                self.storage.audit(db, name, "activated", 1, None, "first version", actor)
        if activate and version != 1:
            self.activate(name, version, "activated on creation", actor)
        return self.get(name, version)

    def activate(self, name: str, version: int, detail: str = "", actor: str = SELF) -> PromptVersion:
        target = self.get(name, version)
        with self.storage.transaction() as db:
            (previous,) = db.execute(statements.ACTIVE_VERSION, name=name).fetchone()
            if previous != version:
                db.execute(statements.SET_ACTIVE_VERSION, version=version, name=name)
                self.storage.audit(db, name, "activated", version, previous, detail, actor)
        return target

    def rollback_version(self, name: str) -> int | None:
        """The version a rollback would make active: the one active before
        the current one; None when there is none."""
        rows = self.storage.query(statements.VERSION_BEFORE, name=name, version=self.active(name).version)
        return int(rows[0][0]) if rows else None

    def rollback(self, name: str, detail: str = "", actor: str = SELF) -> PromptVersion:
        """Back to the version that was active before the current one."""
        current = self.active(name)
        with self.storage.transaction() as db:
            row = db.execute(statements.VERSION_BEFORE, name=name, version=current.version).fetchone()
            if row is None:
                raise InvalidArgument(f"prompt {name!r} has no earlier active version to roll back to", field="name")
            (previous,) = row
            db.execute(statements.SET_ACTIVE_VERSION, version=previous, name=name)
            self.storage.audit(db, name, "rolled_back", previous, current.version, detail, actor)
        return self.get(name, previous)
