"""The Temporal Web UI as collections operations use it, in a real headless Chromium.

The UI is the one the embedded dev server serves; the loans are started with ``overdue start``
and collected by the production worker. The browser filters the loans by search attributes,
opens one and reads its current details, and takes the screenshots the README shows. They are
written to a temporary directory on every run, and also to ``docs/images/`` when
``OVERDUE_UPDATE_SCREENSHOTS=1`` is set.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Locator, Page, ViewportSize, expect
from temporalio.client import Client

from overdue.stack import EmbeddedStack
from tests.integration.browser import ChromiumUnavailable, chromium, ensure_chromium
from tests.integration.support import Cli, Loans, daytime_zone, eventually, start_args
from workflows.collection import LoanCollection
from workflows.types import workflow_id_for

# Installing Chromium on a fresh machine is part of the first test's setup.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

LATE_QUERY = 'CollectionStage="late" AND DaysPastDue > 20'
# A collection day of 15 real minutes: the late stage's firm SMS (jittered by at most 20
# collection minutes) goes out within about 12 s, while the next local midnight of a borrower
# in daytime is at least 8 collection hours, 5 real minutes, away: DPD holds during the module.
DAY_SECONDS = "900"
HIDDEN_COLUMNS = ("Run ID", "Type", "Start", "End")
COLLECTION_COLUMNS = (
    "CollectionStage",
    "DaysPastDue",
    "Situation",
    "OutstandingMinor",
    "NextContactAt",
)
# The work queue's saved view (docs/work-queue.md) and its columns.
WORK_QUEUE_QUERY = 'WaitingFor IS NOT NULL AND ExecutionStatus="Running"'
QUEUE_COLUMNS = ("WaitingFor", "Assignee", "CollectionStage", "DaysPastDue", "OutstandingMinor")
UI_TIMEOUT_MS = 30_000  # the UI's first load compiles a large bundle; the machine may be busy
VIEWPORT: ViewportSize = {"width": 1600, "height": 860}
UPDATE_SCREENSHOTS = os.environ.get("OVERDUE_UPDATE_SCREENSHOTS") == "1"
DOCS_IMAGES = Path(__file__).parents[2] / "docs" / "images"


@dataclass
class Portfolio:
    """Loans in known places: two late (24 and 20 days past due), one early, one promised."""

    late: str
    late_day_20: str
    early: str
    promised: str


@pytest.fixture(scope="module")
def chromium_executable() -> Path:
    try:
        return ensure_chromium()
    except ChromiumUnavailable as reason:
        pytest.skip(f"no Chromium for the Web UI tests: {reason}")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser(chromium_executable: Path) -> AsyncIterator[Browser]:
    async with chromium(chromium_executable) as launched:
        yield launched


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser) -> AsyncIterator[Page]:
    # UTC and one locale: the screenshots read the same wherever the test runs.
    context = await browser.new_context(viewport=VIEWPORT, timezone_id="UTC", locale="en-US")
    context.set_default_timeout(UI_TIMEOUT_MS)
    opened = await context.new_page()
    yield opened
    await context.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Where each screenshot goes: always a temporary directory, on request the docs too."""
    return [tmp_path_factory.mktemp("web-ui")] + ([DOCS_IMAGES] if UPDATE_SCREENSHOTS else [])


async def screenshot(page: Page, directories: list[Path], name: str) -> None:
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=directory / name)


def days_ago(zone: str, days: int) -> str:
    return (datetime.now(ZoneInfo(zone)).date() - timedelta(days=days)).isoformat()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def portfolio(cli: Cli, client: Client, loans: Loans) -> Portfolio:
    """The loans started, visible to the filters, and the late one's firm SMS sent."""
    zone = daytime_zone()
    placed = Portfolio(
        late=loans.new_id("ui-late"),
        late_day_20=loans.new_id("ui-late-20"),
        early=loans.new_id("ui-early"),
        promised=loans.new_id("ui-promised"),
    )
    for loan_id, due_date in (
        (placed.late, days_ago(zone, 24)),
        (placed.late_day_20, days_ago(zone, 20)),
        (placed.early, days_ago(zone, 1)),
        (placed.promised, days_ago(zone, 1)),
    ):
        started = await cli(
            *start_args(loan_id, timezone=zone, due_date=due_date, day_seconds=DAY_SECONDS)
        )
        assert started.code == 0, started
    promise = await cli(
        "outcome",
        placed.promised,
        "--outcome-id",
        f"{placed.promised}-o1",
        "--promise-amount",
        "100.00",
        "--promise-date",
        days_ago(zone, -3),
    )
    assert promise.code == 0, promise

    async def running(query: str) -> list[str]:
        return [w.id async for w in client.list_workflows(f'{query} AND ExecutionStatus="Running"')]

    # A late loan gets there through continue-as-new from early: wait until each loan's running
    # run is listed where it belongs.
    for loan_id, query in (
        (placed.late, f'{LATE_QUERY} AND LoanId="{placed.late}"'),
        (placed.late_day_20, f'CollectionStage="late" AND LoanId="{placed.late_day_20}"'),
        (placed.early, f'CollectionStage="early" AND LoanId="{placed.early}"'),
        (placed.promised, f'Situation="promised" AND LoanId="{placed.promised}"'),
    ):
        await eventually(partial(running, query), timeout=60, what=f"{loan_id} in visibility")

    handle = client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(placed.late))

    async def firm_sms_sent() -> bool:
        status = await handle.query(LoanCollection.status)
        return status.attempt_count >= 1

    await eventually(firm_sms_sent, timeout=60, what="the late loan's firm SMS")
    return placed


async def open_loan_list(
    page: Page, stack: EmbeddedStack, query: str, columns: tuple[str, ...] = COLLECTION_COLUMNS
) -> None:
    """The workflow list filtered by a visibility query given in the URL, in collection columns.

    The columns are what an operator sets once in the table's "Configure Columns" drawer (the
    browser keeps them): where each loan stands instead of run ids and workflow types.
    """
    await page.goto(f"{stack.ui_url}/namespaces/default/workflows?query={quote(query)}")
    await page.get_by_role("button", name="Configure Columns").click()
    for column in HIDDEN_COLUMNS:
        await page.get_by_role("button", name=f"Remove {column} column").click()
    for column in columns:
        await page.get_by_role("button", name=f"Add {column} column").click()
    await page.get_by_role("button", name="Close").click()
    await expect(page.get_by_role("heading", name="Configure Workflows Table")).to_be_hidden()


def listed(page: Page, loan_id: str) -> Locator:
    """The rows of the workflow list that show the loan's collection (one per run listed)."""
    return page.get_by_test_id("workflows-summary-configurable-table-row").filter(
        has_text=workflow_id_for(loan_id)
    )


async def test_operations_filter_late_loans_and_read_the_current_details(
    page: Page, stack: EmbeddedStack, portfolio: Portfolio, screenshots: list[Path]
) -> None:
    await open_loan_list(page, stack, LATE_QUERY)
    late_running = listed(page, portfolio.late).filter(
        has_text=re.compile("running", re.IGNORECASE)
    )
    await expect(late_running).to_have_count(1)
    # Late but only 20 days past due, and early: both left out by the filter.
    await expect(listed(page, portfolio.late_day_20)).to_have_count(0)
    await expect(listed(page, portfolio.early)).to_have_count(0)
    await screenshot(page, screenshots, "web-ui-late-loans.png")

    await late_running.get_by_role("link", name=workflow_id_for(portfolio.late)).first.click()
    await expect(page.get_by_role("heading", name=workflow_id_for(portfolio.late))).to_be_visible()
    await page.get_by_role("tab", name="User Metadata").click()
    # The UI renders the markdown of the current details in a frame of its own.
    details = page.frame_locator("#user-metadata-current-details")
    await expect(details.get_by_text(re.compile(r"Stage\s+late\s+·\s+DPD\s+24"))).to_be_visible()
    await expect(
        details.get_by_text(re.compile(r"Overdue\s+500\.00 · Total outstanding\s+500\.00 USD"))
    ).to_be_visible()
    await expect(details.get_by_text(re.compile(r"Last outcome\s+\w+"))).to_be_visible()
    local_and_utc = (
        r"Next\s+\w+ .* at \d{4}-\d\d-\d\d \d\d:\d\d \S+ \(UTC \d{4}-\d\d-\d\d \d\d:\d\d\)"
    )
    await expect(details.get_by_text(re.compile(local_and_utc))).to_be_visible()
    await screenshot(page, screenshots, "web-ui-loan-details.png")

    await page.get_by_role("tab", name="Timeline").click()
    # The firm SMS (a local activity, named by its type) and the sleep after it (by its summary).
    await expect(page.get_by_text("send_sms", exact=True).first).to_be_visible()
    await expect(page.get_by_text(re.compile(r"wait for .* borrower-local")).first).to_be_visible()
    heading = page.get_by_role("heading", name="Timeline", exact=True)
    timeline = heading.locator("xpath=ancestor::div[3]")
    for directory in screenshots:
        await timeline.screenshot(path=directory / "web-ui-loan-timeline.png")


async def test_operations_find_the_loans_with_a_promise_to_pay(
    page: Page, stack: EmbeddedStack, portfolio: Portfolio, screenshots: list[Path]
) -> None:
    await open_loan_list(page, stack, 'Situation="promised"')
    await expect(listed(page, portfolio.promised)).to_have_count(1)
    for other in (portfolio.late, portfolio.late_day_20, portfolio.early):
        await expect(listed(page, other)).to_have_count(0)
    await screenshot(page, screenshots, "web-ui-promises.png")


async def test_a_loan_past_early_still_shows_its_summary(
    page: Page, stack: EmbeddedStack, portfolio: Portfolio
) -> None:
    """Loan id, product and amount band stay in view after the stage changes."""
    await page.goto(
        f"{stack.ui_url}/namespaces/default/workflows/{workflow_id_for(portfolio.late)}"
    )
    await page.get_by_role("tab", name="User Metadata").click()
    details = page.frame_locator("#user-metadata-current-details")
    await expect(details.get_by_text(re.compile(r"Stage\s+late"))).to_be_visible()
    # The summary panel and the details frame are filled from one description of the run.
    glance = re.compile(rf"Loan {re.escape(portfolio.late)} · ")
    shown = await page.get_by_text(glance).count() + await details.get_by_text(glance).count()
    assert shown > 0, "no summary of the loan on its page"


async def test_a_malformed_signal_shows_as_a_rejection_in_the_current_details(
    page: Page, stack: EmbeddedStack, cli: Cli, client: Client, loans: Loans
) -> None:
    """What the UI's signal form sends with only the payment id typed in is refused, and the
    loan's page says so: the signal and the field, never the value."""
    loan_id = loans.new_id("ui-refused")
    zone = daytime_zone()
    started = await cli(
        *start_args(loan_id, timezone=zone, due_date=days_ago(zone, 2), day_seconds=DAY_SECONDS)
    )
    assert started.code == 0, started
    handle = client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(loan_id))
    await handle.signal("payment_received", {"payment_id": f"{loan_id}-p1"})

    async def refused() -> bool:
        return bool((await handle.query(LoanCollection.status)).refusals)

    await eventually(refused, timeout=60, what="the refusal in status")
    await page.goto(f"{stack.ui_url}/namespaces/default/workflows/{workflow_id_for(loan_id)}")
    await page.get_by_role("tab", name="User Metadata").click()
    details = page.frame_locator("#user-metadata-current-details")
    await expect(
        details.get_by_text(re.compile(r"Refused\s+payment_received\s+\(amount_minor\)"))
    ).to_be_visible()


# The console attributes as columns: the list read as money, holds and legal notices in view.
CONSOLE_COLUMNS = (
    "CollectionStage",
    "Currency",
    "OutstandingAmount",
    "OnHold",
    "Situation",
    "Outreach",
    "LegalNoticeAt",
)


async def test_operations_list_loans_as_money_and_find_paused_ones(
    page: Page,
    stack: EmbeddedStack,
    cli: Cli,
    client: Client,
    loans: Loans,
    screenshots: list[Path],
) -> None:
    """``Currency`` and ``OutstandingAmount`` filter by money (no mixing of currencies), and
    ``OnHold`` lists the paused loans; all of them show as columns."""
    zone = daytime_zone()
    held, usd, cny = loans.new_id("ui-held"), loans.new_id("ui-usd"), loans.new_id("ui-cny")
    for loan_id, outstanding, currency in (
        (held, "750.00", "USD"),
        (usd, "2500.00", "USD"),
        (cny, "5200.00", "CNY"),
    ):
        started = await cli(
            *start_args(
                loan_id,
                timezone=zone,
                due_date=days_ago(zone, 2),
                day_seconds=DAY_SECONDS,
                outstanding=outstanding,
                principal="9000.00",
                currency=currency,
            )
        )
        assert started.code == 0, started
    paused = await cli("pause", held, "--reason", "fraud check", "--by", "ops:ann")
    assert paused.code == 0, paused

    async def listed_by(query: str, loan_id: str) -> bool:
        found = [
            w.id
            async for w in client.list_workflows(
                f'{query} AND LoanId="{loan_id}" AND ExecutionStatus="Running"'
            )
        ]
        return bool(found)

    money = 'Currency="USD" AND OutstandingAmount >= 1000 AND ExecutionStatus="Running"'
    await eventually(partial(listed_by, money, usd), timeout=60, what=f"{usd} by money")
    await eventually(partial(listed_by, "OnHold=true", held), timeout=60, what=f"{held} on hold")

    await open_loan_list(page, stack, money, CONSOLE_COLUMNS)
    row = listed(page, usd)
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("USD")
    await expect(row).to_contain_text("2500")
    await expect(row).to_contain_text("normal")  # the machine's situation state
    # 5,200 CNY is more than 1,000 but not in USD; 750 USD is less.
    await expect(listed(page, cny)).to_have_count(0)
    await expect(listed(page, held)).to_have_count(0)
    await screenshot(page, screenshots, "web-ui-money.png")

    await page.goto(
        f"{stack.ui_url}/namespaces/default/workflows?query="
        + quote('OnHold=true AND ExecutionStatus="Running"')
    )
    await expect(listed(page, held)).to_have_count(1)
    await expect(listed(page, usd)).to_have_count(0)


async def test_a_legal_notice_is_found_from_the_list_and_read_from_the_loan(
    page: Page,
    stack: EmbeddedStack,
    cli: Cli,
    client: Client,
    loans: Loans,
    screenshots: list[Path],
) -> None:
    """``LegalNoticeAt`` lists the loans served a legal notice; the loan's details list its
    notices with their dates and the command that prints one, and that command prints it."""
    zone = daytime_zone()
    loan_id = loans.new_id("ui-legal")
    started = await cli(
        *start_args(loan_id, timezone=zone, due_date=days_ago(zone, 30), day_seconds=DAY_SECONDS)
    )
    assert started.code == 0, started
    handle = client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(loan_id))

    async def served() -> bool:
        return bool((await handle.query(LoanCollection.status)).served_notices)

    await eventually(served, timeout=90, what="the legal notice")
    query = 'LegalNoticeAt > "2000-01-01T00:00:00Z" AND ExecutionStatus="Running"'

    async def listed_with_notice() -> bool:
        found = [w.id async for w in client.list_workflows(f'{query} AND LoanId="{loan_id}"')]
        return bool(found)

    await eventually(listed_with_notice, timeout=60, what=f"{loan_id} with LegalNoticeAt")
    await open_loan_list(page, stack, query, CONSOLE_COLUMNS)
    row = listed(page, loan_id)
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("legal")

    await row.get_by_role("link", name=workflow_id_for(loan_id)).first.click()
    await expect(page.get_by_role("heading", name=workflow_id_for(loan_id))).to_be_visible()
    await page.get_by_role("tab", name="User Metadata").click()
    details = page.frame_locator("#user-metadata-current-details")
    # The newest run tells the whole story, the earlier runs' stages included.
    await expect(
        details.get_by_text(re.compile(r"Stages\s+early \S+ → middle \S+ → late \S+ → legal"))
    ).to_be_visible()
    notices = details.get_by_text(re.compile(r"Notices\s+legal_notice \d{4}-\d\d-\d\d"))
    await expect(notices).to_be_visible()
    await expect(notices).to_contain_text(f"overdue notice show {loan_id} legal_notice")
    await screenshot(page, screenshots, "web-ui-legal-notice.png")

    # What the details point at: the letter as served, from the ledger's copy.
    shown = await cli("notice", "show", loan_id, "--json")
    assert shown.code == 0, shown
    letter = shown.json()
    assert (letter["notice_key"], letter["kind"]) == (f"{loan_id}:legal_notice", "legal_notice")
    assert loan_id in letter["text"]


async def test_the_work_queue_is_a_saved_view(
    page: Page,
    stack: EmbeddedStack,
    cli: Cli,
    client: Client,
    loans: Loans,
    screenshots: list[Path],
) -> None:
    """An operator saves the work queue's query as a view once; opening it later lists the
    loans waiting on a person, with what they wait for and who is on it."""
    zone = daytime_zone()
    disputed, complained = loans.new_id("ui-queue-dispute"), loans.new_id("ui-queue-complaint")
    for loan_id in (disputed, complained):
        started = await cli(
            *start_args(loan_id, timezone=zone, due_date=days_ago(zone, 3), day_seconds=DAY_SECONDS)
        )
        assert started.code == 0, started
    for loan_id, fact in ((disputed, "--dispute"), (complained, "--complaint=sale")):
        told = await cli("outcome", loan_id, "--outcome-id", f"{loan_id}-o1", fact)
        assert told.code == 0, told
    handle = client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(disputed))

    async def dispute_case() -> str | None:
        cases = (await handle.query(LoanCollection.status)).cases
        return cases[0].case_id if cases else None

    case_id = await eventually(dispute_case, timeout=60, what="the dispute's case")
    assert (await cli("assign", case_id, "--to", "ops:ann", "--by", "ops:lead")).code == 0

    async def listed_by_server() -> bool:
        query = f'{WORK_QUEUE_QUERY} AND Assignee="ops:ann" AND LoanId="{disputed}"'
        return bool([w async for w in client.list_workflows(query)])

    await eventually(listed_by_server, timeout=60, what="the assigned case in visibility")

    await open_loan_list(page, stack, WORK_QUEUE_QUERY, columns=QUEUE_COLUMNS)
    await page.get_by_role("button", name="Save as New").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_role("textbox").fill("Work queue")
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()

    # Later: the list unfiltered, then the saved view.
    await page.goto(f"{stack.ui_url}/namespaces/default/workflows")
    await page.get_by_role("button", name=re.compile("Saved Views")).click()
    await page.get_by_text("Work queue", exact=True).click()
    row = listed(page, disputed)
    await expect(row).to_have_count(1)
    await expect(row.get_by_text("dispute", exact=True)).to_be_visible()
    await expect(row.get_by_text("ops:ann", exact=True)).to_be_visible()
    await expect(listed(page, complained).get_by_text("complaint", exact=True)).to_be_visible()
    await screenshot(page, screenshots, "web-ui-work-queue.png")
