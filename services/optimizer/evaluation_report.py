"""An evaluation run as a report: JSON (the run, its matrix and every graded
answer with what it missed and what it got wrong) and a self-contained HTML
page (no script, no outside asset) with a heatmap per figure."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import orjson

from services.optimizer.evaluation import Cell, EvaluationRun
from services.optimizer.question_set import SPECTRUMS, Question
from services.runtime.moments import iso_of

HEATMAPS = (
    ("precision", "Precision: of the customer values stated, the share that are true"),
    ("recall", "Recall: of the values asked for, the share stated"),
    ("refusal_accuracy", "Refusal accuracy: refused exactly when no customer matches"),
    ("quality", "Quality: the scorer's mean overall score"),
)
COLUMNS = (*SPECTRUMS, "all")


def run_from_summary(summary: dict[str, Any]) -> EvaluationRun:
    fields = dict(summary)
    fields.pop("total", None)
    fields["cells"] = [Cell(**c) for c in fields.get("cells", [])]
    fields["grades"] = []
    return EvaluationRun(**fields)


def to_json(run: EvaluationRun, questions: Sequence[Question]) -> str:
    text_of = {q.id: q for q in questions}
    answers = []
    for grade in run.grades:
        question = text_of.get(grade.question_id)
        answers.append(
            asdict(grade)
            | {
                "error": grade.error or None,
                "question": question.text if question else "",
                "earlier": list(question.earlier) if question else [],  # a follow-up's earlier turns
                "identifier_kind": question.identifier_kind if question else "",
            }
        )
    return orjson.dumps(
        {"run": _plain_run(run), "answers": answers}, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    ).decode()


def _plain_run(run: EvaluationRun) -> dict[str, Any]:
    """The run as the REST API shows it: times in ISO 8601, null for what
    it does not have (no error, no note, the active prompt version)."""
    out = run.summary()
    out["started_at"] = iso_of(run.started_at)
    out["finished_at"] = iso_of(run.finished_at) if run.finished_at is not None else None
    for name in ("error", "note", "prompt", "version"):
        out[name] = out[name] or None
    return out


def _started(run: dict[str, Any]) -> str:
    """When the run started, for the page; reports written before times
    were ISO 8601 hold seconds since the epoch."""
    started = run["started_at"]
    moment = (
        datetime.fromtimestamp(started, UTC)
        if isinstance(started, int | float)
        else datetime.fromisoformat(started.replace("Z", "+00:00"))
    )
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _colour(value: float | None) -> str:
    """Red below 0.85 (critical), amber to 0.95 (target), green above."""
    if value is None:
        return "#eee"
    if value < 0.85:
        return "#f4a3a3"
    if value < 0.95:
        return "#f7d488"
    return "#9fd89f" if value < 0.98 else "#5cbf5c"


def _heatmap(title: str, figure: str, cells: list[dict[str, Any]], models: list[str]) -> str:
    by = {(c["model"], c["spectrum"]): c for c in cells}
    head = "".join(f"<th>{html.escape(s)}</th>" for s in COLUMNS)
    rows = []
    for model in models:
        tds = []
        for spectrum in COLUMNS:
            value = by.get((model, spectrum), {}).get(figure)
            text = "–" if value is None else f"{value:.1%}" if figure != "quality" else f"{value:.3f}"
            tds.append(f'<td style="background:{_colour(value)}">{text}</td>')
        rows.append(f"<tr><th>{html.escape(model)}</th>{''.join(tds)}</tr>")
    return f"<h2>{html.escape(title)}</h2><table><tr><th>model</th>{head}</tr>{''.join(rows)}</table>"


def to_html(report_json: str) -> str:
    """The report as one HTML page."""
    report = orjson.loads(report_json)
    run = report["run"]
    cells, models = run["cells"], run["models"]
    started = _started(run)
    totals = [c for c in cells if c["spectrum"] == "all"]
    summary_rows = "".join(
        f"<tr><th>{html.escape(c['model'])}</th><td>{c['questions']}</td><td>{c['ttft_p50_ms']:.0f}</td>"
        f"<td>{c['total_p50_ms']:.0f}</td><td>{c['tokens']}</td><td>${c['cost_usd']:.4f}</td><td>{c['errors']}</td></tr>"
        for c in totals
    )
    wrong = [a for a in report["answers"] if a["wrong"] or a["missing"] or not a["refusal_correct"]]
    wrong_rows = "".join(
        f"<tr><td>{html.escape(a['model'])}</td><td>{html.escape(a['spectrum'])}</td>"
        f"<td>{html.escape(a['question'])}</td><td>{html.escape(', '.join(a['missing']))}</td>"
        f"<td>{html.escape(', '.join(a['wrong']))}</td><td>{html.escape(a['error'] or '')}</td></tr>"
        for a in wrong[:300]
    )
    note = f"<p class=note>{html.escape(run['note'])}</p>" if run.get("note") else ""
    maps = "".join(_heatmap(title, figure, cells, models) for figure, title in HEATMAPS)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Evaluation {html.escape(run["id"])}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;margin:.5em 0 1.5em}}
th,td{{border:1px solid #ccc;padding:.3em .6em;text-align:right}} th{{background:#f6f6f6}}
td:nth-child(3){{text-align:left}} .note{{background:#fff7d6;padding:.5em;border:1px solid #e6d58a}}
</style></head><body>
<h1>Evaluation {html.escape(run["id"])}</h1>
{note}
<p>Started {started} by {html.escape(run["started_by"])}; state {html.escape(run["state"])};
{run["questions"]} questions × {len(models)} models; prompt "customer"
{f"version {run['version']}" if run["version"] else "(active version)"}.
Colours: red below 0.85 (critical), amber below 0.95 (target), green at or above.</p>
{maps}
<h2>Latency, tokens and cost</h2>
<table><tr><th>model</th><th>answers</th><th>TTFT p50 ms</th><th>total p50 ms</th><th>tokens</th><th>cost</th>
<th>errors</th></tr>{summary_rows}</table>
<h2>Answers with a miss, a wrong value or a wrong refusal ({len(wrong)})</h2>
<table><tr><th>model</th><th>spectrum</th><th>question</th><th>missing</th><th>wrong</th><th>error</th></tr>
{wrong_rows}</table>
</body></html>
"""
