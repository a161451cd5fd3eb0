"""Checking reported outcomes and dispute resolutions: every problem names its field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest

from overdue.api_bodies import ConversationChannel
from overdue.outcomes import (
    SITUATION_CODES,
    LoanView,
    OutcomeInvalid,
    check_outcome,
    outcome_from_fields,
    resolution_from_fields,
)
from workflows.types import ContactOutcome, Hardship, Promise
from workflows.vocabulary import CONVERSATION_CHANNELS, ComplaintCategory, Situation

# 2026-11-20 03:00 UTC is still the 19th in New York: the borrower's today is 2026-11-19.
COLLECTION_TIME = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
LOAN = LoanView(
    loan_id="L-1",
    currency="USD",
    outstanding_minor=50_000,
    timezone="America/New_York",
    collection_time=COLLECTION_TIME,
)


def build(**fields: Any) -> ContactOutcome:
    fields.setdefault("outcome_id", "OUT-1")
    return outcome_from_fields(LOAN, **fields)


def refused(field_name: str, **fields: Any) -> str:
    with pytest.raises(OutcomeInvalid) as raised:
        build(**fields)
    message = str(raised.value)
    assert message.startswith(f"{field_name}: "), message
    assert "\n" not in message
    return message


def test_a_note_alone_is_an_outcome_at_collection_time() -> None:
    outcome = build(note="  called back  ")
    assert outcome == ContactOutcome(
        outcome_id="OUT-1",
        source="collector:cli",
        at=COLLECTION_TIME,
        right_party=True,
        note="called back",
    )


def test_every_fact_together() -> None:
    outcome = build(
        outcome_id="OUT-2",
        source="collector:ann",
        situation=Situation.HARDSHIP,
        promise_amount="120.50",
        promise_date="2026-11-19",
        complaint=ComplaintCategory.COLLECTOR_CONDUCT,
        dispute=True,
        hardship="short",
        hardship_reason="salary late",
        deceased_reported_by="sister",
        cease=True,
        refusal=True,
        note="long call",
    )
    assert outcome.promise == Promise(amount_minor=12050, due_date="2026-11-19")
    assert outcome.hardship == Hardship(term="short", reason="salary late")
    assert outcome.complaint == "collector_conduct"
    assert outcome.death_reported_by == "sister"
    assert (outcome.dispute, outcome.cease, outcome.refusal) == (True, True, True)


def test_the_promise_amount_follows_the_loan_currency() -> None:
    yen = LoanView("L-2", "JPY", 50_000, "Asia/Tokyo", COLLECTION_TIME)
    outcome = outcome_from_fields(
        yen, outcome_id="OUT-3", promise_amount="1500", promise_date="2026-12-01"
    )
    assert outcome.promise == Promise(amount_minor=1500, due_date="2026-12-01")
    with pytest.raises(OutcomeInvalid, match=r"^promise_amount: .*decimal places"):
        outcome_from_fields(
            yen, outcome_id="OUT-3", promise_amount="15.5", promise_date="2026-12-01"
        )


def test_an_outcome_reports_something() -> None:
    assert "at least one of" in refused("outcome")
    refused("outcome", right_party=False)
    refused("outcome", situation=None, promise_amount="  ", promise_date="")


@pytest.mark.parametrize(
    ("field_name", "fields"),
    [
        ("outcome_id", {"outcome_id": ""}),
        ("outcome_id", {"outcome_id": "has space"}),
        ("outcome_id", {"outcome_id": "x" * 65}),
        ("source", {"source": "ann"}),
        ("source", {"source": "collector:"}),
        ("source", {"source": ""}),
        ("situation", {"situation": "bankrupt"}),
        ("situation", {"situation": ""}),
        ("situation", {"situation": Situation.NONE}),
        ("promise_amount", {"promise_amount": "-5", "promise_date": "2026-12-01"}),
        ("promise_amount", {"promise_amount": "0", "promise_date": "2026-12-01"}),
        ("promise_amount", {"promise_amount": "ten", "promise_date": "2026-12-01"}),
        ("promise_amount", {"promise_amount": "1.005", "promise_date": "2026-12-01"}),
        ("promise_amount", {"promise_amount": "500.01", "promise_date": "2026-12-01"}),
        ("promise_amount", {"promise_date": "2026-12-01"}),
        ("promise_date", {"promise_amount": "10"}),
        ("promise_date", {"promise_amount": "10", "promise_date": "2026-13-01"}),
        ("promise_date", {"promise_amount": "10", "promise_date": "next week"}),
        ("promise_date", {"promise_amount": "10", "promise_date": "2026-11-18"}),
        ("complaint", {"complaint": "rudeness"}),
        ("complaint", {"complaint": ""}),
        ("hardship", {"hardship": "medium", "hardship_reason": "ill"}),
        ("hardship_reason", {"hardship": "short"}),
        ("hardship_reason", {"hardship": "long", "hardship_reason": "   "}),
        ("hardship_reason", {"hardship_reason": "ill"}),
        ("hardship_reason", {"hardship": "long", "hardship_reason": "x" * 201}),
        ("deceased_reported_by", {"deceased_reported_by": " "}),
        ("note", {"note": ""}),
        ("note", {"note": "x" * 1001}),
        ("channel", {"channel": "fax"}),
        ("channel", {"channel": ""}),
        ("channel", {"channel": "CALL"}),
    ],
)
def test_bad_fields_are_named(field_name: str, fields: dict[str, Any]) -> None:
    fields.setdefault("note", "n")  # so that only the field under test is at fault
    refused(field_name, **fields)


def test_the_channel_says_how_the_conversation_was_held() -> None:
    assert build(note="n").channel == "call"
    for channel in CONVERSATION_CHANNELS:
        assert build(note="n", channel=f" {channel} ").channel == channel
    assert "inbound_call" in refused("channel", note="n", channel="phone")
    # The HTTP API's schema offers the same values.
    assert get_args(ConversationChannel) == CONVERSATION_CHANNELS
    wrong = ContactOutcome("OUT-9", "dialer:east-1", COLLECTION_TIME, note="ok", channel="fax")
    with pytest.raises(OutcomeInvalid, match=r"^channel: "):
        check_outcome(wrong, LOAN)


def test_a_promise_in_the_past_says_the_borrowers_today() -> None:
    message = refused("promise_date", promise_amount="10", promise_date="2026-11-18")
    assert "2026-11-19" in message
    # UTC is already on the 20th; the borrower's today (the 19th) is what counts.
    assert build(promise_amount="10", promise_date="2026-11-19").promise is not None


def test_the_whole_balance_may_be_promised() -> None:
    outcome = build(promise_amount="500.00", promise_date="2026-11-30")
    assert outcome.promise == Promise(amount_minor=50_000, due_date="2026-11-30")


@pytest.mark.parametrize(
    ("field_name", "fields"),
    [
        ("promise_amount", {"promise_amount": "10", "promise_date": "2026-12-01"}),
        ("dispute", {"dispute": True}),
        ("hardship", {"hardship": "long", "hardship_reason": "ill"}),
        ("cease", {"cease": True}),
        ("refusal", {"refusal": True}),
    ],
)
def test_only_the_borrower_commits_the_borrower(field_name: str, fields: dict[str, Any]) -> None:
    message = refused(field_name, right_party=False, **fields)
    assert "right-party" in message


def test_a_third_party_may_report_a_death_a_complaint_or_a_note() -> None:
    outcome = build(
        right_party=False,
        deceased_reported_by="neighbour",
        complaint=ComplaintCategory.COLLECTOR_CONDUCT,
        note="said he passed away",
        situation=Situation.DECEASED,
    )
    assert outcome.right_party is False
    assert outcome.death_reported_by == "neighbour"


def test_situation_codes_come_from_the_workflow_types() -> None:
    assert set(SITUATION_CODES) == set(Situation) - {Situation.NONE}
    for code in SITUATION_CODES:
        assert build(situation=code).situation == code


def test_check_outcome_refuses_what_services_build_wrongly() -> None:
    good = ContactOutcome("OUT-9", "dialer:east-1", COLLECTION_TIME, note="ok")
    check_outcome(good, LOAN)
    naive = ContactOutcome("OUT-9", "dialer:east-1", datetime(2026, 11, 20), note="ok")
    with pytest.raises(OutcomeInvalid, match=r"^at: "):
        check_outcome(naive, LOAN)
    negative = ContactOutcome(
        "OUT-9", "dialer:east-1", COLLECTION_TIME, promise=Promise(-100, "2026-12-01")
    )
    with pytest.raises(OutcomeInvalid, match=r"^promise_amount: must be positive"):
        check_outcome(negative, LOAN)
    bad_date = ContactOutcome(
        "OUT-9", "dialer:east-1", COLLECTION_TIME, promise=Promise(100, "01/12/2026")
    )
    with pytest.raises(OutcomeInvalid, match=r"^promise_date: "):
        check_outcome(bad_date, LOAN)
    bad_term = ContactOutcome(
        "OUT-9", "dialer:east-1", COLLECTION_TIME, hardship=Hardship("forever", "ill")
    )
    with pytest.raises(OutcomeInvalid, match=r"^hardship: "):
        check_outcome(bad_term, LOAN)


def test_a_loan_view_reads_the_borrowers_today() -> None:
    assert LOAN.today.isoformat() == "2026-11-19"
    later = LoanView("L-1", "USD", 1, "Asia/Shanghai", COLLECTION_TIME)
    assert later.today.isoformat() == "2026-11-20"


def test_dispute_resolutions() -> None:
    at = COLLECTION_TIME + timedelta(days=3)
    upheld = resolution_from_fields(
        resolution_id="RES-1", upheld=True, rejected=False, at=at, note=" proof "
    )
    assert (upheld.resolution_id, upheld.upheld, upheld.at, upheld.note) == (
        "RES-1",
        True,
        at,
        "proof",
    )
    rejected = resolution_from_fields(resolution_id="RES-2", upheld=False, rejected=True, at=at)
    assert rejected.upheld is False and rejected.note is None
    for upheld_flag, rejected_flag in ((True, True), (False, False)):
        with pytest.raises(OutcomeInvalid, match=r"^resolution: give exactly one"):
            resolution_from_fields(
                resolution_id="RES-3", upheld=upheld_flag, rejected=rejected_flag, at=at
            )
    with pytest.raises(OutcomeInvalid, match=r"^resolution_id: "):
        resolution_from_fields(resolution_id=" ", upheld=True, rejected=False, at=at)
    with pytest.raises(OutcomeInvalid, match=r"^note: "):
        resolution_from_fields(resolution_id="RES-4", upheld=True, rejected=False, at=at, note="")
