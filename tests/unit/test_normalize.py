import pytest

from services.tilores_data.normalize import email, person_name, phone_e164


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("(312) 555-0142", "+13125550142"),
        ("+1 312.555.0142", "+13125550142"),
        ("3125550142", "+13125550142"),
        ("12", ""),
    ],
)
def test_phone_e164(raw, expected):
    assert phone_e164(raw) == expected


def test_email():
    assert email("  MAILTO:Edwina.Hawthorne@Example.COM ") == "edwina.hawthorne@example.com"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("o'BRIEN", "O'Brien"),
        ("mcdonald", "McDonald"),
        ("MARY-ANN smith-jones", "Mary-Ann Smith-Jones"),
        ("jane doe phd", "Jane Doe PhD"),
        ("john smith jr.", "John Smith Jr."),
        ("ludwig VAN beethoven", "Ludwig van Beethoven"),
    ],
)
def test_person_name(raw, expected):
    assert person_name(raw) == expected
