"""ModeSelection: the mode and category a conversation is in, read from the
request and the slash commands of its user messages (the router keeps no
state: a chat client sends the whole conversation each turn), the
conversation with the commands taken out, and the router's own reply where
the newest message is a command rather than a question."""

from __future__ import annotations

from dataclasses import dataclass, replace

from services.runtime.agent_modes import (
    AGENT,
    AGENTS,
    CLIENT,
    HELP,
    MODE_BY_NAME,
    Command,
    agents_text,
    command_of,
    help_text,
)
from services.runtime.conversation import Message

# The customer-facing chat tried to switch to an agent's mode.
AGENT_MODE_REFUSED = (
    "This chat is for customers, so it stays in customer chat mode. I can help you with your own account: "
    "your status, your credit and your billing."
)
# A conversation about the customer's own account named someone else.
OTHER_CUSTOMER_REFUSED = (
    "I can only help with your own account, so I can't look up or share anything about anyone else. "
    "Ask me about your own status, credit or billing."
)


@dataclass(frozen=True)
class ModeSelection:
    mode: str  # agent or client
    category: str  # status, credit, billing or ""
    messages: list[Message]  # the conversation with the commands taken out
    reply: str = ""  # set: the router answers the newest message itself


def select_mode(
    messages: list[Message], mode: str = "", category: str = "", client_only: bool = False
) -> ModeSelection:
    """`mode` and `category` as the request names them win over commands;
    `client_only` (a customer-facing caller) keeps the conversation in
    client mode whatever it says."""
    commanded, commanded_category = "", ""
    last_user = max((n for n, m in enumerate(messages) if m.role == "user"), default=-1)
    reply = ""
    cleaned = []
    for n, message in enumerate(messages):
        command = command_of(message.content) if message.role == "user" else None
        if command is None:
            cleaned.append(message)
            continue
        if command.mode is not None and not (client_only and command.mode.name != CLIENT):
            commanded, commanded_category = command.mode.name, command.category
        cleaned.append(replace(message, content=command.rest or _switched(command.name, command.category)))
        if n == last_user:
            reply = _command_reply(command, client_only)
    chosen = CLIENT if client_only else mode or commanded or AGENT
    if not category and chosen == commanded:
        category = commanded_category
    return ModeSelection(chosen, category, cleaned, reply)


def _switched(name: str, category: str) -> str:
    """What an earlier command said, for the model's view of the conversation."""
    return f"(/{name}{' ' + category if category else ''})"


def _command_reply(command: Command, client_only: bool) -> str:
    """The router's answer when the newest message is only a command (or
    an unknown one, or one this caller may not use)."""
    if command.name == HELP:
        return help_text()
    if command.name == AGENTS:
        return agents_text()
    mode = command.mode
    if mode is None:
        return f"There is no command /{command.name}.\n{help_text()}"
    if client_only and mode.name != CLIENT:
        return AGENT_MODE_REFUSED
    if command.rest:
        return ""  # a command with a question: the question is answered
    focus = f", category {command.category}" if command.category else ""
    if mode.name == CLIENT:
        ask = "Tell me the e-mail address or client id on your account and what you would like to know."
    else:
        ask = "Ask about a customer by e-mail, client id, Salesforce contact id or phone number."
    return f"{MODE_BY_NAME[mode.name].title} mode{focus}. {ask}"
