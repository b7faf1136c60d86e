"""One chat turn with fake adapters, no server: the customer found by
e-mail becomes the context the model sees, the model's data-tool calls are
run and answered, a failure before any word is raised and one after ends
the stream, and every turn is recorded."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from services.router.lookup_limit import LookupLimitReached
from services.router.mode_selection import AGENT_MODE_REFUSED
from services.router.ports import CustomerMatch, CustomerProfile, ModelInfo, NoSuchPrompt, Prompt
from services.router.tools import ToolRunner
from services.router.turn import Turn, TurnRequest
from services.runtime.conversation import Fact, Finish, Message, StreamError, Tool, ToolCall, ToolCallDelta, Usage
from services.runtime.faults import NotFound, Unavailable
from services.runtime.field_policy import FieldPolicy

EDWINA = CustomerProfile(
    entity_id="e-1",
    customer_name="Edwina Hawthorne",
    sections={
        "identity": (
            Fact("identity", "Name", "Edwina Hawthorne", "003A"),
            Fact("identity", "Date of birth", "1984-06-12", "003A", "date_of_birth"),
        ),
        "status": (Fact("status", "Account status", "Active", "003A"),),
    },
    credit={"entity_id": "e-1", "bureaus": [], "assessment": {"status": "scored", "score": 712}},
)


class FakeCustomers:
    def __init__(self):
        self.searches: list[dict] = []

    async def find(self, parameters, tenant, timeout_s):
        self.searches.append(parameters)
        if parameters.get("EMAIL") == "edwina.hawthorne@example.com":
            return [CustomerMatch("e-1", ())]
        return []

    async def profile(self, entity_id, tenant, timeout_s):
        return EDWINA


class FakePrompts:
    async def prompt(self, name, conversation_id, timeout_s, version=0):
        return Prompt(name, 1, f"[{name} prompt]\n{{context}}")


class FakeModels:
    async def models(self):
        return {
            "cloud": ModelInfo("cloud", "openai", 128000, True, ("offline",)),
            "offline": ModelInfo("offline", "offline", 32768, False, ()),
        }


class FakeAnswers:
    def key(self, call):
        return f"answer:{len(call.messages)}"

    async def get(self, tenant, key):
        return None

    def keep(self, tenant, key, answer):
        pass


class FakeOutcomes:
    def __init__(self):
        self.posted = []

    def post(self, outcome):
        self.posted.append(outcome)


class FakeStream:
    def __init__(self, events, model):
        self._events = events
        self.provider_ms = 5.0
        self.model = model

    async def events(self):
        for event in self._events:
            if isinstance(event, Exception):
                raise event
            await asyncio.sleep(0)
            yield event


class FakeGeneration:
    """Answers each call with the next scripted list of events."""

    def __init__(self, *scripts):
        self._scripts = list(scripts)
        self.calls = []

    def open(self, call, timeout_s):
        self.calls.append(call)
        return FakeStream(self._scripts.pop(0), call.model)


class FakeAccess:
    """The lookup limit and the access log: admits up to `limit` customers."""

    def __init__(self, limit: int = 10):
        self.limit = limit
        self.admitted: list[str] = []
        self.records: list[tuple[list[str], str, set[str]]] = []

    async def admit(self, entity_ids):
        new = [e for e in entity_ids if e not in self.admitted]
        if len(self.admitted) + len(new) > self.limit:
            raise LookupLimitReached("key/desk-7 has looked at 0 different customers this hour, the limit is 0")
        self.admitted += new

    def record(self, entity_ids, action, field_kinds):
        self.records.append((list(entity_ids), action, set(field_kinds)))


class Clients:
    def __init__(self, generation):
        self.access = FakeAccess()
        self.customers = FakeCustomers()
        self.prompts = FakePrompts()
        self.models = FakeModels()
        self.answers = FakeAnswers()
        self.outcomes = FakeOutcomes()
        self.generation = generation


def _turn(clients: Clients, model: str, question: str) -> Turn:
    policy = FieldPolicy.bundled()
    request = TurnRequest(model=model, messages=[Message("user", question)], completion_id="chatcmpl-1")
    return Turn(request, clients, policy, ToolRunner(clients.customers, policy, clients.access), lambda: 10.0)


async def _events(turn: Turn) -> list:
    return [event async for event in turn.events()]


async def test_the_customer_becomes_the_context_the_model_sees_masked_for_its_provider():
    answer = ["Edwina ", "is Active."]
    clients = Clients(FakeGeneration([*answer, Finish("stop", "cloud", "openai"), Usage(10, 3)]))
    events = await _events(_turn(clients, "cloud", "Status of edwina.hawthorne@example.com?"))
    assert "".join(e for e in events if type(e) is str) == "Edwina is Active."
    assert events[-2:] == [Finish("stop", "cloud", "openai"), Usage(10, 3)]
    [call] = clients.generation.calls
    system = call.messages[0].content
    assert system.startswith("[customer prompt]") and "Account status: Active (record 003A)" in system
    assert "1984-06-12" not in system and "[withheld: date of birth]" in system  # a cloud model may not see it
    assert call.grounding.status == "found" and call.tools[0].name == "search_customer"
    assert call.tools_optional  # offered, not needed: a fallback without tools answers anyway
    [outcome] = clients.outcomes.posted
    assert (outcome.completion_id, outcome.error, outcome.answer) == ("chatcmpl-1", False, "Edwina is Active.")
    # On record: which customer the turn looked at and the kinds of data, no values.
    [(entities, action, kinds)] = clients.access.records
    assert (entities, action) == (["e-1"], "chat.turn")
    assert {"identity", "status", "date_of_birth"} <= kinds and not any("1984" in k for k in kinds)


async def test_the_models_data_tool_calls_are_run_and_answered():
    lookup = '{"query": "edwina.hawthorne@example.com"}'
    clients = Clients(
        FakeGeneration(
            [ToolCallDelta(0, "call-1", "search_customer", lookup), Finish("tool_calls"), Usage(5, 1)],
            ["Found her.", Finish("stop"), Usage(7, 2)],
        )
    )
    events = await _events(_turn(clients, "cloud", "Who is she?"))
    assert [e for e in events if type(e) is str] == ["Found her."]
    assert events[-1] == Usage(12, 3)  # both rounds
    second = clients.generation.calls[1]
    assert second.messages[-2].tool_calls[0].name == "search_customer"
    result = orjson.loads(second.messages[-1].content)
    assert result["customers"][0]["entity_id"] == "e-1" and second.messages[-1].tool_call_id == "call-1"
    assert clients.access.records == [(["e-1"], "tool.search_customer", {"identity", "contact"})]


async def test_a_customer_beyond_the_lookup_limit_is_refused_before_its_data_is_read():
    clients = Clients(FakeGeneration(["never asked"]))
    clients.access.limit = 0
    read = []
    clients.customers.profile = lambda *args: read.append(args)  # would be called to read the data
    with pytest.raises(LookupLimitReached, match="the limit is 0"):
        await _events(_turn(clients, "offline", "Status of edwina.hawthorne@example.com?"))
    assert read == [] and clients.access.records == [] and clients.generation.calls == []


async def test_a_failure_before_any_word_is_raised_and_after_it_ends_the_stream():
    clients = Clients(FakeGeneration([Unavailable("the model service is away")]))
    with pytest.raises(Unavailable):
        await _events(_turn(clients, "offline", "hello"))
    assert clients.outcomes.posted[-1].error
    clients = Clients(FakeGeneration(["Half an ", Unavailable("the stream broke")]))
    events = await _events(_turn(clients, "offline", "hello"))
    assert events == ["Half an ", StreamError("UNAVAILABLE", "the stream broke")]


async def test_an_unknown_e_mail_is_no_match_and_no_model_sees_a_customer():
    clients = Clients(FakeGeneration(["No customer matches.", Finish("stop"), Usage(1, 1)]))
    await _events(_turn(clients, "offline", "Status of nobody@example.com?"))
    [call] = clients.generation.calls
    assert call.grounding.status == "not_found" and "no customer matches" in call.messages[0].content
    assert not call.tools  # the offline model calls no tools


# -- agent modes -------------------------------------------------------------

CALL = Fact("calls", "Call at 2024-05-01T10:00:00", "outbound, 312 s, agent jdoe, campaign Winback", "c-9")
WITH_CALLS = CustomerProfile(
    entity_id="e-1",
    customer_name="Edwina Hawthorne",
    sections={**EDWINA.sections, "calls": (CALL,)},
    credit=EDWINA.credit,
)


class TwoCustomers(FakeCustomers):
    """Edwina, and someone else the client must never be shown."""

    async def find(self, parameters, tenant, timeout_s):
        self.searches.append(parameters)
        if parameters.get("EMAIL") == "edwina.hawthorne@example.com" or parameters.get("CLIENT_ID") == "1002003001":
            return [CustomerMatch("e-1", ())]
        if parameters.get("EMAIL") == "someone.else@example.com":
            return [CustomerMatch("e-2", ())]
        return []

    async def profile(self, entity_id, tenant, timeout_s):
        assert entity_id == "e-1", "only Edwina's data may be read"
        return WITH_CALLS


def _conversation(clients: Clients, *texts: str, **fields) -> Turn:
    policy = FieldPolicy.bundled()
    messages = []
    for text in texts:
        messages += [Message("user", text), Message("assistant", "Noted.")]
    request = TurnRequest(model="cloud", messages=messages[:-1], completion_id="chatcmpl-2", **fields)
    return Turn(request, clients, policy, ToolRunner(clients.customers, policy, clients.access), lambda: 10.0)


async def test_the_client_mode_shows_the_customer_their_own_account_without_internals():
    clients = Clients(FakeGeneration(["You pay monthly.", Finish("stop", "cloud", "openai"), Usage(9, 4)]))
    clients.customers = TwoCustomers()
    await _events(_conversation(clients, "/client billing", "I am edwina.hawthorne@example.com. When did you call?"))
    [call] = clients.generation.calls
    system = call.messages[0].content
    assert system.startswith("[client_billing prompt]")
    assert "Call at 2024-05-01T10:00:00: outbound, 312 s" in system
    assert "jdoe" not in system and "Winback" not in system and "record" not in system
    assert call.messages[1].content == "(/client billing)"  # the command is not shown as a question
    assert call.tools == ()  # no data tool that could search anyone else
    assert call.grounding.focus == ("billing",)
    [outcome] = clients.outcomes.posted
    assert outcome.mode == "client/billing" and outcome.prompt.name == "client_billing"


async def test_the_agent_mode_sees_the_same_call_with_its_agent_and_campaign():
    clients = Clients(FakeGeneration(["Called.", Finish("stop"), Usage(1, 1)]))
    clients.customers = TwoCustomers()
    await _events(_conversation(clients, "/cs credit when did we call edwina.hawthorne@example.com?"))
    system = clients.generation.calls[0].messages[0].content
    assert system.startswith("[agent_credit prompt]")
    assert "outbound, 312 s, agent jdoe, campaign Winback (record c-9)" in system
    assert clients.outcomes.posted[0].mode == "agent/credit"


@pytest.mark.parametrize("other", ["someone.else@example.com", "nobody.at.all@example.com"])
async def test_a_client_asking_about_anyone_else_is_refused_and_shown_nothing(other):
    clients = Clients(FakeGeneration())
    clients.customers = TwoCustomers()
    turn = _conversation(
        clients, "/client", "my e-mail is edwina.hawthorne@example.com", f"what is the credit score of {other}?"
    )
    events = await _events(turn)
    text = "".join(e for e in events if type(e) is str)
    assert text.startswith("I can only help with your own account")
    assert other not in text and "Edwina" not in text
    assert events[-2:] == [Finish("stop", "cloud"), Usage(0, 0)]
    assert clients.generation.calls == [] and clients.access.records == [] and clients.outcomes.posted == []


async def test_a_client_may_name_their_own_account_again_by_another_identifier():
    clients = Clients(FakeGeneration(["Yes.", Finish("stop"), Usage(1, 1)]))
    clients.customers = TwoCustomers()
    turn = _conversation(
        clients, "/client", "I am edwina.hawthorne@example.com", "and my client id is 1002003001, am I active?"
    )
    await _events(turn)
    assert clients.generation.calls[0].grounding.customer_name == "Edwina Hawthorne"
    assert clients.access.records[0][0] == ["e-1"]


EDWINA_BOUND = {"customer": "edwina.hawthorne@example.com"}


async def test_a_client_key_cannot_switch_to_the_agent_mode_by_a_command():
    clients = Clients(FakeGeneration(["Hello.", Finish("stop"), Usage(1, 1)]))
    clients.customers = TwoCustomers()
    events = await _events(_conversation(clients, "/cs when did we call edwina.hawthorne@example.com?", **EDWINA_BOUND))
    assert "".join(e for e in events if type(e) is str) == AGENT_MODE_REFUSED
    assert clients.generation.calls == []
    # The question after the refused command is answered in client mode.
    turn = _conversation(clients, "/cs", "when did you call edwina.hawthorne@example.com?", **EDWINA_BOUND)
    await _events(turn)
    system = clients.generation.calls[0].messages[0].content
    assert system.startswith("[client prompt]") and "jdoe" not in system


async def test_a_bound_customer_is_answered_about_without_naming_themselves():
    clients = Clients(FakeGeneration(["Called.", Finish("stop"), Usage(1, 1)]))
    clients.customers = TwoCustomers()
    await _events(_conversation(clients, "when did you last call me?", **EDWINA_BOUND))
    [call] = clients.generation.calls
    assert call.grounding.customer_name == "Edwina Hawthorne" and call.tools == ()
    assert clients.access.records[0][0] == ["e-1"]


@pytest.mark.parametrize(
    "said",
    [
        "I am someone.else@example.com. What is my credit score?",  # another customer
        "I am nobody.at.all@example.com, what is my date of birth?",  # nobody: the same refusal
        "I am edwina.hawthorne@example.com, client id 2000038",  # her, and a client id of nobody here
        "/client I am someone.else@example.com",
    ],
)
async def test_a_bound_customer_naming_anyone_else_is_refused_and_shown_nothing(said):
    clients = Clients(FakeGeneration())
    clients.customers = TwoCustomers()
    events = await _events(_conversation(clients, said, **EDWINA_BOUND))
    text = "".join(e for e in events if type(e) is str)
    assert text.startswith("I can only help with your own account")
    assert clients.generation.calls == [] and clients.access.records == []


async def test_a_bound_customer_may_name_their_own_account_by_another_identifier():
    clients = Clients(FakeGeneration(["Yes.", Finish("stop"), Usage(1, 1)]))
    clients.customers = TwoCustomers()
    await _events(_conversation(clients, "my client id is 1002003001, am I active?", **EDWINA_BOUND))
    assert clients.generation.calls[0].grounding.customer_name == "Edwina Hawthorne"


async def test_a_token_naming_nobody_finds_no_account_and_shows_nothing():
    clients = Clients(FakeGeneration(["None.", Finish("stop"), Usage(1, 1)]))
    clients.customers = TwoCustomers()
    await _events(_conversation(clients, "what is my balance?", customer="gone@example.com"))
    assert clients.access.records == []
    assert all("Edwina" not in m.content for call in clients.generation.calls for m in call.messages)


async def test_help_is_answered_without_a_model():
    clients = Clients(FakeGeneration())
    events = await _events(_conversation(clients, "/help"))
    assert "".join(e for e in events if type(e) is str).startswith("Commands (at the start of a message")
    assert clients.generation.calls == [] and clients.outcomes.posted == []


async def test_an_unknown_prompt_id_is_an_error_naming_the_field():
    class NoSuchNamedPrompt(FakePrompts):
        async def prompt(self, name, conversation_id, timeout_s, version=0):
            if name == "nope":
                raise NoSuchPrompt("no prompt named 'nope'")
            return await super().prompt(name, conversation_id, timeout_s, version)

    clients = Clients(FakeGeneration())
    clients.prompts = NoSuchNamedPrompt()
    with pytest.raises(NotFound, match="no prompt named 'nope'") as raised:
        await _events(_conversation(clients, "score of edwina.hawthorne@example.com?", prompt_id="nope"))
    assert raised.value.field == "prompt_id"


async def test_the_routers_own_answer_keeps_to_max_tokens():
    clients = Clients(FakeGeneration())
    policy = FieldPolicy.bundled()
    request = TurnRequest(model="offline", messages=[Message("user", "/help")], max_tokens=3)
    events = await _events(Turn(request, clients, policy, None, lambda: 10.0))
    assert events == ["Commands ", "(at ", "the ", Finish("length", "offline"), Usage(0, 0)]


async def test_the_outcome_carries_what_the_callers_own_tools_returned_for_the_question():
    clients = Clients(FakeGeneration(["Your tool says 42.", Finish("stop"), Usage(1, 1)]))
    messages = [
        Message("user", "Earlier question about edwina.hawthorne@example.com"),
        Message("tool", '{"old": 1}', tool_call_id="call_0"),
        Message("user", "And her balance?"),
        Message("assistant", "", tool_calls=(ToolCall("call_1", "get_balance", "{}"),)),
        Message("tool", '{"balance": 42}', tool_call_id="call_1"),
    ]
    tool = Tool("get_balance", parameters={"type": "object", "properties": {}})
    request = TurnRequest(model="cloud", messages=messages, completion_id="chatcmpl-3", tools=(tool,))
    policy = FieldPolicy.bundled()
    await _events(Turn(request, clients, policy, ToolRunner(clients.customers, policy, clients.access), lambda: 10.0))
    [outcome] = clients.outcomes.posted
    assert outcome.tool_results == ('{"balance": 42}',)  # this question's, not the earlier one's
