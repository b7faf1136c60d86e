"""SchemaFiller: a schema filled from the sources given, and from nothing
else; what no source fills is null, left out or named."""

import pytest

from services.llm_gateway.providers.schema_filler import SchemaFiller, Source, Unfillable, words_of

FACTS = [
    Source("Name", "Edwina Hawthorne"),
    Source("Client ID", "2480135"),
    Source("Email", "edwina.hawthorne@example.com"),
    Source("Equifax credit score (report of 2026-07-17)", "705"),
    Source("TransUnion credit score (report of 2026-10-06)", "712"),
    Source("Last approved payment date", "2026-10-26"),
    Source("Monthly fee", "79.00"),
    Source("Active", "yes"),
    Source("Open tickets", "1"),
    Source("Open ticket 597128", "Credit report access, Open"),
    Source("Credit band (FICO ranges, lowest latest score)", "Good (698)"),
]


def _object(properties: dict, required=None) -> dict:
    return {"type": "object", "properties": properties, "required": list(required or properties)}


def test_names_and_labels_are_read_as_words():
    assert words_of("lastPaymentDate") == words_of("last_payment_dates") == {"last", "payment", "date"}
    assert words_of("customer_id") == words_of("accountNumber") == {"client", "id"}
    assert words_of("TransUnion score") == words_of("transunion_scores") == {"transunion", "score"}
    assert words_of("phone_number") == {"phone"} and words_of("mobile") == {"phone"}


def test_each_property_takes_the_fact_its_name_says_as_its_type():
    schema = _object(
        {
            "customer_name": {"type": "string"},
            "client_id": {"type": "integer"},
            "credit_score": {"type": "integer", "description": "the latest TransUnion score"},
            "last_payment_date": {"type": "string", "format": "date"},
            "monthly_fee": {"type": "number"},
            "active": {"type": "boolean"},
            "has_open_tickets": {"type": "boolean"},
            "open_tickets": {"type": "array", "items": {"type": "string"}},
            "band": {"type": "string", "enum": ["Poor", "Fair", "Good", "Very Good"], "description": "credit band"},
        }
    )
    assert SchemaFiller(FACTS).fill(schema) == {
        "customer_name": "Edwina Hawthorne",
        "client_id": 2480135,
        "credit_score": 712,  # the bureau its description names
        "last_payment_date": "2026-10-26",
        "monthly_fee": 79,
        "active": True,
        "has_open_tickets": True,
        "open_tickets": ["Open ticket 597128: Credit report access, Open"],
        "band": "Good",
    }


def test_what_nothing_fills_is_null_where_allowed_left_out_when_optional_else_named():
    schema = _object(
        {
            "name": {"type": "string"},
            "experian_score": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "date_of_death": {"type": ["string", "null"]},
            "nickname": {"type": "string"},
        },
        required=["name", "experian_score", "date_of_death"],
    )
    assert SchemaFiller(FACTS).fill(schema) == {
        "name": "Edwina Hawthorne",
        "experian_score": None,
        "date_of_death": None,
    }
    with pytest.raises(Unfillable) as caught:
        SchemaFiller(FACTS).fill(_object({"name": {"type": "string"}, "nickname": {"type": "string"}}))
    assert caught.value.path == "nickname"
    with pytest.raises(Unfillable) as caught:
        SchemaFiller([]).fill(_object({"billing": _object({"monthly_fee": {"type": "number"}})}))
    assert caught.value.path == "billing.monthly_fee"


def test_a_value_of_the_wrong_kind_is_not_forced_into_the_type():
    # A date is no number, "Good (698)" no member of this enum.
    with pytest.raises(Unfillable):
        SchemaFiller(FACTS).fill(_object({"last_payment_date": {"type": "number"}}))
    with pytest.raises(Unfillable):
        SchemaFiller(FACTS).fill(_object({"credit_band": {"type": "string", "enum": ["A", "B"]}}))


def test_references_and_the_answer_property_are_followed():
    schema = {
        "type": "object",
        "$defs": {"Person": _object({"first_name": {"type": "string"}, "email": {"type": "string"}})},
        "properties": {"person": {"$ref": "#/$defs/Person"}, "summary": {"type": "string"}},
        "required": ["person", "summary"],
    }
    sources = [Source("First name", "Edwina"), *FACTS]
    assert SchemaFiller(sources, answer="In words.").fill(schema) == {
        "person": {"first_name": "Edwina", "email": "edwina.hawthorne@example.com"},
        "summary": "In words.",
    }


def test_a_recursive_schema_stops_and_a_remote_reference_is_refused():
    recursive = {"type": "object", "properties": {"child": {"$ref": "#"}}, "required": ["child"]}
    with pytest.raises(Unfillable, match="too deep"):
        SchemaFiller(FACTS).fill(recursive)
    with pytest.raises(Unfillable, match="only local references"):
        SchemaFiller(FACTS).fill(_object({"x": {"$ref": "https://example.com/schema"}}))


def test_a_schema_that_is_no_schema_is_named():
    with pytest.raises(Unfillable) as caught:
        SchemaFiller(FACTS).fill({"type": "object", "properties": {"name": {"type": "text"}}})
    assert "not a valid JSON schema" in caught.value.why


@pytest.mark.timeout(60)  # Python's re would backtrack for hours on this
def test_a_hostile_pattern_costs_linear_time():
    # (a+)+$ backtracks exponentially in Python's re on "aaaa…!"; RE2 does not.
    schema = _object({"name": {"type": "string", "pattern": "^(a+)+$"}})
    with pytest.raises(Unfillable) as caught:
        SchemaFiller([Source("Name", "a" * 40 + "!")]).fill(schema)
    assert caught.value.path == "name" and "does not satisfy" in caught.value.why


def test_generic_names_take_the_users_identifiers_most_precise_first():
    sources = [Source("Client ID", "2480135", generic=True), Source("Email", "e@example.com", generic=True)]
    filler = SchemaFiller(sources)
    assert filler.fill(_object({"identifier": {"type": "string"}})) == {"identifier": "2480135"}
    assert filler.fill(_object({"email": {"type": "string"}})) == {"email": "e@example.com"}
    assert filler.from_identifiers(_object({"query": {"type": "string"}, "limit": {"type": "integer"}})) == 1


def test_a_huge_schema_costs_a_bounded_amount():
    with pytest.raises(Unfillable, match="more than 4096 parts"):
        SchemaFiller(FACTS).fill(_object({f"p{n}": {"type": "string"} for n in range(100_000)}))
    many = {f"p{n}": {"type": "string"} for n in range(1_000)}
    assert SchemaFiller(FACTS).fill({"type": "object", "properties": {"email": {"type": "string"}, **many}}) == {
        "email": "edwina.hawthorne@example.com"
    }
    required = {"type": "object", "properties": {**many, "email": {"type": "string"}}, "required": ["email"]}
    with pytest.raises(Unfillable, match="more than 256 properties"):
        SchemaFiller(FACTS).fill(required)


def test_an_error_names_a_huge_property_without_echoing_it():
    name = "x" * 1_000_000
    with pytest.raises(Unfillable) as caught:
        SchemaFiller(FACTS).fill(_object({name: {"type": "string"}}))
    assert caught.value.path == "x" * 200 + "…" and len(str(caught.value)) < 400
