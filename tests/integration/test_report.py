"""``overdue report`` against the real ledger: a hand-computed ledger (tests/report_ledger.py)
written to PostgreSQL, read back through the CLI as JSON, and its HTML page opened in a real
headless Chromium, offline, where every plot must draw its marks."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from overdue.report.rows import Ledger
from tests.integration.browser import ChromiumUnavailable, chromium, ensure_chromium
from tests.integration.support import Cli
from tests.report_ledger import EXPECTED, ledger

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

FIGURES = ("roll-rates", "cure-rates", "recovery", "rpc-slot", "rpc-hour", "promises", "waiting")
PLOT_TIMEOUT_MS = 30_000  # a loaded machine parses 4 MB of plotly.js slowly


async def write_ledger(pool: asyncpg.Pool, rows: Ledger) -> None:
    """Write the rows as the collection writes them: borrowers, loans and collections first
    (the foreign keys), then the audit entries, payments, attempts and promises."""
    numbers = iter(range(1, 10_000))
    async with pool.acquire() as conn, conn.transaction():
        for loan in rows.loans:
            await conn.execute(
                "INSERT INTO borrowers (borrower_id, name, phone, timezone)"
                " VALUES ($1, 'Report Fixture', '+15550100', $2)",
                f"{loan.loan_id}-B",
                loan.timezone,
            )
            stage = "early" if loan.closed_at is None else "cured"
            await conn.execute(
                "INSERT INTO loans (loan_id, borrower_id, product, principal_minor,"
                " outstanding_minor, currency, due_date, jurisdiction, stage, opened_at,"
                " closed_at, strategy, strategy_version)"
                " VALUES ($1, $2, $3, 100000, 100, $4, $5, $6, $7, $8, $9, $10, $11)",
                loan.loan_id,
                f"{loan.loan_id}-B",
                loan.product,
                loan.currency,
                loan.due_date,
                loan.jurisdiction,
                stage,
                loan.opened_at,
                loan.closed_at,
                loan.strategy,
                loan.strategy_version,
            )
            await conn.execute(
                "INSERT INTO collections (loan_id, number, workflow_id, run_id, opened_at)"
                " VALUES ($1, 1, $2, '', $3)",
                loan.loan_id,
                f"collection-{loan.loan_id}",
                loan.opened_at,
            )
        for event in rows.events:
            details: dict[str, Any] = {}
            if event.action == "stage_changed":
                details = {"from": "?", "to": event.to_stage, "days_past_due": 0}
            elif event.action == "loan_opened":
                details = {"outstanding_minor": event.outstanding_minor, "collection": 1}
            elif event.operator is not None:
                details = {"operator": event.operator, "reason": "fixture"}
            await conn.execute(
                "INSERT INTO audit_log (event_key, loan_id, at, actor, action, details)"
                " VALUES ($1, $2, $3, 'workflow', $4, $5::jsonb)",
                f"{event.loan_id}:fixture:{event.seq}",
                event.loan_id,
                event.at,
                event.action,
                json.dumps(details),
            )
        for p in rows.payments:
            await conn.execute(
                "INSERT INTO payments (payment_id, loan_id, amount_minor, currency, paid_at,"
                " source, outstanding_before, outstanding_after, overpaid_minor, stage)"
                " SELECT $1, loan_id, $2, currency, $3, 'fixture', 0, 0, $4, 'early'"
                " FROM loans WHERE loan_id = $5",
                f"{p.loan_id}:pay:{next(numbers)}",
                p.amount_minor,
                p.paid_at,
                p.overpaid_minor,
                p.loan_id,
            )
        for a in rows.attempts:
            n = next(numbers)
            await conn.execute(
                "INSERT INTO contact_attempts (idempotency_key, loan_id, attempt_no, channel,"
                " target, target_id, slot, purpose, stage, at_utc, at_local, outcome)"
                " VALUES ($1, $2, $3, $4, $5, 'fixture', $6, 'reminder', 'early', $7, $8, $9)",
                f"{a.loan_id}:attempt:{n}",
                a.loan_id,
                n,
                a.channel,
                a.target,
                a.slot,
                a.at_utc,
                a.at_local,
                a.outcome,
            )
        for pr in rows.promises:
            await conn.execute(
                "INSERT INTO promises (promise_id, loan_id, amount_minor, currency, due_date,"
                " status, made_at, settled_at)"
                " SELECT $1, loan_id, 1000, currency, $2, $3, $4, $5 FROM loans WHERE loan_id = $6",
                f"{pr.loan_id}:promise:{next(numbers)}",
                pr.made_at.date() + timedelta(days=3),
                pr.status,
                pr.made_at,
                pr.settled_at,
                pr.loan_id,
            )


@pytest.fixture(scope="module")
def product() -> str:
    """A product of this module's own: its group holds the fixture's loans and nothing else."""
    return f"report-{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def written(pool: asyncpg.Pool, product: str) -> Ledger:
    rows = ledger(prefix=f"RPT-{uuid.uuid4().hex[:6]}-", product=product)
    await write_ledger(pool, rows)
    return rows


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def reported(
    cli: Cli, written: Ledger, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path]:
    page = tmp_path_factory.mktemp("report") / "report.html"
    args = ["--since", "2026-03-01", "--until", "2026-03-30", "--by", "product"]
    done = await cli("report", *args, "--json", "--html", str(page), timeout=120)
    assert done.code == 0, done
    figures: dict[str, Any] = done.json()
    return figures, page


def test_the_report_of_the_ledger_is_the_hand_computed_one(
    reported: tuple[dict[str, Any], Path], product: str
) -> None:
    figures, page = reported
    assert figures["period"] == {
        "since": "2026-03-01T00:00:00+00:00",
        "until": "2026-03-31T00:00:00+00:00",
    }
    assert figures["by"] == "product"
    assert figures["html"] == str(page.resolve())
    mine = next(g for g in figures["groups"] if g["key"] == product)
    assert {k: v for k, v in mine.items() if k != "key"} == EXPECTED


async def test_a_bad_split_is_one_line_naming_the_option(cli: Cli) -> None:
    done = await cli("report", "--by", "colour")
    done.assert_user_error("by")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    try:
        executable = ensure_chromium()
    except ChromiumUnavailable as reason:
        pytest.skip(f"no Chromium for the report page: {reason}")
    async with chromium(executable) as launched:
        yield launched


async def test_every_plot_of_the_page_draws_offline(
    browser: Browser, reported: tuple[dict[str, Any], Path]
) -> None:
    _, path = reported
    context = await browser.new_context(offline=True)
    page = await context.new_page()
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    try:
        await page.goto(path.resolve().as_uri(), wait_until="load")
        for name in FIGURES:
            plot = page.locator(f'section[data-figure="{name}"] svg.main-svg').first
            await expect(plot).to_be_visible(timeout=PLOT_TIMEOUT_MS)
        # Each plot has drawn marks: bars, line segments or points with a shape of their own.
        marks = await page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll('section[data-figure]')]
                .map(s => [s.dataset.figure, [...s.querySelectorAll('.trace path')]
                    .filter(p => { const d = p.getAttribute('d') || '';
                                   return d.length > 0 && d !== 'M0,0Z'; }).length]))"""
        )
        assert set(marks) == set(FIGURES)
        assert all(n > 0 for n in marks.values()), marks
        assert problems == []
        assert requests == [path.resolve().as_uri()]
    finally:
        await context.close()


async def test_without_json_the_figures_are_tables(cli: Cli, written: Ledger, product: str) -> None:
    done = await cli("report", "--since", "2026-03-01", "--until", "2026-03-30", "--by", "product")
    assert done.code == 0, done
    assert f"product {product}: 6 loans, 6 collections" in done.stdout
    for title in ("Roll rates", "Cures by stage of entry", "Recovery", "Right-party contact"):
        assert title in done.stdout
    assert "waiting for a person: 3 (dispute 1, hardship review 1, held by collection 1)" in (
        done.stdout
    )
