"""The report of one set of loans over their whole collection, as ``overdue demo`` writes it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import asyncpg

from overdue.report.figures import report
from overdue.report.html import write_html
from overdue.report.ledger import read_ledger, span_of


async def write_portfolio_report(
    pool: asyncpg.Pool, loan_ids: Sequence[str], path: Path
) -> Path | None:
    """Write the HTML report of these loans, from their first opening to their last audit
    entry (split by jurisdiction, so currencies and contact rules compare side by side); None
    when the ledger holds none of them."""
    period = await span_of(pool, loan_ids)
    if period is None:
        return None
    figures = report(await read_ledger(pool, period, loan_ids), period, by="jurisdiction")
    return write_html(figures, path)
