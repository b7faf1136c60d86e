import pytest

from services.runtime.customer_identifiers import (
    Identifiers,
    PersonName,
    extract_identifiers,
    identifiers_by_message,
    identifiers_in,
    name_candidates,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "What is the credit score of Edwina.Hawthorne@Example.com?",
            Identifiers(email="edwina.hawthorne@example.com"),
        ),
        ("client id 2480135 please", Identifiers(client_id="2480135")),
        ("Customer ID: 1234567890", Identifiers(client_id="1234567890")),
        ("look up 2480135", Identifiers(client_id="2480135")),
        ("call (312) 555-0142", Identifiers(phone="+13125550142")),
        ("phone +1 312 555 0142", Identifiers(phone="+13125550142")),
        ("her number is 312-555-0142", Identifiers(phone="+13125550142")),
        ("contact 003Ux00000AbCdEfGH", Identifiers(contact_id="003Ux00000AbCdEfGH")),
        ("contact 003Ux00000AbCdE", Identifiers(contact_id="003Ux00000AbCdE")),
    ],
)
def test_finds_each_kind_of_identifier(text, expected):
    assert identifiers_in(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "she paid $1234567.00 last month",
        "a balance of 2480135.50",
        "on 2026-10-05 she called",
        "utilization was 12345678%",
        "reference 12345678901234",
        "what is a good credit score?",
    ],
)
def test_amounts_dates_and_long_numbers_are_not_client_ids(text):
    assert not identifiers_in(text)


def test_bare_ten_digit_number_searches_client_id_and_phone():
    found = identifiers_in("look up 3125550142")
    assert found.search_parameters() == {"CLIENT_ID": "3125550142", "PHONE_NUMBER": "+13125550142"}


def test_most_precise_identifier_is_searched():
    both = identifiers_in("client id 2480135, email edwina.hawthorne@example.com")
    assert both.search_parameters() == {"CLIENT_ID": "2480135"}
    assert identifiers_in("003Ux00000AbCdEfGH a@example.com").search_parameters() == {"id": "003Ux00000AbCdEfGH"}
    assert identifiers_in("a@example.com or (312) 555-0142").search_parameters() == {"EMAIL": "a@example.com"}


def test_follow_up_keeps_the_customer_of_an_earlier_turn():
    messages = [
        ("user", "What is the status of edwina.hawthorne@example.com?"),
        ("assistant", "Edwina Hawthorne is Active."),
        ("user", "and when was her last payment?"),
    ]
    assert extract_identifiers(messages) == Identifiers(email="edwina.hawthorne@example.com")


def test_newest_customer_wins_and_assistant_text_is_ignored():
    messages = [
        ("user", "status of a@example.com"),
        ("assistant", "Did you mean b@example.com?"),
        ("user", "no, client id 7654321"),
    ]
    assert extract_identifiers(messages) == Identifiers(client_id="7654321")
    assert extract_identifiers([("system", "x@example.com"), ("user", "hello")]) == Identifiers()


def test_describe_names_the_lookup():
    assert Identifiers(email="a@example.com").describe() == "email a@example.com"
    assert Identifiers(client_id="2480135").describe() == "client id 2480135"


def test_a_full_name_is_the_last_resort():
    assert identifiers_in("What is the status of Edwina Hawthorne?").search_parameters() == {
        "FIRST_NAME": "Edwina",
        "LAST_NAME": "Hawthorne",
    }
    assert identifiers_in("Mary O'Brien and Ann McDonald").search_parameters() == {
        "FIRST_NAME": "Mary",
        "LAST_NAME": "O'Brien",
    }
    assert [n.describe() for n in identifiers_in("Mary O'Brien and Ann McDonald").names] == [
        "name Mary O'Brien",
        "name Ann McDonald",
    ]
    # A more precise identifier wins over the name.
    assert identifiers_in("Edwina Hawthorne, client id 2480135").search_parameters() == {"CLIENT_ID": "2480135"}


def test_capitalised_words_that_are_not_names():
    for text in ("What Is The Status", "Show Credit Score", "TransUnion Report please", "Hello Edwina", "Mr Smith"):
        assert not identifiers_in(text), text


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("Does Jasper Abbott have a balance?", PersonName("Jasper", "Abbott")),
        ("Is Levi Norwood still active?", PersonName("Levi", "Norwood")),
        ("what is the status of edwina hawthorne", PersonName("edwina", "hawthorne", written_as_name=False)),
        ("Edwina Hawthorne's balance", PersonName("Edwina", "Hawthorne")),
        ("What about June Crane?", PersonName("June", "Crane")),
        ("Will Smith, please", PersonName("Will", "Smith")),
        ("Does Kit Gale have a ticket open?", PersonName("Kit", "Gale")),
        ("what is the status of ada nash?", PersonName("ada", "nash", written_as_name=False)),
        ("does milo wren owe anything", PersonName("milo", "wren", written_as_name=False)),
    ],
)
def test_name_candidates_put_the_likely_name_first(text, first):
    assert name_candidates(text)[0] == first


def test_ordinary_words_in_lower_case_are_no_name():
    for text in ("will smith pay on time", "how many late payments does she have", "can you check quickly", "may i"):
        assert not name_candidates(text), text


def test_every_message_that_may_name_someone_is_offered_newest_first():
    messages = [
        ("user", "What is the status of edwina.hawthorne@example.com?"),
        ("assistant", "Edwina Hawthorne is Active."),
        ("user", "thanks, anything overdue lately?"),
    ]
    found = identifiers_by_message(messages)
    # "overdue lately" could be a name in lower case; the store decides, and
    # the e-mail of the earlier turn comes next.
    assert [bool(i.exact) for i in found] == [False, True]
    assert found[1].email == "edwina.hawthorne@example.com"


def test_a_ten_digit_number_is_named_by_what_it_matched():
    found = identifiers_in("3125550142")
    assert found.describe() == "client id 3125550142"  # before the search: either could match
    by_phone = [{"CLIENT_ID": "2480135", "PHONE_NUMBER": "(312) 555-0142"}]
    by_client_id = [{"CLIENT_ID": "3125550142", "PHONE_NUMBER": "(773) 555-0199"}]
    assert found.describe_found(by_phone) == "phone +13125550142"
    assert found.describe_found(by_client_id) == "client id 3125550142"
    assert identifiers_in("client id 2480135").describe_found(by_phone) == "client id 2480135"
