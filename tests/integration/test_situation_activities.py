"""The situation activities against the real PostgreSQL: every write once, however often retried.

The activities are called directly, as plain async methods: a retry is the same call again. The
only fake is the credit bureau, the external adapter, which counts its calls.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError

from activities.ledger import LedgerActivities
from activities.situations import (
    INVALID_SITUATION_RECORD,
    OUTCOME_CONFLICT,
    UNKNOWN_PROMISE,
    SituationActivities,
)
from overdue.simulator import SimulatedCreditBureau
from workflows.commands import (
    BrokenPromise,
    ComplaintCase,
    OpenLoan,
    OutcomeRecord,
    PromiseRecord,
    PromiseSettlement,
    SituationEvent,
)
from workflows.types import Borrower, ContactOutcome, Hardship, Loan, Promise

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 21, 15, 30, tzinfo=UTC)
BORROWER_NAME, BORROWER_PHONE = "Ann Lee", "+15550001000"


class CountingBureau:
    """A credit bureau that accepts every report and counts them."""

    def __init__(self) -> None:
        self.reports: list[BrokenPromise] = []

    async def report_negative(self, report: BrokenPromise) -> str:
        self.reports.append(report)
        return f"BUREAU-{len(self.reports)}"


async def open_loan(pool: asyncpg.Pool, currency: str = "USD", prefix: str = "sit-") -> str:
    loan_id = f"{prefix}{uuid.uuid4().hex[:10]}"
    loan = Loan(
        loan_id=loan_id,
        borrower=Borrower(f"b-{loan_id}", BORROWER_NAME, BORROWER_PHONE, "America/New_York"),
        product="personal",
        principal_minor=100_000,
        outstanding_minor=50_000,
        currency=currency,
        due_date="2026-11-19",
        jurisdiction="us",
    )
    await LedgerActivities(pool).open_loan(OpenLoan(loan, AT - timedelta(days=1)))
    return loan_id


async def audit(pool: asyncpg.Pool, loan_id: str, action: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT event_key, actor, details FROM audit_log WHERE loan_id = $1 AND action = $2"
        " ORDER BY seq",
        loan_id,
        action,
    )
    return [{**dict(r), "details": json.loads(r["details"])} for r in rows]


async def count(pool: asyncpg.Pool, table: str, loan_id: str) -> int:
    return int(await pool.fetchval(f"SELECT count(*) FROM {table} WHERE loan_id = $1", loan_id))


def promise_record(loan_id: str, n: int = 1, amount_minor: int = 20_000) -> PromiseRecord:
    return PromiseRecord(
        promise_id=f"{loan_id}:promise:{n}",
        loan_id=loan_id,
        amount_minor=amount_minor,
        currency="USD",
        due_date="2026-11-25",
        made_at=AT,
        source="collector:ann",
    )


def broken(loan_id: str, promise_id: str, *, fee_minor: int = 1500) -> BrokenPromise:
    return BrokenPromise(
        promise_id=promise_id,
        loan_id=loan_id,
        borrower_id=f"b-{loan_id}",
        amount_minor=20_000,
        paid_minor=5_000,
        currency="USD",
        fee_minor=fee_minor,
        broken_count=1,
        at=AT + timedelta(days=6),
    )


# --- contact outcomes -------------------------------------------------------------------------


async def test_a_contact_outcome_is_recorded_once_as_reported(pool: asyncpg.Pool) -> None:
    loan_id = await open_loan(pool)
    situations = SituationActivities(pool, CountingBureau())
    outcome = ContactOutcome(
        outcome_id=f"{loan_id}:out:1",
        source="collector:ann",
        at=AT,
        situation="hardship",
        promise=Promise(amount_minor=20_000, due_date="2026-11-25"),
        hardship=Hardship(term="short", reason="salary late"),
        note="will pay on Tuesday",
    )
    record = OutcomeRecord(loan_id=loan_id, outcome=outcome, stage="early")

    await situations.record_contact_outcome(record)
    await situations.record_contact_outcome(record)  # a retry

    rows = await pool.fetch("SELECT * FROM contact_outcomes WHERE loan_id = $1", loan_id)
    assert len(rows) == 1
    row = rows[0]
    assert (row["outcome_id"], row["source"], row["at"], row["right_party"], row["stage"]) == (
        outcome.outcome_id,
        "collector:ann",
        AT,
        True,
        "early",
    )
    facts = {
        "situation": "hardship",
        "promise": {"amount_minor": 20_000, "due_date": "2026-11-25"},
        "hardship": {"term": "short", "reason": "salary late"},
        "note": "will pay on Tuesday",
    }
    assert json.loads(row["details"]) == facts
    entries = await audit(pool, loan_id, "contact_outcome")
    assert entries == [
        {
            "event_key": f"{loan_id}:outcome:{outcome.outcome_id}",
            "actor": "collector:ann",
            "details": {
                "outcome_id": outcome.outcome_id,
                "right_party": True,
                "stage": "early",
                **facts,
            },
        }
    ]
    # What was reported, and nothing looked up: neither the borrower's name nor phone.
    text = json.dumps(entries)
    assert BORROWER_NAME not in text and BORROWER_PHONE not in text


async def test_a_third_party_outcome_keeps_only_its_facts(pool: asyncpg.Pool) -> None:
    loan_id = await open_loan(pool)
    situations = SituationActivities(pool, CountingBureau())
    outcome = ContactOutcome(
        outcome_id=f"{loan_id}:out:2",
        source="dialer:east-1",
        at=AT,
        right_party=False,
        death_reported_by="neighbour",
    )
    await situations.record_contact_outcome(OutcomeRecord(loan_id, outcome, "middle"))
    row = await pool.fetchrow(
        "SELECT right_party, details FROM contact_outcomes WHERE outcome_id = $1",
        outcome.outcome_id,
    )
    assert row is not None
    assert row["right_party"] is False
    assert json.loads(row["details"]) == {"death_reported_by": "neighbour"}


async def test_an_outcome_id_of_another_loan_is_a_conflict(pool: asyncpg.Pool) -> None:
    first, second = await open_loan(pool), await open_loan(pool)
    situations = SituationActivities(pool, CountingBureau())
    outcome = ContactOutcome(outcome_id=f"{first}:shared", source="desk:x", at=AT, note="hi")
    await situations.record_contact_outcome(OutcomeRecord(first, outcome, "early"))

    with pytest.raises(ApplicationError) as raised:
        await situations.record_contact_outcome(OutcomeRecord(second, outcome, "early"))
    assert raised.value.type == OUTCOME_CONFLICT
    assert raised.value.non_retryable
    assert await count(pool, "contact_outcomes", second) == 0
    assert await audit(pool, second, "contact_outcome") == []
    assert await count(pool, "contact_outcomes", first) == 1


# --- complaint cases --------------------------------------------------------------------------


async def test_a_complaint_case_is_opened_once(pool: asyncpg.Pool) -> None:
    loan_id = await open_loan(pool)
    situations = SituationActivities(pool, CountingBureau())
    case = ComplaintCase(
        case_id=f"{loan_id}:complaint:out-1",
        loan_id=loan_id,
        category="collector_conduct",
        route="compliance",
        opened_at=AT,
        note="called four times",
    )
    await situations.open_complaint_case(case)
    await situations.open_complaint_case(case)

    rows = await pool.fetch(
        "SELECT case_id, category, route, status, note, opened_at FROM complaint_cases"
        " WHERE loan_id = $1",
        loan_id,
    )
    assert [dict(r) for r in rows] == [
        {
            "case_id": case.case_id,
            "category": "collector_conduct",
            "route": "compliance",
            "status": "open",
            "note": "called four times",
            "opened_at": AT,
        }
    ]
    assert await audit(pool, loan_id, "complaint_opened") == [
        {
            "event_key": f"{loan_id}:complaint:{case.case_id}",
            "actor": "workflow",
            "details": {
                "case_id": case.case_id,
                "category": "collector_conduct",
                "route": "compliance",
            },
        }
    ]


async def test_a_complaint_outside_the_categories_is_refused_for_good(pool: asyncpg.Pool) -> None:
    loan_id = await open_loan(pool)
    situations = SituationActivities(pool, CountingBureau())
    case = ComplaintCase(f"{loan_id}:complaint:x", loan_id, "rudeness", "compliance", AT)
    with pytest.raises(ApplicationError) as raised:
        await situations.open_complaint_case(case)
    assert raised.value.type == INVALID_SITUATION_RECORD and raised.value.non_retryable
    assert await count(pool, "complaint_cases", loan_id) == 0
    # The table refuses it too, whoever writes it.
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "INSERT INTO complaint_cases (case_id, loan_id, category, route, opened_at)"
            " VALUES ($1, $2, 'rudeness', 'x', now())",
            case.case_id,
            loan_id,
        )


# --- promises ---------------------------------------------------------------------------------


async def test_a_promise_is_recorded_once_and_ends_once(pool: asyncpg.Pool) -> None:
    loan_id = await open_loan(pool)
    situations = SituationActivities(pool, CountingBureau())
    made = promise_record(loan_id)
    await situations.record_promise(made)
    await situations.record_promise(made)

    query = (
        "SELECT promise_id, amount_minor, trim(currency) AS currency, due_date::text AS due_date,"
        " status, made_at, source, paid_minor, settled_at FROM promises WHERE loan_id = $1"
    )
    rows = await pool.fetch(query, loan_id)
    assert [dict(r) for r in rows] == [
        {
            "promise_id": made.promise_id,
            "amount_minor": 20_000,
            "currency": "USD",
            "due_date": "2026-11-25",
            "status": "open",
            "made_at": AT,
            "source": "collector:ann",
            "paid_minor": 0,
            "settled_at": None,
        }
    ]
    made_entries = await audit(pool, loan_id, "promise_made")
    assert len(made_entries) == 1
    assert made_entries[0]["actor"] == "collector:ann"
    assert made_entries[0]["details"] == {
        "promise_id": made.promise_id,
        "amount_minor": 20_000,
        "currency": "USD",
        "due_date": "2026-11-25",
    }

    settled_at = AT + timedelta(days=3)
    kept = PromiseSettlement(made.promise_id, loan_id, "kept", 20_000, settled_at)
    await situations.settle_promise(kept)
    await situations.settle_promise(kept)
    # A promise ends once: a later, different ending changes nothing.
    await situations.settle_promise(
        PromiseSettlement(made.promise_id, loan_id, "broken", 0, settled_at + timedelta(days=1))
    )

    row = await pool.fetchrow(query, loan_id)
    assert row is not None
    assert (row["status"], row["paid_minor"], row["settled_at"]) == ("kept", 20_000, settled_at)
    assert await audit(pool, loan_id, "promise_kept") == [
        {
            "event_key": f"{loan_id}:promise:{made.promise_id}:kept",
            "actor": "workflow",
            "details": {"promise_id": made.promise_id, "paid_minor": 20_000},
        }
    ]
    assert await audit(pool, loan_id, "promise_broken") == []


async def test_a_partially_kept_promise(pool: asyncpg.Pool) -> None:
    loan_id = await open_loan(pool)
    situations = SituationActivities(pool, CountingBureau())
    made = promise_record(loan_id)
    await situations.record_promise(made)
    ending = PromiseSettlement(made.promise_id, loan_id, "partially_kept", 5_000, AT)
    await situations.settle_promise(ending)
    await situations.settle_promise(ending)
    row = await pool.fetchrow(
        "SELECT status, paid_minor FROM promises WHERE promise_id = $1", made.promise_id
    )
    assert row is not None and tuple(row) == ("partially_kept", 5_000)
    assert len(await audit(pool, loan_id, "promise_partially_kept")) == 1


async def test_settling_what_cannot_be_settled_is_refused_for_good(pool: asyncpg.Pool) -> None:
    loan_id = await open_loan(pool)
    situations = SituationActivities(pool, CountingBureau())
    with pytest.raises(ApplicationError) as unknown:
        await situations.settle_promise(
            PromiseSettlement(f"{loan_id}:promise:9", loan_id, "kept", 1, AT)
        )
    assert unknown.value.type == UNKNOWN_PROMISE and unknown.value.non_retryable
    made = promise_record(loan_id)
    await situations.record_promise(made)
    for bad in (
        PromiseSettlement(made.promise_id, loan_id, "forgotten", 0, AT),
        PromiseSettlement(made.promise_id, loan_id, "kept", -1, AT),
    ):
        with pytest.raises(ApplicationError) as raised:
            await situations.settle_promise(bad)
        assert raised.value.type == INVALID_SITUATION_RECORD and raised.value.non_retryable
    status = await pool.fetchval(
        "SELECT status FROM promises WHERE promise_id = $1", made.promise_id
    )
    assert status == "open"


# --- broken promises --------------------------------------------------------------------------


async def test_a_broken_promise_reaches_the_bureau_once(pool: asyncpg.Pool) -> None:
    loan_id = await open_loan(pool)
    bureau = CountingBureau()
    situations = SituationActivities(pool, bureau)
    made = promise_record(loan_id)
    await situations.record_promise(made)
    report = broken(loan_id, made.promise_id)

    first = await situations.report_broken_promise(report)
    again = await situations.report_broken_promise(report)  # a retry

    assert len(bureau.reports) == 1
    assert bureau.reports[0] == report
    assert first == again
    assert (first.record_key, first.bureau_reference) == (f"{made.promise_id}:negative", "BUREAU-1")
    records = await pool.fetch(
        "SELECT record_key, kind, bureau_reference, details, reported_at FROM credit_records"
        " WHERE loan_id = $1",
        loan_id,
    )
    assert len(records) == 1
    record = records[0]
    assert (record["record_key"], record["kind"], record["bureau_reference"]) == (
        f"{made.promise_id}:negative",
        "broken_promise",
        "BUREAU-1",
    )
    assert record["reported_at"] == report.at
    assert json.loads(record["details"]) == {
        "promise_id": made.promise_id,
        "borrower_id": f"b-{loan_id}",
        "amount_minor": 20_000,
        "paid_minor": 5_000,
        "currency": "USD",
        "broken_count": 1,
    }
    fees = await pool.fetch(
        "SELECT fee_key, kind, amount_minor, trim(currency) AS currency, charged_at FROM fees"
        " WHERE loan_id = $1",
        loan_id,
    )
    assert [dict(f) for f in fees] == [
        {
            "fee_key": f"{made.promise_id}:failed_debit",
            "kind": "failed_debit",
            "amount_minor": 1500,
            "currency": "USD",
            "charged_at": report.at,
        }
    ]
    entries = await audit(pool, loan_id, "promise_broken_reported")
    assert len(entries) == 1
    assert entries[0]["event_key"] == f"{loan_id}:promise:{made.promise_id}:reported"
    assert entries[0]["details"]["bureau_reference"] == "BUREAU-1"
    assert entries[0]["details"]["fee_minor"] == 1500

    # Another broken promise of the same loan is reported on its own.
    second = promise_record(loan_id, 2)
    await situations.record_promise(second)
    other = await situations.report_broken_promise(broken(loan_id, second.promise_id))
    assert other.bureau_reference == "BUREAU-2"
    assert len(bureau.reports) == 2
    assert await count(pool, "credit_records", loan_id) == 2
    assert await count(pool, "fees", loan_id) == 2


async def test_no_fee_row_when_the_fee_is_zero(pool: asyncpg.Pool) -> None:
    loan_id = await open_loan(pool)
    bureau = CountingBureau()
    situations = SituationActivities(pool, bureau)
    made = promise_record(loan_id)
    await situations.record_promise(made)
    report = broken(loan_id, made.promise_id, fee_minor=0)
    await situations.report_broken_promise(report)
    await situations.report_broken_promise(report)
    assert len(bureau.reports) == 1
    assert await count(pool, "credit_records", loan_id) == 1
    assert await count(pool, "fees", loan_id) == 0
    entries = await audit(pool, loan_id, "promise_broken_reported")
    assert len(entries) == 1 and entries[0]["details"]["fee_minor"] == 0


async def test_the_simulated_bureau_answers_by_promise(pool: asyncpg.Pool) -> None:
    loan_id = await open_loan(pool)
    situations = SituationActivities(pool, SimulatedCreditBureau())
    made = promise_record(loan_id)
    await situations.record_promise(made)
    report = await situations.report_broken_promise(broken(loan_id, made.promise_id))
    digest = hashlib.sha256(made.promise_id.encode()).hexdigest()[:12].upper()
    assert report.bureau_reference == f"SIM-{digest}"
    assert await SimulatedCreditBureau().report_negative(broken("x", made.promise_id)) == (
        report.bureau_reference
    )


# --- situation events -------------------------------------------------------------------------


async def test_a_situation_event_is_audited_once(pool: asyncpg.Pool) -> None:
    loan_id = await open_loan(pool)
    situations = SituationActivities(pool, CountingBureau())
    event = SituationEvent(
        loan_id=loan_id,
        event_key=f"{loan_id}:dispute_opened:out-7",
        action="dispute_opened",
        at=AT,
        details={"outcome_id": "out-7"},
    )
    await situations.record_situation_event(event)
    await situations.record_situation_event(event)
    assert await audit(pool, loan_id, "dispute_opened") == [
        {"event_key": event.event_key, "actor": "workflow", "details": {"outcome_id": "out-7"}}
    ]
