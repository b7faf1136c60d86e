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


def test_values_typed_about_someone_else_are_masked_however_they_are_said():
    """What a user types about a person who is not the grounded customer
    has no fact to match by value: the words around it give the kind away."""
    said = {
        "her date of birth is 1979-02-03, right?": "1979-02-03",
        "He was born on March 3rd, 1980.": "March 3rd, 1980",
        "my wife's birthday: 3 March 1980": "3 March 1980",
        "DOB was 3/4/79": "3/4/79",
        "the security code is 482": "482",
        "CVV2 code 7391": "7391",
        "his driver's license number is D1234567": "D1234567",
        "driving licence no: S123-4567-8901": "S123-4567-8901",
        "the driver licence of Jo is 55512345": "55512345",
    }
    for text, value in said.items():
        masked = POLICY.mask_text(text, [], CLOUD)
        assert value not in masked and "[withheld:" in masked, (text, masked)


def test_dates_and_codes_that_name_no_withheld_kind_stay():
    text = "What is the date of birth of edwina.hawthorne@example.com and when was her last payment, on 2026-10-01?"
    assert "2026-10-01" in POLICY.mask_text(text, [], CLOUD)
    assert POLICY.mask_text("The licence renewal is due; code ABCDE.", [], CLOUD).endswith("code ABCDE.")


def test_a_withheld_marker_does_not_name_the_kind_of_what_follows():
    licence = Fact("identity", "Driving licence", "D1234567", "003A", "driving_licence")
    text = "licence D1234567, and client id 2480135; born 1984-06-12, paid 2026-10-01"
    masked = POLICY.mask_text(text, [licence, DOB], CLOUD)
    assert "2480135" in masked and "2026-10-01" in masked and "D1234567" not in masked and "1984" not in masked
