"""The collection state machine: stage thresholds, cures, referral and entry actions."""

from __future__ import annotations

import pytest
from statemachine.exceptions import TransitionNotAllowed

from workflows.machine import Action, CollectionMachine, LoanFacts
from workflows.types import Stage, StageBands

from .support import default_strategy

STRATEGY = default_strategy()
BANDS = STRATEGY.stages
REFERRAL_AFTER = STRATEGY.referral_after_days
BALANCE = 50_000

ENTRY_ACTIONS = {
    Stage.EARLY: [Action.REMINDER_SMS],
    Stage.MIDDLE: [],
    Stage.LATE: [Action.FIRM_SMS],
    Stage.LEGAL: [Action.LEGAL_NOTICE],
    # Closing is the workflow's own business: the final states ask for nothing.
    Stage.CURED: [],
    Stage.REFERRED: [],
}


def machine(
    stage: str | None = None,
    *,
    dpd: int = 1,
    outstanding: int = BALANCE,
    days_in_stage: int = 0,
    bands: StageBands = BANDS,
) -> CollectionMachine:
    m = CollectionMachine(
        bands=bands,
        facts=LoanFacts(dpd, outstanding, days_in_stage),
        referral_after_days=REFERRAL_AFTER,
        stage=stage,
    )
    m.take_actions()  # drop the entry action of the starting stage
    return m


def test_default_strategy_thresholds_are_6_19_29() -> None:
    assert (BANDS.middle, BANDS.late, BANDS.legal) == (6, 19, 29)
    assert REFERRAL_AFTER == 10


def test_new_machine_starts_early_with_a_reminder() -> None:
    m = CollectionMachine(BANDS, LoanFacts(1, BALANCE), REFERRAL_AFTER)
    assert m.stage == Stage.EARLY
    assert m.take_actions() == [Action.REMINDER_SMS]
    assert m.take_actions() == [], "actions are handed over once"
    assert not m.is_closed


@pytest.mark.parametrize(
    ("start", "threshold", "target"),
    [
        (Stage.EARLY, BANDS.middle, Stage.MIDDLE),
        (Stage.MIDDLE, BANDS.late, Stage.LATE),
        (Stage.LATE, BANDS.legal, Stage.LEGAL),
    ],
)
def test_stage_changes_exactly_at_the_threshold(start: str, threshold: int, target: str) -> None:
    m = machine(start, dpd=threshold - 1)
    m.day_passed()
    assert m.stage == start, f"one day short of {threshold} stays in {start}"
    assert m.take_actions() == []
    m.facts.days_past_due = threshold
    m.day_passed()
    assert m.stage == target
    assert m.take_actions() == ENTRY_ACTIONS[target]


def test_thresholds_come_from_the_strategy() -> None:
    m = machine(dpd=3, bands=StageBands(middle=3, late=5, legal=7))
    m.day_passed()
    assert m.stage == Stage.MIDDLE
    m.facts.days_past_due = 5
    m.day_passed()
    assert m.stage == Stage.LATE


def _settle(m: CollectionMachine, limit: int = 10) -> list[str]:
    """Feed day_passed until the stage stops changing, as the workflow does."""
    stages = [m.stage]
    for _ in range(limit):
        m.day_passed()
        if m.stage == stages[-1]:
            return stages
        stages.append(m.stage)
    raise AssertionError(f"no fixed point after {limit} events: {stages}")


def test_dpd_30_from_early_walks_every_stage_to_legal() -> None:
    m = machine(dpd=30)
    assert _settle(m) == [Stage.EARLY, Stage.MIDDLE, Stage.LATE, Stage.LEGAL]
    assert m.take_actions() == [Action.FIRM_SMS, Action.LEGAL_NOTICE]
    assert not m.is_closed


def test_one_day_passed_crosses_one_boundary_at_a_time() -> None:
    m = machine(dpd=30)
    m.day_passed()
    assert m.stage == Stage.MIDDLE


def test_dpd_20_from_early_stops_in_late() -> None:
    m = machine(dpd=20)
    assert _settle(m)[-1] == Stage.LATE


@pytest.mark.parametrize("stage", Stage.OPEN)
def test_clearing_the_balance_cures_from_every_open_stage(stage: str) -> None:
    m = machine(stage, dpd=30)
    m.facts.outstanding_minor = 0
    m.payment_applied()
    assert m.stage == Stage.CURED
    assert m.is_closed
    assert m.take_actions() == ENTRY_ACTIONS[Stage.CURED]


@pytest.mark.parametrize("stage", Stage.OPEN)
def test_partial_payment_stays_in_stage(stage: str) -> None:
    m = machine(stage, dpd=30)
    m.facts.outstanding_minor = 1
    m.payment_applied()
    assert m.stage == stage
    assert m.take_actions() == [], "staying in a stage does not repeat its entry actions"


def test_payment_does_not_move_stages_by_itself() -> None:
    # Even with the calendar past a boundary, a payment only cures or stays.
    m = machine(dpd=30, outstanding=BALANCE)
    m.payment_applied()
    assert m.stage == Stage.EARLY


def test_referral_after_referral_after_days_in_legal() -> None:
    m = machine(Stage.LEGAL, dpd=40, days_in_stage=REFERRAL_AFTER - 1)
    m.day_passed()
    assert m.stage == Stage.LEGAL
    m.facts.days_in_stage = REFERRAL_AFTER
    m.day_passed()
    assert m.stage == Stage.REFERRED
    assert m.is_closed
    assert m.take_actions() == ENTRY_ACTIONS[Stage.REFERRED]


def test_referral_only_from_legal() -> None:
    m = machine(Stage.LATE, dpd=BANDS.legal - 1, days_in_stage=REFERRAL_AFTER * 5)
    m.day_passed()
    assert m.stage == Stage.LATE


def test_repeated_days_in_a_stage_repeat_no_actions() -> None:
    m = machine(Stage.LEGAL, dpd=30)
    for _ in range(5):
        m.day_passed()
    assert m.stage == Stage.LEGAL
    assert m.take_actions() == []


@pytest.mark.parametrize("stage", [*Stage.OPEN, Stage.CURED, Stage.REFERRED])
def test_restored_machine_resumes_in_its_stage(stage: str) -> None:
    m = CollectionMachine(BANDS, LoanFacts(30, BALANCE), REFERRAL_AFTER, stage=stage)
    assert m.stage == stage
    assert m.is_closed == (stage in (Stage.CURED, Stage.REFERRED))
    # Restoring re-enters the stage; the workflow discards these actions, which ran before
    # continue-as-new (see LoanCollection.run).
    assert m.take_actions() == ENTRY_ACTIONS[stage]


def test_restored_machine_keeps_going() -> None:
    m = machine(Stage.MIDDLE, dpd=BANDS.late)
    m.day_passed()
    assert m.stage == Stage.LATE
    assert m.take_actions() == [Action.FIRM_SMS]


@pytest.mark.parametrize("stage", [Stage.CURED, Stage.REFERRED])
@pytest.mark.parametrize("event", ["day_passed", "payment_applied"])
def test_events_on_final_states_are_not_allowed(stage: str, event: str) -> None:
    m = machine(stage, dpd=40, outstanding=0, days_in_stage=REFERRAL_AFTER)
    with pytest.raises(TransitionNotAllowed):
        getattr(m, event)()
    assert m.stage == stage


def test_events_after_a_cure_are_not_allowed() -> None:
    m = machine(Stage.MIDDLE, dpd=10)
    m.facts.outstanding_minor = 0
    m.payment_applied()
    with pytest.raises(TransitionNotAllowed):
        m.day_passed()


@pytest.mark.parametrize(
    ("stage", "boundary"),
    [
        (Stage.EARLY, BANDS.middle),
        (Stage.MIDDLE, BANDS.late),
        (Stage.LATE, BANDS.legal),
        (Stage.LEGAL, None),
        (Stage.CURED, None),
        (Stage.REFERRED, None),
    ],
)
def test_next_boundary_dpd(stage: str, boundary: int | None) -> None:
    assert machine(stage).next_boundary_dpd() == boundary
