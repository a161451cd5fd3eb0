"""No PII where nothing is encrypted: ids, search attributes, memo, summaries, details, logs.

Search attributes, workflow ids, the memo, the static summary and details, the current details
and the summaries of activities and timers are what operators see in the Web UI, and some of
them are indexed by the server: the payload codec never covers search attributes or ids. So the
borrower's name and phone numbers, and their references', must never be in any of them, nor in
the worker's logs. The collections here run without encryption, so that all of that is readable
as it is stored; two borrowers (one who never answers, so that calls rotate through the day and
messages follow, and one who talks and promises) keep the worker busy for some collection days
in compressed time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

from tests.integration.support import (
    BUSY_DAY_SECONDS,
    Cli,
    Loans,
    PersonalDetails,
    daytime_zone,
    eventually,
    start_args,
)
from workflows.types import workflow_id_for

pytestmark = pytest.mark.integration

BORROWER = PersonalDetails(
    name="Philippa Xerxes-Lindqvist",
    phone="+15558880404",
    references=(
        ("Bartholomew Quince-Adeyemi", "+15558880505", "sibling"),
        ("Henrietta Vasquez-Olufemi", "+15558880606", "workplace"),
    ),
)


def pii_forms() -> list[str]:
    """Each detail as written, plus the phone numbers' digits alone and the surnames alone."""
    pii = BORROWER.pii()
    forms = list(pii)
    forms += [p.lstrip("+") for p in pii if p.startswith("+")]
    forms += [name.split()[-1] for name in pii if not name.startswith("+")]
    return forms


def assert_no_pii(text: str, where: str) -> None:
    leaked = [form for form in pii_forms() if form in text]
    assert not leaked, f"PII {leaked} in {where}: {text[:2000]}"


def busy_start_args(loan_id: str, persona: str, zone: str) -> list[str]:
    """A loan owing 800.00, on a busy clock: outreach within seconds of the start."""
    return start_args(
        loan_id,
        persona=persona,
        name=BORROWER.name,
        phone=BORROWER.phone,
        references=BORROWER.references,
        timezone=zone,
        outstanding="800.00",
        principal="800.00",
        day_seconds=BUSY_DAY_SECONDS,
    )


class Captured(logging.Handler):
    """Every log record of this process, whole: message, arguments and extra context."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(
            f"{record.name} {record.getMessage()} {record.__dict__!r}" for record in self.records
        )


@pytest.fixture(scope="module")
def logs() -> Iterator[Captured]:
    """Capture all logging, at every level, for the module (the worker runs in this process)."""
    handler = Captured()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


async def test_no_pii_outside_the_payloads(
    logs: Captured, cli: Cli, client: Client, pool: asyncpg.Pool, loans: Loans
) -> None:
    zone = daytime_zone()
    started = {}
    for persona in ("never_answers", "promise_breaker"):
        loan_id = loans.new_id(f"pii-{persona}")
        result = await cli(*busy_start_args(loan_id, persona, zone))
        assert result.code == 0, result
        started[loan_id] = persona

    # Let the worker work: calls, messages, conversations and a promise, over some days.
    async def busy() -> dict[str, int] | None:
        counts = await pool.fetch(
            "SELECT loan_id, count(*) AS n FROM contact_attempts WHERE loan_id = ANY($1)"
            " GROUP BY loan_id",
            list(started),
        )
        attempts = {row["loan_id"]: row["n"] for row in counts}
        # The promise breaker talks at once and then waits for the promised day.
        done = len(attempts) == len(started) and all(n >= 2 for n in attempts.values())
        done = done and sum(attempts.values()) >= 8
        return attempts if done else None

    # Six collection days at most: the two loans share one borrower's budget.
    await eventually(busy, timeout=180, what="eight contact attempts, two on each loan at least")

    for loan_id in started:
        workflow_id = workflow_id_for(loan_id)
        assert_no_pii(workflow_id, "the workflow id")
        handle = client.get_workflow_handle(workflow_id)
        description = await handle.describe()
        attributes = {pair.key.name: pair.value for pair in description.typed_search_attributes}
        assert attributes["LoanId"] == loan_id
        assert_no_pii(repr(attributes), "the search attributes")
        assert_no_pii(repr(await description.memo()), "the memo")
        summary = await description.static_summary()
        assert summary and loan_id in summary
        assert_no_pii(summary, "the static summary")
        assert_no_pii(repr(await description.static_details()), "the static details")
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert metadata.current_details, "the workflow publishes current details"
        assert_no_pii(metadata.current_details, "the current details")

        # Summaries of activities and timers, and search attributes, in every stored event.
        history = await handle.fetch_history()
        shown: list[Any] = []
        for event in history.events:
            if event.HasField("user_metadata"):
                shown += [
                    await client.data_converter.decode([p], [str])
                    for p in (event.user_metadata.summary, event.user_metadata.details)
                    if p.data
                ]
            attributes_name = event.WhichOneof("attributes")
            inner = getattr(event, attributes_name) if attributes_name else None
            if inner is not None and hasattr(inner, "search_attributes"):
                shown.append(str(inner.search_attributes))
        assert len(shown) > 4, "activities and timers carry summaries"
        assert_no_pii(repr(shown), "the event summaries and search attributes")

    # Visibility, as the Web UI lists the loans.
    listed = [
        f"{w.id} {w.typed_search_attributes!r} {w.raw_info!r}"
        async for w in client.list_workflows(
            " OR ".join(f"LoanId = '{loan_id}'" for loan_id in started)
        )
    ]
    assert len(listed) >= len(started)
    assert_no_pii("\n".join(listed), "the workflow list")

    # The worker's logs: workflow, activity, SDK and simulator logging, at every level.
    assert logs.records, "the worker logged nothing; the capture is not working"
    assert_no_pii(logs.text(), "the logs")
