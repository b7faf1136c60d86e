import pytest

from services.tilores_data.record_insights import InsightError, RecordInsights, path_value

SCORE = {"CREDIT_SCORE": [{"Value": "700"}]}
RECORDS = [
    {"id": "a", "FIRST_NAME": "Edwina", "AMOUNT": "10.5", "DATE": "2026-01-02", "CREDIT_RESPONSE": SCORE},
    {"id": "b", "FIRST_NAME": "edwina", "AMOUNT": "20", "DATE": "2026-03-04T10:00:00Z"},
    {"id": "c", "FIRST_NAME": "Eddie", "AMOUNT": None, "DATE": "2025-12-31"},
]  # fmt: skip


def test_dot_paths_with_list_indexes():
    assert path_value(RECORDS[0], "CREDIT_RESPONSE.CREDIT_SCORE.0.Value") == "700"
    assert path_value(RECORDS[0], "CREDIT_RESPONSE.CREDIT_SCORE.5.Value") is None
    assert path_value(RECORDS[1], "CREDIT_RESPONSE.CREDIT_SCORE.0.Value") is None


def test_distinct_values_ignore_case_and_keep_the_first_seen():
    insights = RecordInsights(RECORDS)
    assert insights.values_distinct("FIRST_NAME") == ["Edwina", "Eddie"]
    assert insights.values_distinct("FIRST_NAME", case_sensitive=True) == ["Edwina", "edwina", "Eddie"]
    assert insights.values_distinct("NO_SUCH_FIELD") == []


def test_frequency_distribution_percentages_are_fractions():
    [top] = RecordInsights(RECORDS).frequency_distribution("FIRST_NAME", top=1)
    assert top == {"value": "Edwina", "frequency": 2, "percentage": pytest.approx(2 / 3)}


def test_numeric_aggregates_skip_nulls_and_refuse_text():
    insights = RecordInsights(RECORDS)
    assert insights.sum("AMOUNT") == 30.5 and insights.average("AMOUNT") == 15.25
    assert insights.median("AMOUNT") == 15.25 and insights.max("AMOUNT") == 20.0
    assert insights.average("NO_SUCH_FIELD") is None
    with pytest.raises(InsightError, match="not a number"):
        insights.sum("FIRST_NAME")


def test_newest_oldest_filter_sort_limit():
    insights = RecordInsights(RECORDS)
    assert insights.newest("DATE")["id"] == "b" and insights.oldest("DATE")["id"] == "c"
    assert [r["id"] for r in insights.filter([{"field": "FIRST_NAME", "equals": "EDWINA"}]).records] == ["a", "b"]
    assert [r["id"] for r in insights.filter([{"field": "AMOUNT", "isNull": True}]).records] == ["c"]
    assert [r["id"] for r in insights.filter([{"field": "DATE", "after": "2026-01-01T00:00:00Z"}]).records] == [
        "a",
        "b",
    ]
    assert [r["id"] for r in insights.sort([{"field": "AMOUNT", "direction": "DESC"}]).records] == ["b", "a", "c"]
    assert [r["id"] for r in insights.limit(1, offset=1).records] == ["b"]
    assert insights.count_distinct(["FIRST_NAME"]) == 2
