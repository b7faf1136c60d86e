"""Agent modes without a server: slash commands are read from the
conversation and taken out of it, the request's own fields win, a
customer-facing caller stays in client mode, and each audience sees only
what its configuration allows."""

from __future__ import annotations

import pytest

from services.router.audience import Audience, AudienceError, Audiences
from services.router.mode_selection import AGENT_MODE_REFUSED, select_mode
from services.runtime.agent_modes import agents_text, command_of, help_text, mode_label, prompt_name
from services.runtime.conversation import Fact, Message
from services.runtime.settings import SettingsError


def _user(*texts: str) -> list[Message]:
    out = []
    for text in texts:
        out += [Message("user", text), Message("assistant", "ok")]
    return out[:-1]


def test_a_command_names_its_mode_category_and_the_question_after_it():
    command = command_of("/cs credit what is the score of edwina.hawthorne@example.com?")
    assert (command.name, command.category, command.rest) == (
        "cs", "credit", "what is the score of edwina.hawthorne@example.com?"
    )  # fmt: skip
    assert command.mode.agent_type == "zoho_cs_agent"
    assert command_of("/client").mode.agent_type == "client_chat_agent"
    assert command_of("/zoho billing").category == "billing"
    assert command_of("/help").name == "help"
    # Not commands: a date, a path, an ordinary question.
    assert command_of("2024/05/01 payment?") is None
    assert command_of("/usr/bin is a path") is None
    assert command_of("what is /cs?") is None


def test_without_a_command_the_conversation_is_the_agent_default():
    selection = select_mode(_user("score of edwina.hawthorne@example.com?"))
    assert (selection.mode, selection.category, selection.reply) == ("agent", "", "")
    assert prompt_name(selection.mode, selection.category, True) == "customer"
    assert prompt_name(selection.mode, selection.category, False) == "general"


def test_a_command_holds_for_the_rest_of_the_conversation_and_leaves_the_messages():
    selection = select_mode(_user("/client billing", "my e-mail is edwina.hawthorne@example.com, when do I pay next?"))
    assert (selection.mode, selection.category, selection.reply) == ("client", "billing", "")
    assert [m.content for m in selection.messages] == [
        "(/client billing)", "ok", "my e-mail is edwina.hawthorne@example.com, when do I pay next?"
    ]  # fmt: skip
    assert prompt_name("client", "billing", True) == "client_billing"
    assert mode_label("client", "billing") == "client/billing"
    # A later command switches again; a mode without a category drops it.
    later = select_mode(_user("/client billing", "hi", "/cs what is the status of 0012345678?"))
    assert (later.mode, later.category) == ("agent", "")
    assert later.messages[-1].content == "what is the status of 0012345678?"


def test_the_requests_own_mode_and_category_win():
    selection = select_mode(_user("/client billing", "hello"), mode="agent", category="credit")
    assert (selection.mode, selection.category) == ("agent", "credit")


def test_a_bare_command_help_and_agents_are_answered_by_the_router():
    assert select_mode(_user("/help")).reply == help_text()
    assert "/cs, /cst, /zoho" in help_text() and "status, credit, billing" in help_text()
    assert select_mode(_user("/agents")).reply == agents_text()
    assert "zoho_cs_agent" in agents_text() and "client_chat_agent" in agents_text()
    bare = select_mode(_user("/cst credit"))
    assert bare.reply.startswith("Call-centre agent mode, category credit.")
    assert "There is no command /foo." in select_mode(_user("/foo")).reply
    # A command before an earlier question does not answer the newest one.
    assert select_mode(_user("/help", "score of 0012345678?")).reply == ""


def test_a_customer_facing_caller_stays_in_client_mode():
    selection = select_mode(_user("/client", "fine", "/cs credit"), client_only=True)
    assert (selection.mode, selection.reply) == ("client", AGENT_MODE_REFUSED)
    quiet = select_mode(_user("/cs what about edwina.hawthorne@example.com?"), client_only=True)
    assert quiet.mode == "client" and quiet.category == ""
    assert select_mode(_user("hello"), client_only=True).mode == "client"


CALL = Fact("calls", "Call at 2024-05-01T10:00:00", "outbound, 312 s, agent jdoe, campaign Winback", "c-9")
TICKET = Fact(
    "tickets", "Ticket 4411", "Refund request, Open, category Billing, priority High, opened 2024-05-02", "z-1"
)
FACTS = [
    Fact("identity", "Name", "Edwina Hawthorne", "003A"),
    Fact("identity", "Salesforce contact id", "003A", "003A"),
    Fact("relationships", "Records in all", "7", "003A"),
    Fact("credit", "Credit risk level", "MODERATE", "tu-1"),
    Fact("credit", "TransUnion credit score (report of 2024-04-01)", "712", "tu-1"),
    CALL,
    TICKET,
]


def test_the_agent_sees_the_operational_record():
    agent = Audiences.bundled().of("agent")
    assert agent.shown(FACTS) == FACTS


def test_the_client_sees_their_account_without_internals():
    client = Audiences.bundled().of("client")
    shown = {f.label: f for f in client.shown(FACTS)}
    assert set(shown) == {
        "Name", "TransUnion credit score (report of 2024-04-01)", CALL.label, TICKET.label
    }  # fmt: skip
    assert shown[CALL.label].value == "outbound, 312 s"
    assert shown[TICKET.label].value == "Refund request, Open, opened 2024-05-02"
    assert all(f.record_id == "" for f in shown.values())
    assert client.own_account_only


def test_an_audiences_file_with_a_mistake_names_it():
    good = "audiences:\n  agent: {}\n  client: {record_ids: false}\n"
    assert Audiences.from_yaml(good).of("client") == Audience("client", record_ids=False)
    for text, named in (
        ("audiences:\n  agent: {}\n", "audiences.client"),
        ("audiences:\n  agent: {}\n  client: {}\n  robot: {}\n", "audiences.robot"),
        ("audiences:\n  agent: {}\n  client: {hide_topics: [weather]}\n", "audiences.client.hide_topics"),
        ("audiences:\n  agent: {shown: all}\n  client: {}\n", "audiences.agent.shown"),
        ("audiences:\n  agent: {record_ids: maybe}\n  client: {}\n", "audiences.agent.record_ids"),
    ):
        with pytest.raises(AudienceError, match=named):
            Audiences.from_yaml(text)


def test_audience_policy_path_replaces_the_bundled_file(tmp_path, monkeypatch):
    path = tmp_path / "audiences.yaml"
    path.write_text("audiences:\n  agent: {}\n  client: {record_ids: false, hide_topics: [calls]}\n")
    monkeypatch.setenv("AUDIENCE_POLICY_PATH", str(path))
    assert Audiences.from_env().of("client").shown([CALL]) == []
    path.write_text("audiences: [agent]\n")
    with pytest.raises(SettingsError, match="AUDIENCE_POLICY_PATH: expected a mapping 'audiences'"):
        Audiences.from_env()
