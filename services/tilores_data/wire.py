"""Domain values <-> tilores_x.v1 messages for the tilores_data service."""

from __future__ import annotations

from typing import Any

import orjson
from tilores_x.v1 import common_pb2, tilores_data_pb2

from services.tilores_data.credit_report import SCORED, Assessment, BureauSummary, Score
from services.tilores_data.customer360 import Customer360
from services.tilores_data.store import EntityView


def record_message(data: dict[str, Any]) -> common_pb2.Record:
    return common_pb2.Record(
        id=str(data.get("id", "")), source=str(data.get("SOURCE") or ""), data_json=orjson.dumps(data)
    )


def entity_message(view: EntityView) -> common_pb2.Entity:
    entity = common_pb2.Entity(id=view.id, edges=view.edges, hit_score=view.hit_score)
    raw = view.raw_records
    if raw is not None:  # straight from the store: no parsing, no re-encoding
        entity.records.extend(common_pb2.Record(id=i, source=src, data_json=data) for i, src, data in raw)
    else:
        entity.records.extend(record_message(data) for data in view.records)
    for record_id, rules in view.hits.items():
        entity.hits.add(record_id=record_id, rule_ids=rules)
    return entity


def customer360_message(view: Customer360) -> tilores_data_pb2.GetCustomer360Response:
    reply = tilores_data_pb2.GetCustomer360Response(entity_id=view.entity_id, customer_name=view.customer_name)
    for name, facts in view.sections.items():
        section = reply.sections.add(name=name)
        for fact in facts:
            section.facts.add(
                topic=fact.topic, label=fact.label, value=fact.value, record_id=fact.record_id, pii_kind=fact.pii_kind
            )
    i = view.insights
    reply.insights.CopyFrom(
        tilores_data_pb2.EntityInsights(
            primary_identifier=i.primary_identifier,
            has_email=i.has_email,
            has_phone=i.has_phone,
            has_financial_data=i.has_financial_data,
            completeness_percent=i.completeness_percent,
            consistency=i.consistency,
            data_quality=i.data_quality,
            pii_kinds=i.pii_kinds,
        )
    )
    return reply


def _score(score: Score) -> tilores_data_pb2.CreditScore:
    return tilores_data_pb2.CreditScore(
        bureau=score.bureau, value=score.value, model=score.model, date=score.date, record_id=score.record_id
    )


def credit_report_message(
    entity_id: str, summaries: list[BureauSummary], assessment: Assessment
) -> tilores_data_pb2.GetCreditReportResponse:
    reply = tilores_data_pb2.GetCreditReportResponse(entity_id=entity_id)
    for s in summaries:
        bureau = reply.bureaus.add(
            bureau=s.bureau,
            scores=[_score(x) for x in s.scores],
            late_30_days=s.late_30_days,
            late_60_days=s.late_60_days,
            late_90_days=s.late_90_days,
            open_accounts=s.open_accounts,
            closed_accounts=s.closed_accounts,
            inquiries=s.inquiries,
            record_id=s.record_id,
        )
        if s.latest is not None:
            bureau.latest.CopyFrom(_score(s.latest))
        if s.score_change is not None:
            bureau.score_change = s.score_change
        if s.utilization_percent is not None:
            bureau.utilization_percent = s.utilization_percent
    status = tilores_data_pb2.CREDIT_STATUS_SCORED if assessment.status == SCORED else (
        tilores_data_pb2.CREDIT_STATUS_INSUFFICIENT_DATA
    )  # fmt: skip
    reply.assessment.CopyFrom(
        tilores_data_pb2.CreditAssessment(
            status=status,
            score=assessment.score or 0,
            band=assessment.band,
            risk_level=assessment.risk_level,
            recommendations=assessment.recommendations,
        )
    )
    return reply
