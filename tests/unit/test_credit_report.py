import pytest

from services.tilores_data.credit_report import INSUFFICIENT_DATA, SCORED, assess, band_of, bureau_summaries


@pytest.mark.parametrize(
    ("score", "band", "risk"),
    [
        (850, "Exceptional", "Very Low"),
        (800, "Exceptional", "Very Low"),
        (799, "Very Good", "Low"),
        (740, "Very Good", "Low"),
        (739, "Good", "Moderate"),
        (670, "Good", "Moderate"),
        (669, "Fair", "High"),
        (580, "Fair", "High"),
        (579, "Poor", "Very High"),
        (300, "Poor", "Very High"),
    ],
)
def test_band_boundaries(score, band, risk):
    assert band_of(score) == (band, risk)


def report(bureau, date, score, utilization=None, lates=(0, 0, 0), inquiries=0, status="Open", record="r"):
    data = {
        "CREDIT_BUREAU": bureau,
        "CreditReportFirstIssuedDate": date,
        "CREDIT_SCORE": [{"Value": str(score), "CreditRepositorySourceType": bureau, "ModelNameType": "Other"}],
        "CREDIT_LIABILITY": [
            {
                "AccountStatusType": status,
                "LateCount": {"Days30": str(lates[0]), "Days60": str(lates[1]), "Days90": str(lates[2])},
            }
        ],
        "CREDIT_INQUIRY": [{"Name": "x"}] * inquiries,
    }
    if utilization is not None:
        data["CREDIT_SUMMARY"] = {
            "DATA_SET": [{"ID": "PT016", "Name": "Utilization on revolving trades", "Value": str(utilization)}]
        }
    return {"id": record, "SOURCE": "Contact", "CREDIT_RESPONSE": data}


def test_latest_and_trend_per_bureau():
    records = [
        report("Equifax", "2026-09-01", 650, record="new"),
        report("Equifax", "2026-03-01", 690, record="old"),
        report("TransUnion", "2026-08-01", 720, record="tu"),
    ]
    equifax, transunion = bureau_summaries(records)
    assert [s.value for s in equifax.scores] == [690, 650]
    assert (equifax.latest.value, equifax.latest.record_id, equifax.score_change) == (650, "new", -40)
    assert transunion.score_change is None
    assessment = assess([equifax, transunion])
    assert (assessment.status, assessment.score, assessment.band) == (SCORED, 650, "Fair")
    assert any("fell 40 points" in advice for advice in assessment.recommendations)


def test_recommendations_come_from_the_data():
    records = [report("Experian", "2026-09-01", 700, utilization=45, lates=(1, 0, 2), inquiries=3)]
    advice = assess(bureau_summaries(records)).recommendations
    assert len(advice) == 3
    assert "45 %" in advice[0] and "1/0/2" in advice[1] and "3 inquiries" in advice[2]
    clean = [report("Experian", "2026-09-01", 700, utilization=30, inquiries=2)]
    assert assess(bureau_summaries(clean)).recommendations == []


def test_no_score_is_insufficient_data():
    assert (
        assess(bureau_summaries([{"id": "c", "SOURCE": "Contact", "EMAIL": "a@example.com"}])).status
        == INSUFFICIENT_DATA
    )
    # A score outside 300..850 is no score.
    unreadable = report("Equifax", "2026-01-01", 0)
    assessment = assess(bureau_summaries([unreadable]))
    assert (assessment.status, assessment.score, assessment.band) == (INSUFFICIENT_DATA, None, "")


def test_bureau_falls_back_to_the_score_source():
    record = report("", "2026-01-01", 640)
    record["CREDIT_RESPONSE"]["CREDIT_SCORE"][0]["CreditRepositorySourceType"] = "TransUnion"
    [summary] = bureau_summaries([record])
    assert summary.bureau == "TransUnion"
