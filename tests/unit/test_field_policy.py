"""Masking free text by the field policy: the values of withheld facts, and
the shapes that give a kind away."""

from services.runtime.conversation import Fact
from services.runtime.field_policy import FieldPolicy

POLICY = FieldPolicy.bundled()
CLOUD = POLICY.allowed(["openai"])
DOB = Fact("identity", "Date of birth", "1984-06-12", "003A", "date_of_birth")


def test_values_of_withheld_facts_are_masked_where_they_stand():
    text = "She was born 1984-06-12 and paid on 2026-10-01."
    masked = POLICY.mask_text(text, [DOB], CLOUD)
    assert masked == "She was born [withheld: date of birth] and paid on 2026-10-01."


def test_shapes_are_masked_without_facts():
    masked = POLICY.mask_text(
        "SSN 123-45-6789, card 4111-1111-1111-1111, CVV: 123, DOB 06/12/1984, driver's license no. D123-4567",
        [],
        CLOUD,
    )
    for value in ("123-45-6789", "4111-1111-1111-1111", ": 123", "06/12/1984", "D123-4567"):
        assert value not in masked, value
    assert masked.count("[withheld:") == 5


def test_numbers_that_only_look_alike_stay():
    text = "Reference 1234 5678 9012 3456 and client id 2480135; paid 2026-10-01; balance 0.00."
    assert POLICY.mask_text(text, [], CLOUD) == text  # no Luhn, no birth named


def test_a_provider_allowed_a_kind_sees_it():
    offline = POLICY.allowed(["offline"])
    assert POLICY.mask_text("born 1984-06-12, SSN 123-45-6789", [DOB], offline) == "born 1984-06-12, SSN 123-45-6789"
