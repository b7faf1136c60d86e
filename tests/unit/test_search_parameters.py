import pytest

from services.runtime.faults import InvalidArgument
from services.tilores_data.search_parameters import search_parameters
from services.tilores_data.tilores_schema import search_parameters as schema_parameters
from services.tilores_data.tilores_schema import tilores_schema

KNOWN = schema_parameters(tilores_schema())


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"SALESFORCE_ID": "003x"}, "parameters.SALESFORCE_ID"),
        ({"EMAIL": "a@example.com", "GENERAL_SEARCH": "x"}, "parameters.GENERAL_SEARCH"),
        ({}, "parameters"),
        ({"EMAIL": "  ", "CLIENT_ID": ""}, "parameters"),
        ({"FIRST_NAME": "Edwina"}, "parameters.LAST_NAME"),
        ({"LAST_NAME": "Hawthorne"}, "parameters.FIRST_NAME"),
        ({"PHONE_NUMBER": "555-0142"}, "parameters.PHONE_NUMBER"),
    ],
)
def test_bad_parameters_name_the_field(params, field):
    with pytest.raises(InvalidArgument) as caught:
        search_parameters(params, KNOWN)
    assert caught.value.field == field


def test_set_parameters_are_stripped_and_empty_ones_dropped():
    assert search_parameters({"EMAIL": " a@example.com ", "CLIENT_ID": "", "STATUS": "Active"}, KNOWN) == {
        "EMAIL": "a@example.com",
        "STATUS": "Active",
    }


def test_injection_looking_values_are_plain_data():
    value = "x' OR 1=1; DROP TABLE records; -- } { __schema { types { name } } }"
    assert search_parameters({"EMAIL": value}, KNOWN) == {"EMAIL": value}


def test_every_record_field_is_a_parameter():
    assert len(KNOWN) == 163
    assert {"id", "EMAIL", "CLIENT_ID", "PHONE_EXTERNAL", "CREDIT_RESPONSE", "ZOHO_STATUS"} <= KNOWN
    assert "SALESFORCE_ID" not in KNOWN and "MONTHLY_PAYMENT" not in KNOWN
