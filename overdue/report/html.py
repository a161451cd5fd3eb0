"""The report as one self-contained HTML page: every figure as a plot, and the numbers.

The plots are plotly's, drawn in the browser as SVG, with plotly.js inlined once in the page:
it opens offline, from a file, with no request to anything. Groups (``--by``) are traces of
the same plot, so strategies, jurisdictions or products are compared side by side.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from overdue.report.figures import ALL
from overdue.report.rows import OPEN_STAGES
from workflows.money import format_minor

OUTCOMES = ("rolled", "cured", "referred", "closed_other", "stayed")
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .period { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.plot { max-width: 1100px; }
"""


def write_html(report: dict[str, Any], path: Path) -> Path:
    """Write the page for a report (``figures.report``'s dict) to ``path``; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(report), encoding="utf-8")
    return path


def render(report: dict[str, Any]) -> str:
    """The whole page."""
    groups = report["groups"]
    plots = [
        ("roll-rates", "Roll rates between stages", _roll_rates(groups)),
        ("cure-rates", "Cure rate by stage of entry", _cure_rates(groups)),
        ("recovery", "Recovery curve", _recovery(groups)),
        (
            "rpc-slot",
            "Right-party contact rate by slot",
            _rpc(groups, "by_slot", "slot", report["slots"]),
        ),
        (
            "rpc-hour",
            "Right-party contact rate by borrower-local hour",
            _rpc(groups, "by_hour", "hour", report["slots"]),
        ),
        ("promises", "Promises settled", _promises(groups)),
        ("waiting", "Loans waiting for a person", _waiting(groups)),
    ]
    period = report["period"]
    body = [
        "<h1>Collections report</h1>",
        f'<p class="period">{_when(period["since"])} to {_when(period["until"])} (UTC)'
        + (f" · by {_e(report['by'])}" if report["by"] else "")
        + "</p>",
        _summary(groups),
    ]
    for name, title, figure in plots:
        figure.update_layout(title=title, height=420, margin={"t": 60, "b": 50})
        div = pio.to_html(
            figure, include_plotlyjs=False, full_html=False, config=PLOT_CONFIG, div_id=name
        )
        body.append(f'<section class="plot" data-figure="{name}">{div}</section>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>overdue · collections report</title>"
        f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def _when(iso: str) -> str:
    """An instant of the period, to the minute."""
    return _e(datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M"))


def _e(value: Any) -> str:
    return html.escape(str(value))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _summary(groups: list[dict[str, Any]]) -> str:
    head = (
        "<tr><th>group</th><th>loans</th><th>cure rate</th><th>median days to cure</th>"
        "<th>recovered</th><th>right-party contact</th><th>promises kept</th>"
        "<th>contacts per cure</th><th>waiting for a person</th></tr>"
    )
    rows = []
    for g in groups:
        overall = g["cures"][-1]
        recovered = "<br>".join(
            f"{_e(format_minor(r['recovered_minor'], r['currency']))} of "
            f"{_e(format_minor(r['overdue_minor'], r['currency']))} {_e(r['currency'])}"
            f" ({_pct(r['share'])})"
            for r in g["recovery"]
        )
        cells = [
            _e(g["key"]),
            str(g["loans"]),
            _pct(overall["cure_rate"]),
            _e(
                overall["median_days_to_cure"]
                if overall["median_days_to_cure"] is not None
                else "-"
            ),
            recovered or "-",
            _pct(g["right_party_contact"]["rate"]),
            _pct(g["promises"]["kept_rate"]),
            _e(g["contacts_per_cure"]["contacts_per_cure"] or "-"),
            str(g["waiting_for_person"]["loans"]),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f'<table class="summary">{head}{"".join(rows)}</table>'


def _label(groups: list[dict[str, Any]], group: dict[str, Any], text: str) -> str:
    """A trace's name: the group's key first when the report is split."""
    return f"{group['key']} · {text}" if len(groups) > 1 else text


def _empty(figure: go.Figure) -> go.Figure:
    if not figure.data:
        figure.add_annotation(text="nothing in this period", showarrow=False)
    return figure


def _roll_rates(groups: list[dict[str, Any]]) -> go.Figure:
    figure = go.Figure()
    rows = [(g, r) for g in groups for r in g["roll_rates"] if r["loans"]]
    labels = [_label(groups, g, r["stage"]) for g, r in rows]
    for outcome in OUTCOMES:
        figure.add_bar(
            name=outcome.replace("_", " "),
            orientation="h",
            y=labels,
            x=[r["shares"][outcome] for _, r in rows],
            customdata=[r[outcome] for _, r in rows],
            hovertemplate="%{y}: %{x:.1%} (%{customdata} loans)<extra>" + outcome + "</extra>",
        )
    figure.update_layout(barmode="stack", xaxis={"tickformat": ".0%", "range": [0, 1]})
    figure.update_yaxes(autorange="reversed")
    return figure if rows else _empty(go.Figure())


def _cure_rates(groups: list[dict[str, Any]]) -> go.Figure:
    figure = go.Figure()
    for g in groups:
        rows = [r for r in g["cures"] if r["loans"]]
        if rows:
            figure.add_bar(
                name=g["key"],
                x=[r["entry_stage"] for r in rows],
                y=[r["cure_rate"] for r in rows],
                customdata=[[r["cured"], r["loans"], r["median_days_to_cure"]] for r in rows],
                hovertemplate="%{x}: %{y:.1%} (%{customdata[0]} of %{customdata[1]}),"
                " median %{customdata[2]} days<extra></extra>",
            )
    figure.update_layout(
        barmode="group",
        xaxis={"categoryorder": "array", "categoryarray": [*OPEN_STAGES, ALL]},
        yaxis={"tickformat": ".0%", "range": [0, 1]},
    )
    return _empty(figure)


def _recovery(groups: list[dict[str, Any]]) -> go.Figure:
    figure = go.Figure()
    for g in groups:
        for r in g["recovery"]:
            # The curve starts at nothing recovered, and steps at each day a payment landed.
            xs = [0] + [p["dpd"] for p in r["points"]]
            ys = [0.0] + [p["share"] for p in r["points"]]
            figure.add_scatter(
                name=_label(groups, g, r["currency"]),
                x=xs,
                y=ys,
                mode="lines+markers",
                line={"shape": "hv"},
                hovertemplate="DPD %{x}: %{y:.1%}<extra>%{fullData.name}</extra>",
            )
    figure.update_layout(
        xaxis={"title": {"text": "days past due"}},
        yaxis={"title": {"text": "share recovered"}, "tickformat": ".0%", "rangemode": "tozero"},
    )
    return _empty(figure)


def _rpc(groups: list[dict[str, Any]], key: str, name: str, slots: list[str]) -> go.Figure:
    figure = go.Figure()
    for g in groups:
        rows = g["right_party_contact"][key]
        if rows:
            figure.add_bar(
                name=g["key"],
                x=[str(r[name]) for r in rows],
                y=[r["rate"] for r in rows],
                customdata=[[r["right_party"], r["attempts"]] for r in rows],
                hovertemplate="%{x}: %{y:.1%} (%{customdata[0]} of %{customdata[1]})"
                "<extra></extra>",
            )
    # One order for every group: hours by the clock, slots as the report orders them.
    hours = sorted({r["hour"] for g in groups for r in g["right_party_contact"]["by_hour"]})
    order = [str(h) for h in hours] if name == "hour" else slots
    figure.update_layout(
        barmode="group",
        xaxis={
            "type": "category",
            "title": {"text": name},
            "categoryorder": "array",
            "categoryarray": order,
        },
        yaxis={"tickformat": ".0%", "rangemode": "tozero"},
    )
    return _empty(figure)


def _promises(groups: list[dict[str, Any]]) -> go.Figure:
    figure = go.Figure()
    for g in groups:
        p = g["promises"]
        if p["settled"]:
            figure.add_bar(
                name=g["key"],
                x=["kept", "partially kept", "broken"],
                y=[p["kept"], p["partially_kept"], p["broken"]],
                hovertemplate="%{x}: %{y}<extra>%{fullData.name}</extra>",
            )
    figure.update_layout(barmode="group", yaxis={"title": {"text": "promises"}})
    return _empty(figure)


def _waiting(groups: list[dict[str, Any]]) -> go.Figure:
    figure = go.Figure()
    for g in groups:
        reasons = g["waiting_for_person"]["by_reason"]
        figure.add_bar(
            name=g["key"],
            x=[r.replace("_", " ") for r in reasons],
            y=list(reasons.values()),
            hovertemplate="%{x}: %{y}<extra>%{fullData.name}</extra>",
        )
    figure.update_layout(barmode="group", yaxis={"title": {"text": "loans"}, "rangemode": "tozero"})
    return _empty(figure)
