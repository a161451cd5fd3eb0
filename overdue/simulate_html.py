"""The simulation's report as one self-contained HTML page that opens offline.

Its head is the comparison: each strategy's figures with their 95% intervals, and each
difference from the first strategy. Below it comes ``overdue report``'s page for the simulated
ledger, split by strategy (``overdue.report.html``: its plots and its summary), when the caller
hands that report in; without it, the comparison stands alone.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

LABELS = {
    "cure_rate": "cure rate",
    "recovered_share": "recovered share",
    "contacts_per_cure": "contacts per cure",
    "days_to_cure_median": "days to cure (median)",
    "days_to_cure_mean": "days to cure (mean)",
    "right_party_rate": "right-party contact rate",
}
PERCENT = {"cure_rate", "recovered_share", "right_party_rate"}
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}"
    "table{border-collapse:collapse;margin:1rem 0}"
    "th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}"
    "th:first-child,td:first-child{text-align:left}"
    "caption{font-weight:bold;text-align:left;padding:.3rem 0}"
    ".ci{color:#666;font-size:.9em}"
)


def _value(value: float | None, figure: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if figure in PERCENT else f"{value:.2f}"


def _cell(entry: dict[str, Any], figure: str) -> str:
    return (
        f"{_value(entry['estimate'], figure)}"
        f' <span class="ci">[{_value(entry["low"], figure)}, {_value(entry["high"], figure)}]</span>'
    )


def comparison(report: dict[str, Any]) -> str:
    """The comparison tables, as a fragment of a page."""
    arms: dict[str, Any] = report["arms"]
    rows = []
    header = "".join(f"<th>{escape(name)}</th>" for name in arms)
    rows.append(f"<tr><th>figure</th>{header}</tr>")
    for figure, label in LABELS.items():
        cells = "".join(f"<td>{_cell(a['figures'][figure], figure)}</td>" for a in arms.values())
        rows.append(f"<tr><td>{escape(label)}</td>{cells}</tr>")
    counts = "".join(
        f"<tr><td>{escape(name)}</td><td>{a['loans']}</td><td>{a['cured']}</td>"
        f"<td>{a['open_at_horizon']}</td><td>{a['contacts']}</td></tr>"
        for name, a in arms.items()
    )
    differences = []
    for pair, diff in report["differences"].items():
        lines = "".join(
            f"<tr><td>{escape(label)}</td><td>{_cell(diff[figure], figure)}</td></tr>"
            for figure, label in LABELS.items()
        )
        differences.append(
            f"<table><caption>{escape(pair)}</caption>"
            f"<tr><th>figure</th><th>difference [95% interval]</th></tr>{lines}</table>"
        )
    methods = report["methods"]
    names = escape(" vs ".join(arms))
    return (
        f'<section class="comparison"><h1>Strategies compared: {names}</h1>'
        f"<p>{report['loans']} simulated loans per strategy, seed {report['seed']},"
        f" {report['days']} collection days.</p>"
        f"<table><caption>Per strategy (95% interval)</caption>{''.join(rows)}</table>"
        "<table><caption>Loans</caption><tr><th>strategy</th><th>loans</th><th>cured</th>"
        f"<th>open at the horizon</th><th>contacts</th></tr>{counts}</table>"
        f"{''.join(differences)}"
        f'<p class="ci">Cure rate: {escape(methods["cure_rate"])}. Others:'
        f" {escape(methods['others'])}.</p></section>"
    )


def render_html(report: dict[str, Any], portfolio: dict[str, Any] | None = None) -> str:
    """The page: the comparison, then ``portfolio`` (a report of ``overdue.report.figures``,
    split by strategy) as ``overdue report`` draws it, if given."""
    section = f"<style>{STYLE}</style>{comparison(report)}"
    if portfolio is not None:
        from overdue.report.html import render  # plotly: imported only when a page is drawn

        page = render(portfolio)
        return page.replace("<body>", f"<body>{section}", 1)
    names = escape(" vs ".join(report["arms"]))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>overdue simulate: {names}</title></head><body>{section}</body></html>\n"
    )


def write_html(report: dict[str, Any], path: Path, portfolio: dict[str, Any] | None = None) -> Path:
    """Write the page to ``path``; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report, portfolio), encoding="utf-8")
    return path
