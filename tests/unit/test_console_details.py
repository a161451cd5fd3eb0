"""What the Web UI shows of a collection once ``console-attributes`` holds: the console values,
the machine's situation names, and the story the details tell, without a server."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from tests.unit.support import default_strategy
from workflows import profiles
from workflows import search_attributes as sa
from workflows.collection import view
from workflows.collection.context import Collection
from workflows.machine import CollectionMachine
from workflows.types import (
    Borrower,
    ClockAnchor,
    CollectionState,
    ContactHistory,
    Loan,
    OperatorHold,
    ServedNotice,
    StageEntered,
)
from workflows.vocabulary import Situation, SituationState, Stage

ZONE = "Asia/Shanghai"
OPENED = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


class StillCollection(Collection):
    """A collection at a fixed moment (no workflow around it)."""

    def real_now(self) -> datetime:
        return datetime(2026, 12, 10, 4, 0, tzinfo=UTC)


def collection(*, console: bool = True) -> Collection:
    loan = Loan(
        loan_id="L-9",
        borrower=Borrower("B-9", "Wang Fang", "+8613800000000", ZONE),
        product="personal",
        principal_minor=900_000,
        outstanding_minor=520_000,
        currency="CNY",
        due_date="2026-11-01",
        jurisdiction="cn",
    )
    strategy = default_strategy()
    state = CollectionState(
        strategy=strategy,
        clock=ClockAnchor(real_origin=OPENED, collection_origin=OPENED),
        stage=Stage.LEGAL,
        outstanding_minor=400_000,
        history=ContactHistory(cross_loan=strategy.cross_loan),
        entered_stages=[Stage.EARLY, Stage.MIDDLE, Stage.LATE, Stage.LEGAL],
        notices=["L-9:refusal_notice", "L-9:legal_notice"],
        applied_payment_ids=["P-1", "P-2"],
        recovered_minor=120_000,
        situation=Situation.REFUSAL,
        console=console,
    )
    return StillCollection(
        loan=loan,
        zone=ZoneInfo(ZONE),
        profile=profiles.profile_for("cn"),
        state=state,
        machine=CollectionMachine(state, restore=True),
    )


def test_the_story_of_a_collection_from_before_has_names_then_dates() -> None:
    c = collection()
    # The moments were kept from the late stage on (the loan took the patch then).
    c.state.stages_entered = [
        StageEntered(Stage.LATE, datetime(2026, 11, 19, 16, 0, tzinfo=UTC)),
        StageEntered(Stage.LEGAL, datetime(2026, 11, 29, 16, 30, tzinfo=UTC)),
    ]
    c.state.served_notices = [
        ServedNotice(
            "L-9:legal_notice", "legal_notice", datetime(2026, 11, 29, 16, 30, tzinfo=UTC), "ab"
        )
    ]
    lines = view.story(c)
    # Borrower-local dates: 16:00 UTC is past midnight in Shanghai.
    assert lines[0] == "**Stages** early → middle → late 2026-11-20 → legal 2026-11-30"
    assert lines[1] == "**Payments** 2 · recovered 1200.00 CNY"
    assert lines[2] == (
        "**Notices** refusal_notice, legal_notice 2026-11-30 · text:"
        " `overdue notice show L-9 legal_notice`"
    )
    assert all("Wang" not in line for line in lines)


def test_console_values_and_the_machine_names() -> None:
    c = collection()
    c.state.hold = OperatorHold(reason="fraud check", operator="ops:ann", since=OPENED)
    c.state.served_notices = [
        ServedNotice("L-9:legal_notice", "legal_notice", datetime(2026, 11, 29, tzinfo=UTC), "ab")
    ]
    values = view.console_values(c)
    assert values == {
        sa.CURRENCY: "CNY",
        sa.OUTSTANDING_AMOUNT: 4000.0,
        sa.ON_HOLD: True,
        sa.LEGAL_NOTICE_AT: datetime(2026, 11, 29, tzinfo=UTC),
        sa.OUTREACH: Situation.REFUSAL,
    }
    status = view.status(c)
    assert (status.situation, status.outreach) == (SituationState.NORMAL, "refusal")


def test_a_collection_without_the_patch_keeps_the_older_labels() -> None:
    c = collection(console=False)
    status = view.status(c)
    assert (status.situation, status.outreach) == (Situation.REFUSAL, None)
