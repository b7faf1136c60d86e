"""Agent modes, defined once: who the assistant is talking to and what it
focuses on. The gateway checks the names a request gives, the router picks
the mode of a conversation and the prompt it answers with, the optimizer
keeps a prompt per mode and category and groups quality by them.

A conversation is in one of two modes:
- agent (`/cs`, `/cst`, `/zoho`; agent_type `zoho_cs_agent`): a call-centre
  agent, who sees the operational record. The default.
- client (`/client`; agent_type `client_chat_agent`): the customer
  themselves, who is shown only what a customer may see about their own
  account (see services/router/audiences.yaml).
Each mode has the categories status, credit and billing. A slash command at
the start of a user message switches the mode (and category) for the rest
of the conversation; `/help` and `/agents` say what exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import re2

AGENT = "agent"
CLIENT = "client"
MODE_CATEGORIES = ("status", "credit", "billing")


@dataclass(frozen=True)
class Mode:
    name: str  # agent or client
    agent_type: str  # the original assistant's name for it
    commands: tuple[str, ...]
    title: str
    description: str


MODES = (
    Mode(
        AGENT,
        "zoho_cs_agent",
        ("cs", "cst", "zoho"),
        "Call-centre agent",
        "answers an agent about any customer from the whole operational record: calls with agent names and "
        "campaigns, tickets with their internals, record ids to cite",
    ),
    Mode(
        CLIENT,
        "client_chat_agent",
        ("client",),
        "Customer chat",
        "talks with a customer about their own account in plain words: no agent names, campaigns, record ids, "
        "internal notes or anyone else's data",
    ),
)
MODE_BY_NAME = {m.name: m for m in MODES}
MODE_BY_COMMAND = {c: m for m in MODES for c in m.commands}
# What a request's agent_type may say: the original's names and the modes' own.
MODE_BY_AGENT_TYPE = {**{m.agent_type: m for m in MODES}, **{m.name: m for m in MODES}, **MODE_BY_COMMAND}
HELP, AGENTS = "help", "agents"
# What a prompt's name may be (the registry's rule).
PROMPT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

# RE2: read at the start of user text of any length, in linear time.
_COMMAND = re2.compile(r"(?i)\s*/([A-Za-z_]+)(?::|\s+|$)(?:(status|credit|billing)\b)?[\s:,.-]*")


@dataclass(frozen=True)
class Command:
    """A slash command at the start of a message and the words after it."""

    name: str  # a mode's command, help, agents, or an unknown word
    category: str
    rest: str

    @property
    def mode(self) -> Mode | None:
        return MODE_BY_COMMAND.get(self.name)


def command_of(text: str) -> Command | None:
    """The slash command a message starts with, if any."""
    match = _COMMAND.match(text)
    if match is None:
        return None
    return Command(match.group(1).lower(), (match.group(2) or "").lower(), text[match.end() :].strip())


def prompt_name(mode: str, category: str, customer: bool) -> str:
    """The registry's prompt for a mode and category: the agent mode keeps
    the long-standing `customer` and `general` prompts."""
    if mode == CLIENT:
        return f"client_{category}" if category else "client"
    if not customer:
        return "general"
    return f"agent_{category}" if category else "customer"


def mode_label(mode: str, category: str) -> str:
    """How quality groups a turn: `agent`, `client/billing`."""
    return f"{mode}/{category}" if category else mode


def help_text() -> str:
    lines = ["Commands (at the start of a message; they hold for the rest of the conversation):"]
    for mode in MODES:
        commands = ", ".join(f"/{c}" for c in mode.commands)
        lines.append(f"- {commands}: {mode.title} mode ({mode.agent_type}).")
    lines.append(
        f"- Add a category after the mode to focus on it: {', '.join(MODE_CATEGORIES)} (for example /cs credit)."
    )
    lines.append("- /agents: the modes and what each may show. /help: this list.")
    lines.append(
        "Without a command the conversation is in call-centre agent mode. Name the customer by e-mail, "
        "client id, Salesforce contact id or phone number."
    )
    return "\n".join(lines)


def agents_text() -> str:
    lines = ["Modes:"]
    for mode in MODES:
        commands = ", ".join(f"/{c}" for c in mode.commands)
        lines.append(f"- {mode.agent_type} ({commands}): {mode.title}; {mode.description}.")
    lines.append(f"Categories in every mode: {', '.join(MODE_CATEGORIES)}.")
    return "\n".join(lines)
