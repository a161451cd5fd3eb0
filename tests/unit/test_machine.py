"""The collection state machine: a stage region and a situation region, and five ways to close.

The stage follows collection DPD (early, middle, late, legal); the situation follows what
conversations and reviews revealed: a promise, a dispute, a cease request, a death report (and
its verification, then the estate), a short-term hardship (an arrangement) or a long-term one
(a review, then forbearance). A cleared balance cures the loan, a long enough stay in legal
refers it, an upheld dispute ends it, and once the estate is contacted a claim on the estate or a
write-off closes it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from itertools import product

import pytest
from statemachine.exceptions import TransitionNotAllowed

from workflows.machine import Action, Calendar, CollectionMachine
from workflows.strategy import StageBands
from workflows.types import ClockAnchor, CollectionState, ContactHistory, OperatorHold
from workflows.vocabulary import Stage

from .support import default_strategy

STRATEGY = default_strategy()
BANDS = STRATEGY.stages
REFERRAL_AFTER = STRATEGY.referral_after_days
LIMIT = STRATEGY.broken_promise_limit
BALANCE = 50_000
ORIGIN = datetime(2026, 1, 1, tzinfo=UTC)
HOLD = OperatorHold("checking a complaint", "ops", ORIGIN)

NORMAL, PROMISED, DISPUTED, CEASED = "normal", "promised", "disputed", "ceased"
DECEASED_REPORTED, DECEASED_REVIEW, ESTATE_CONTACT = (
    "deceased_reported",
    "deceased_review",
    "estate_contact",
)
ARRANGEMENT, HARDSHIP_REVIEW, FORBEARANCE = "arrangement", "hardship_review", "forbearance"
SITUATIONS = (
    NORMAL,
    PROMISED,
    DISPUTED,
    CEASED,
    DECEASED_REPORTED,
    DECEASED_REVIEW,
    ESTATE_CONTACT,
    ARRANGEMENT,
    HARDSHIP_REVIEW,
    FORBEARANCE,
)
# Situations that pause collection (and with it the referral clock).
PAUSING = (
    DISPUTED,
    DECEASED_REPORTED,
    DECEASED_REVIEW,
    ESTATE_CONTACT,
    ARRANGEMENT,
    HARDSHIP_REVIEW,
    FORBEARANCE,
)
NOT_PAUSING = tuple(s for s in SITUATIONS if s not in PAUSING)
PLANS = (ARRANGEMENT, FORBEARANCE)  # a missed instalment ends these
DISPUTE_UPHELD, ESTATE_CLAIM, WRITTEN_OFF = "dispute_upheld", "estate_claim", "written_off"
CLOSED = (Stage.CURED, Stage.REFERRED, DISPUTE_UPHELD, ESTATE_CLAIM, WRITTEN_OFF)
OPEN_STATES = list(product(Stage.OPEN, SITUATIONS))

SITUATION_EVENTS = (
    "promise_made",
    "promise_kept",
    "promise_broken",
    "dispute_opened",
    "dispute_rejected",
    "cease_requested",
    "death_reported",
    "death_verified",
    "death_not_verified",
    "verification_overdue",
    "registry_not_verified",
    "short_term_hardship",
    "long_term_hardship",
    "forbearance_approved",
    "forbearance_rejected",
    "instalment_missed",
)
# Also known to the stage region below legal, where they are guarded: ``accepts`` reports them.
STAGE_GUARDED = ("promise_broken", "instalment_missed")
CLOSING_EVENTS = (
    "payment_applied",
    "referral_due",
    "dispute_closed",
    "estate_claim_filed",
    "estate_written_off",
)
EVENTS = ("day_passed", *SITUATION_EVENTS, *CLOSING_EVENTS)

ENTRY_ACTIONS = {
    Stage.EARLY: [Action.REMINDER_SMS],
    Stage.MIDDLE: [],
    Stage.LATE: [Action.FIRM_SMS],
    Stage.LEGAL: [Action.LEGAL_NOTICE],
}
NEXT_STAGE = {Stage.EARLY: Stage.MIDDLE, Stage.MIDDLE: Stage.LATE, Stage.LATE: Stage.LEGAL}
THRESHOLD = {Stage.MIDDLE: BANDS.middle, Stage.LATE: BANDS.late, Stage.LEGAL: BANDS.legal}

# The events that lead from normal to each situation, and the actions entering them asks for.
PATHS: dict[str, tuple[str, ...]] = {
    NORMAL: (),
    PROMISED: ("promise_made",),
    DISPUTED: ("dispute_opened",),
    CEASED: ("cease_requested",),
    DECEASED_REPORTED: ("death_reported",),
    DECEASED_REVIEW: ("death_reported", "verification_overdue"),
    ESTATE_CONTACT: ("death_reported", "death_verified"),
    ARRANGEMENT: ("short_term_hardship",),
    HARDSHIP_REVIEW: ("long_term_hardship",),
    FORBEARANCE: ("long_term_hardship", "forbearance_approved"),
}
PATH_ACTIONS: dict[str, list[str]] = {
    NORMAL: [],
    PROMISED: [],
    DISPUTED: [],
    CEASED: [],
    DECEASED_REPORTED: [Action.VERIFY_DEATH],
    DECEASED_REVIEW: [Action.VERIFY_DEATH],
    ESTATE_CONTACT: [Action.VERIFY_DEATH, Action.ESTATE_INQUIRY],
    ARRANGEMENT: [Action.ARRANGEMENT],
    HARDSHIP_REVIEW: [],
    FORBEARANCE: [Action.FORBEARANCE],
}

# Which situation events each situation takes (the stage-guarded ones only where the situation
# region itself takes them; their refusals elsewhere are tested on their own).
ACCEPTED = {
    NORMAL: {
        "promise_made",
        "dispute_opened",
        "cease_requested",
        "death_reported",
        "short_term_hardship",
        "long_term_hardship",
    },
    PROMISED: {
        "promise_kept",
        "promise_broken",
        "dispute_opened",
        "cease_requested",
        "death_reported",
        "short_term_hardship",
        "long_term_hardship",
    },
    DISPUTED: {"dispute_rejected"},
    CEASED: {"dispute_opened", "death_reported"},
    DECEASED_REPORTED: {
        "death_verified",
        "death_not_verified",
        "verification_overdue",
        "registry_not_verified",
        "dispute_opened",
    },
    DECEASED_REVIEW: {"death_verified", "death_not_verified", "dispute_opened"},
    ESTATE_CONTACT: {"dispute_opened"},
    ARRANGEMENT: {
        "dispute_opened",
        "cease_requested",
        "death_reported",
        "long_term_hardship",
        "instalment_missed",
    },
    HARDSHIP_REVIEW: {
        "dispute_opened",
        "death_reported",
        "forbearance_approved",
        "forbearance_rejected",
    },
    FORBEARANCE: {"dispute_opened", "death_reported", "instalment_missed"},
}


def loan_state(
    outstanding: int = BALANCE,
    broken: int = 0,
    bands: StageBands = BANDS,
    limit: int = LIMIT,
    stage: str = Stage.EARLY,
    situation: str = NORMAL,
) -> CollectionState:
    """The loan's state the machine keeps its configuration in and reads its facts from."""
    strategy = replace(STRATEGY, stages=bands, broken_promise_limit=limit)
    state = CollectionState(
        strategy=strategy,
        clock=ClockAnchor(ORIGIN, ORIGIN),
        stage=stage,  # type: ignore[arg-type]  # unknown ids too: restoring them must fail
        outstanding_minor=outstanding,
        history=ContactHistory(),
        broken_promises=broken,
        situation_state=situation,
    )
    # A loan restored in ceased had its cease request recorded when it was made.
    state.history.cease_requested = situation == CEASED
    return state


def new_machine(
    *,
    dpd: int = 1,
    outstanding: int = BALANCE,
    days_in_stage: int = 0,
    broken: int = 0,
    bands: StageBands = BANDS,
    limit: int = LIMIT,
) -> CollectionMachine:
    """A machine as a new collection starts it: entry actions of early still pending."""
    return CollectionMachine(
        loan_state(outstanding, broken, bands, limit), Calendar(dpd, days_in_stage)
    )


def restored(
    stage: str,
    situation: str | None = None,
    *,
    dpd: int = 1,
    outstanding: int = BALANCE,
    days_in_stage: int = 0,
    broken: int = 0,
    bands: StageBands = BANDS,
    limit: int = LIMIT,
) -> CollectionMachine:
    """A machine restored as it was after continue-as-new."""
    state = loan_state(
        outstanding, broken, bands, limit, stage, NORMAL if situation is None else situation
    )
    return CollectionMachine(state, Calendar(dpd, days_in_stage), restore=True)


def reached(stage: str, situation: str, **kwargs: int) -> CollectionMachine:
    """A machine restored in ``stage`` and normal, then taken to ``situation`` by its events.

    The entry actions of the way there are left pending (see ``PATH_ACTIONS``).
    """
    m = restored(stage, NORMAL, **kwargs)
    for event in PATHS[situation]:
        m.send(event)
    assert (m.stage, m.situation) == (stage, situation)
    return m


def catch_up(m: CollectionMachine, limit: int = 10) -> list[str]:
    """Call observe_day until it reports no change, as the workflow does; the stages entered."""
    entered = []
    for _ in range(limit):
        if not m.observe_day():
            return entered
        entered.append(m.stage)
    raise AssertionError(f"no fixed point after {limit} days: {entered}")


def assert_refused(m: CollectionMachine, event: str) -> None:
    """``event`` raises, and leaves the machine exactly as it was."""
    before = (m.stage, m.situation, m.is_closed)
    with pytest.raises(TransitionNotAllowed):
        m.send(event)
    assert (m.stage, m.situation, m.is_closed) == before
    assert m.take_actions() == []


def allowed(m: CollectionMachine) -> set[str]:
    return {e.id for e in m.allowed_events}


# --- the strategy's numbers and the machine's constants ----------------------------------------


def test_default_strategy_numbers() -> None:
    assert (BANDS.middle, BANDS.late, BANDS.legal) == (6, 19, 29)
    assert REFERRAL_AFTER == 10
    assert LIMIT == 2


def test_the_machines_constants() -> None:
    assert CollectionMachine.STAGES == Stage.OPEN
    assert CollectionMachine.SITUATIONS == SITUATIONS
    assert CollectionMachine.CLOSED == CLOSED
    assert set(CollectionMachine.PAUSING) == set(PAUSING)
    assert set(CollectionMachine.PAUSING) <= set(CollectionMachine.SITUATIONS)


# --- a new machine ----------------------------------------------------------------------------


def test_new_machine_starts_early_and_normal_with_a_reminder() -> None:
    m = new_machine()
    assert (m.stage, m.situation) == (Stage.EARLY, NORMAL)
    assert not m.is_closed
    assert not m.outreach_held
    assert not m.collection_paused
    assert m.take_actions() == [Action.REMINDER_SMS]
    assert m.take_actions() == [], "actions are handed over once"


# --- the stage region: days past due ------------------------------------------------------------


@pytest.mark.parametrize("start", [Stage.EARLY, Stage.MIDDLE, Stage.LATE])
def test_stage_changes_exactly_at_the_threshold(start: str) -> None:
    target = NEXT_STAGE[start]
    threshold = THRESHOLD[target]
    m = restored(start, dpd=threshold - 1)
    assert m.observe_day() is False, f"one day short of {threshold} stays in {start}"
    assert m.stage == start
    assert m.take_actions() == []
    m.calendar.days_past_due = threshold
    assert m.observe_day() is True
    assert m.stage == target
    assert m.take_actions() == ENTRY_ACTIONS[target]


def test_default_thresholds_are_6_19_29() -> None:
    m = new_machine()
    m.take_actions()
    seen = {}
    for dpd in range(1, 40):
        m.calendar.days_past_due = dpd
        if m.observe_day():
            seen[m.stage] = dpd
    assert seen == {Stage.MIDDLE: 6, Stage.LATE: 19, Stage.LEGAL: 29}
    assert m.take_actions() == [Action.FIRM_SMS, Action.LEGAL_NOTICE]


def test_thresholds_come_from_the_strategy() -> None:
    m = restored(Stage.EARLY, dpd=3, bands=StageBands(middle=3, late=5, legal=7))
    assert m.observe_day()
    assert m.stage == Stage.MIDDLE
    m.calendar.days_past_due = 5
    assert m.observe_day()
    assert m.stage == Stage.LATE
    m.calendar.days_past_due = 7
    assert m.observe_day()
    assert m.stage == Stage.LEGAL


def test_one_observed_day_crosses_one_boundary() -> None:
    m = restored(Stage.EARLY, dpd=40)
    assert m.observe_day()
    assert m.stage == Stage.MIDDLE


def test_catch_up_from_early_at_dpd_30_walks_every_stage_to_legal() -> None:
    m = new_machine(dpd=30)
    assert m.take_actions() == [Action.REMINDER_SMS]
    assert catch_up(m) == [Stage.MIDDLE, Stage.LATE, Stage.LEGAL]
    assert m.take_actions() == [Action.FIRM_SMS, Action.LEGAL_NOTICE]
    assert not m.is_closed


@pytest.mark.parametrize(
    ("dpd", "entered"),
    [
        (5, []),
        (6, [Stage.MIDDLE]),
        (18, [Stage.MIDDLE]),
        (19, [Stage.MIDDLE, Stage.LATE]),
        (20, [Stage.MIDDLE, Stage.LATE]),
        (28, [Stage.MIDDLE, Stage.LATE]),
        (29, [Stage.MIDDLE, Stage.LATE, Stage.LEGAL]),
    ],
)
def test_catch_up_stops_in_the_stage_of_the_dpd(dpd: int, entered: list[str]) -> None:
    m = restored(Stage.EARLY, dpd=dpd)
    assert catch_up(m) == entered


def test_catch_up_runs_through_to_referral() -> None:
    m = restored(Stage.EARLY, dpd=60, days_in_stage=REFERRAL_AFTER)
    assert catch_up(m) == [Stage.MIDDLE, Stage.LATE, Stage.LEGAL, Stage.REFERRED]
    assert m.take_actions() == [Action.FIRM_SMS, Action.LEGAL_NOTICE]
    assert m.is_closed


@pytest.mark.parametrize("situation", SITUATIONS)
def test_stage_region_runs_in_every_situation(situation: str) -> None:
    # The machine reads collection DPD: holding it still while collection is paused is the
    # workflow's business.
    m = restored(Stage.EARLY, situation, dpd=30)
    assert catch_up(m) == [Stage.MIDDLE, Stage.LATE, Stage.LEGAL]
    assert m.situation == situation, "the stage moves, the situation stays"
    assert m.take_actions() == [Action.FIRM_SMS, Action.LEGAL_NOTICE]


def test_repeated_days_in_a_stage_repeat_no_actions() -> None:
    m = restored(Stage.LEGAL, dpd=40)
    for _ in range(5):
        assert m.observe_day() is False
    assert m.stage == Stage.LEGAL
    assert m.take_actions() == []


def test_day_passed_without_a_boundary_raises() -> None:
    # observe_day swallows the refusal; the event itself still raises.
    assert_refused(restored(Stage.EARLY, dpd=BANDS.middle - 1), "day_passed")
    assert_refused(restored(Stage.LEGAL, dpd=40), "day_passed")


# --- referral ---------------------------------------------------------------------------------


@pytest.mark.parametrize("situation", NOT_PAUSING)
def test_referral_after_referral_after_days_in_legal(situation: str) -> None:
    m = restored(Stage.LEGAL, situation, dpd=40, days_in_stage=REFERRAL_AFTER - 1)
    assert m.observe_day() is False
    assert m.stage == Stage.LEGAL
    m.calendar.days_in_stage = REFERRAL_AFTER
    assert m.observe_day() is True
    assert m.stage == Stage.REFERRED
    assert m.situation == "closed"
    assert m.is_closed
    assert m.take_actions() == [], "closing is the workflow's business: no entry action"


@pytest.mark.parametrize("stage", [Stage.EARLY, Stage.MIDDLE, Stage.LATE])
def test_referral_only_from_legal(stage: str) -> None:
    m = restored(stage, dpd=1, days_in_stage=REFERRAL_AFTER * 5)
    assert m.observe_day() is False
    assert m.stage == stage
    assert_refused(m, "referral_due")


@pytest.mark.parametrize("situation", PAUSING)
def test_no_referral_while_collection_is_paused(situation: str) -> None:
    m = reached(Stage.LEGAL, situation, dpd=40, days_in_stage=REFERRAL_AFTER * 5)
    m.take_actions()
    assert m.collection_paused
    assert m.observe_day() is False
    assert m.stage == Stage.LEGAL
    assert m.situation == situation
    assert m.accepts("referral_due"), "a guard declines, not the configuration"
    assert_refused(m, "referral_due")


@pytest.mark.parametrize("situation", NOT_PAUSING)
def test_an_operators_hold_pauses_in_any_situation(situation: str) -> None:
    m = restored(Stage.LEGAL, situation, dpd=40, days_in_stage=REFERRAL_AFTER * 5)
    m.loan.hold = HOLD
    assert m.outreach_held and m.collection_paused
    assert m.observe_day() is False
    assert m.stage == Stage.LEGAL
    m.loan.hold = None
    assert m.observe_day() is True
    assert m.stage == Stage.REFERRED


@pytest.mark.parametrize(
    ("situation", "lifted_by"),
    [
        (DISPUTED, "dispute_rejected"),
        (DECEASED_REPORTED, "death_not_verified"),
        (DECEASED_REVIEW, "death_not_verified"),
        (ARRANGEMENT, "instalment_missed"),
        (HARDSHIP_REVIEW, "forbearance_rejected"),
        (FORBEARANCE, "instalment_missed"),
    ],
)
def test_referral_comes_once_the_pause_lifts(situation: str, lifted_by: str) -> None:
    m = reached(Stage.LEGAL, situation, dpd=40, days_in_stage=REFERRAL_AFTER)
    assert m.observe_day() is False
    m.send(lifted_by)
    assert (m.stage, m.situation) == (Stage.LEGAL, NORMAL)
    assert not m.collection_paused
    assert m.observe_day() is True
    assert m.stage == Stage.REFERRED


# --- cure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("stage", "situation"), OPEN_STATES)
@pytest.mark.parametrize("outstanding", [0, -1], ids=["cleared", "overpaid"])
def test_clearing_the_balance_cures_from_every_open_state(
    stage: str, situation: str, outstanding: int
) -> None:
    m = restored(stage, situation, dpd=30)
    m.loan.outstanding_minor = outstanding
    assert m.observe_payment() is True
    assert m.stage == Stage.CURED
    assert m.situation == "closed"
    assert m.is_closed
    assert not m.collection_paused
    assert m.take_actions() == []


@pytest.mark.parametrize("situation", SITUATIONS)
def test_a_payment_cures_from_every_situation_reached_by_its_events(situation: str) -> None:
    m = reached(Stage.MIDDLE, situation)
    assert m.take_actions() == PATH_ACTIONS[situation]
    m.loan.outstanding_minor = 0
    assert m.observe_payment() is True
    assert (m.stage, m.situation) == (Stage.CURED, "closed")
    assert m.take_actions() == []


@pytest.mark.parametrize(("stage", "situation"), OPEN_STATES)
def test_partial_payment_changes_nothing(stage: str, situation: str) -> None:
    m = restored(stage, situation, dpd=30)
    m.loan.outstanding_minor = 1
    assert m.observe_payment() is False
    assert (m.stage, m.situation) == (stage, situation)
    assert m.take_actions() == [], "staying does not repeat entry actions"
    assert_refused(m, "payment_applied")


def test_payment_does_not_move_stages_by_itself() -> None:
    # Even with the calendar past a boundary, a payment only cures or stays.
    m = restored(Stage.EARLY, dpd=30)
    assert m.observe_payment() is False
    assert m.stage == Stage.EARLY


def test_cure_from_a_new_machine() -> None:
    m = new_machine(outstanding=0)
    assert m.take_actions() == [Action.REMINDER_SMS]
    assert m.observe_payment()
    assert m.stage == Stage.CURED


# --- restoring --------------------------------------------------------------------------------


@pytest.mark.parametrize(("stage", "situation"), OPEN_STATES)
def test_restores_every_open_state_without_entry_actions(stage: str, situation: str) -> None:
    m = restored(stage, situation, dpd=30, days_in_stage=REFERRAL_AFTER * 2)
    assert (m.stage, m.situation) == (stage, situation)
    assert not m.is_closed
    assert m.outreach_held == (situation != NORMAL)
    assert m.collection_paused == (situation in PAUSING)
    assert m.loan.history.cease_requested == (situation == CEASED)
    assert m.take_actions() == [], "entry actions ran before continue-as-new"


@pytest.mark.parametrize(("stage", "situation"), OPEN_STATES)
def test_a_restored_machine_takes_what_the_live_one_takes(stage: str, situation: str) -> None:
    live = reached(stage, situation)
    assert allowed(restored(stage, situation)) == allowed(live)


@pytest.mark.parametrize("stage", Stage.OPEN)
def test_restored_situation_defaults_to_normal(stage: str) -> None:
    m = restored(stage)
    assert (m.stage, m.situation) == (stage, NORMAL)
    assert m.take_actions() == []


@pytest.mark.parametrize("stage", CLOSED)
@pytest.mark.parametrize("situation", [None, *SITUATIONS])
def test_restores_final_states(stage: str, situation: str | None) -> None:
    m = restored(stage, situation, dpd=40, outstanding=0, days_in_stage=REFERRAL_AFTER)
    assert m.stage == stage
    assert m.situation == "closed"
    assert m.is_closed
    assert not m.collection_paused
    assert m.take_actions() == []
    assert not any(m.accepts(e) for e in EVENTS)


@pytest.mark.parametrize("situation", ["closed", "deceased", "hardship", ""])
def test_restoring_an_unknown_situation_is_an_error(situation: str) -> None:
    with pytest.raises(ValueError, match="situation"):
        restored(Stage.EARLY, situation)


@pytest.mark.parametrize("stage", ["collecting", "situation", "normal", "estate"])
def test_restoring_an_unknown_stage_is_an_error(stage: str) -> None:
    with pytest.raises(ValueError, match="stage"):
        restored(stage)


def test_restored_machine_keeps_going() -> None:
    m = restored(Stage.MIDDLE, PROMISED, dpd=BANDS.late)
    assert m.observe_day()
    assert (m.stage, m.situation) == (Stage.LATE, PROMISED)
    assert m.take_actions() == [Action.FIRM_SMS]
    m.send("promise_kept")
    assert (m.stage, m.situation) == (Stage.LATE, NORMAL)


@pytest.mark.parametrize(
    ("situation", "event", "after", "actions"),
    [
        (DECEASED_REPORTED, "death_verified", ESTATE_CONTACT, [Action.ESTATE_INQUIRY]),
        (DECEASED_REVIEW, "death_verified", ESTATE_CONTACT, [Action.ESTATE_INQUIRY]),
        (HARDSHIP_REVIEW, "forbearance_approved", FORBEARANCE, [Action.FORBEARANCE]),
        (ARRANGEMENT, "long_term_hardship", HARDSHIP_REVIEW, []),
        (ESTATE_CONTACT, "estate_written_off", WRITTEN_OFF, []),
    ],
)
def test_a_restored_new_situation_keeps_going(
    situation: str, event: str, after: str, actions: list[str]
) -> None:
    m = restored(Stage.LATE, situation)
    m.send(event)
    assert after in (m.situation, m.stage)
    assert m.take_actions() == actions


def test_restored_machines_are_independent() -> None:
    a = restored(Stage.LATE, PROMISED)
    b = restored(Stage.EARLY, CEASED)
    c = restored(Stage.MIDDLE, DECEASED_REPORTED)
    a.send("promise_kept")
    c.send("death_verified")
    assert (b.stage, b.situation) == (Stage.EARLY, CEASED)
    assert a.take_actions() == []
    assert b.take_actions() == []


# --- promises ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", Stage.OPEN)
def test_promise_made_then_kept(stage: str) -> None:
    m = restored(stage)
    m.send("promise_made")
    assert (m.stage, m.situation) == (stage, PROMISED)
    assert m.outreach_held
    assert not m.collection_paused, "a promise is waited on, the clock runs"
    m.send("promise_kept")
    assert (m.stage, m.situation) == (stage, NORMAL)
    assert not m.outreach_held
    assert m.take_actions() == []


@pytest.mark.parametrize("stage", Stage.OPEN)
@pytest.mark.parametrize("broken", range(LIMIT))
def test_promise_broken_below_the_limit_only_ends_the_promise(stage: str, broken: int) -> None:
    m = restored(stage, PROMISED, broken=broken)
    m.send("promise_broken")
    assert (m.stage, m.situation) == (stage, NORMAL)
    assert m.take_actions() == []


@pytest.mark.parametrize("stage", [Stage.EARLY, Stage.MIDDLE, Stage.LATE])
@pytest.mark.parametrize("over", [0, 1, 5], ids=["at-limit", "limit+1", "limit+5"])
def test_promise_broken_at_the_limit_escalates_one_stage(stage: str, over: int) -> None:
    m = restored(stage, PROMISED, broken=LIMIT + over)
    m.send("promise_broken")
    target = NEXT_STAGE[stage]
    assert (m.stage, m.situation) == (target, NORMAL), "one stage, not a catch-up"
    assert m.take_actions() == ENTRY_ACTIONS[target]


@pytest.mark.parametrize("limit", [1, 2, 3, 5])
def test_escalation_is_exactly_at_the_strategy_limit(limit: int) -> None:
    m = restored(Stage.EARLY, limit=limit)
    for broken in range(1, limit + 1):
        m.send("promise_made")
        m.loan.broken_promises = broken
        m.send("promise_broken")
        expected = Stage.MIDDLE if broken >= limit else Stage.EARLY
        assert m.stage == expected, f"{broken} broken of {limit}"
    assert m.situation == NORMAL
    m.send("promise_made")
    m.loan.broken_promises = limit + 1
    m.send("promise_broken")
    assert m.stage == Stage.LATE, "every broken promise past the limit escalates again"
    assert m.take_actions() == [Action.FIRM_SMS]


@pytest.mark.parametrize("broken", [LIMIT - 1, LIMIT, LIMIT + 3])
def test_legal_stays_legal_when_a_promise_is_broken(broken: int) -> None:
    m = restored(Stage.LEGAL, PROMISED, broken=broken)
    m.send("promise_broken")
    assert (m.stage, m.situation) == (Stage.LEGAL, NORMAL)
    assert not m.is_closed
    assert m.take_actions() == []


def test_escalation_does_not_skip_the_referral_clock() -> None:
    # Escalated into legal by a promise, the loan is referred only after its time in legal.
    m = restored(Stage.LATE, PROMISED, dpd=20, broken=LIMIT)
    m.send("promise_broken")
    assert m.stage == Stage.LEGAL
    assert m.observe_day() is False
    m.calendar.days_in_stage = REFERRAL_AFTER
    assert m.observe_day() is True
    assert m.stage == Stage.REFERRED


@pytest.mark.parametrize("situation", [s for s in SITUATIONS if s != PROMISED])
def test_promise_broken_without_a_promise_is_refused_at_the_limit(situation: str) -> None:
    # A plan's instalment is not a promise: it has an event of its own.
    assert_refused(restored(Stage.EARLY, situation, broken=LIMIT), "promise_broken")


# --- disputes -----------------------------------------------------------------------------------

DISPUTABLE = (
    NORMAL,
    PROMISED,
    CEASED,
    ARRANGEMENT,
    HARDSHIP_REVIEW,
    FORBEARANCE,
    DECEASED_REPORTED,
    DECEASED_REVIEW,
    ESTATE_CONTACT,
)


@pytest.mark.parametrize("stage", Stage.OPEN)
@pytest.mark.parametrize("situation", DISPUTABLE)
def test_dispute_opened_from_every_disputable_situation(stage: str, situation: str) -> None:
    m = restored(stage, situation)
    m.send("dispute_opened")
    assert (m.stage, m.situation) == (stage, DISPUTED)
    assert m.outreach_held
    assert m.collection_paused
    assert m.take_actions() == []


@pytest.mark.parametrize(
    "situation", [s for s in SITUATIONS if s not in DISPUTABLE], ids=lambda s: s
)
def test_dispute_opened_is_refused_while_disputed(situation: str) -> None:
    assert_refused(restored(Stage.MIDDLE, situation), "dispute_opened")


@pytest.mark.parametrize("stage", Stage.OPEN)
def test_dispute_rejected_returns_to_normal_in_the_same_stage(stage: str) -> None:
    m = restored(stage, DISPUTED)
    m.send("dispute_rejected")
    assert (m.stage, m.situation) == (stage, NORMAL)
    assert not m.outreach_held
    assert not m.collection_paused
    assert m.take_actions() == [], "the stage is not re-entered"


@pytest.mark.parametrize("situation", [PROMISED, ARRANGEMENT, HARDSHIP_REVIEW, FORBEARANCE])
def test_a_rejected_dispute_does_not_bring_back_what_it_interrupted(situation: str) -> None:
    m = restored(Stage.MIDDLE, situation)
    m.send("dispute_opened")
    m.send("dispute_rejected")
    assert m.situation == NORMAL
    assert m.take_actions() == [], "no new plan is offered"


@pytest.mark.parametrize("stage", Stage.OPEN)
def test_dispute_closed_upholds_the_dispute_when_disputed(stage: str) -> None:
    m = restored(stage, DISPUTED)
    m.send("dispute_closed")
    assert m.stage == DISPUTE_UPHELD
    assert m.situation == "closed"
    assert m.is_closed
    assert not m.collection_paused
    assert m.take_actions() == []


@pytest.mark.parametrize("stage", Stage.OPEN)
def test_dispute_closed_is_refused_unless_disputed(stage: str) -> None:
    for situation in SITUATIONS:
        if situation != DISPUTED:
            assert_refused(restored(stage, situation), "dispute_closed")


def test_a_whole_dispute_round_trip() -> None:
    m = new_machine()
    m.take_actions()
    m.send("promise_made")
    m.send("dispute_opened")
    m.send("dispute_rejected")
    m.send("short_term_hardship")
    m.send("dispute_opened")
    m.send("dispute_closed")
    assert m.stage == DISPUTE_UPHELD
    assert m.take_actions() == [Action.ARRANGEMENT]


# --- cease requests ---------------------------------------------------------------------------

CEASABLE = (NORMAL, PROMISED, ARRANGEMENT)


@pytest.mark.parametrize("stage", Stage.OPEN)
@pytest.mark.parametrize("situation", CEASABLE)
def test_cease_requested_from_normal_promised_and_an_arrangement(
    stage: str, situation: str
) -> None:
    m = restored(stage, situation)
    m.send("cease_requested")
    assert (m.stage, m.situation) == (stage, CEASED)
    assert m.outreach_held
    assert not m.collection_paused, "a ceased loan is still collected, by notices"
    assert m.loan.history.cease_requested
    assert m.take_actions() == []


@pytest.mark.parametrize("situation", [s for s in SITUATIONS if s not in CEASABLE])
def test_cease_requested_is_refused_elsewhere(situation: str) -> None:
    # The workflow records the request in the facts when the machine stays put.
    assert_refused(restored(Stage.MIDDLE, situation), "cease_requested")


def test_a_ceased_loan_is_still_collected_by_stage() -> None:
    m = restored(Stage.LATE, CEASED, dpd=BANDS.legal)
    assert m.observe_day()
    assert (m.stage, m.situation) == (Stage.LEGAL, CEASED)
    assert m.take_actions() == [Action.LEGAL_NOTICE], "notices remain after a cease request"


@pytest.mark.parametrize("when", ["before", "during"])
def test_a_cease_request_outlives_a_rejected_dispute(when: str) -> None:
    m = restored(Stage.MIDDLE, CEASED if when == "before" else NORMAL)
    m.send("dispute_opened")
    if when == "during":
        # The machine stays disputed; the workflow records the request in the facts.
        assert not m.accepts("cease_requested")
        m.loan.history.cease_requested = True
    m.send("dispute_rejected")
    assert m.outreach_held
    assert m.situation == CEASED


def test_a_cease_request_during_an_arrangement_ends_the_arrangement() -> None:
    m = reached(Stage.MIDDLE, ARRANGEMENT)
    assert m.take_actions() == [Action.ARRANGEMENT]
    m.send("cease_requested")
    assert m.situation == CEASED
    assert not m.collection_paused
    m.loan.broken_promises = LIMIT
    assert_refused(m, "instalment_missed")


@pytest.mark.parametrize(
    ("start", "cease_fact", "events"),
    [
        (CEASED, False, ("death_reported", "death_not_verified")),
        (CEASED, False, ("death_reported", "verification_overdue", "death_not_verified")),
        (HARDSHIP_REVIEW, True, ("forbearance_rejected",)),
        (FORBEARANCE, True, ("instalment_missed",)),
    ],
    ids=["death-not-verified", "review-not-verified", "forbearance-rejected", "instalment-missed"],
)
def test_a_cease_request_outlives_every_situation_that_ends(
    start: str, cease_fact: bool, events: tuple[str, ...]
) -> None:
    m = restored(Stage.MIDDLE, start)
    if cease_fact:
        # Refused by the machine here, the request is recorded in the facts by the workflow.
        assert not m.accepts("cease_requested")
        m.loan.history.cease_requested = True
    for event in events:
        m.send(event)
    assert m.loan.history.cease_requested
    assert m.situation == CEASED


# --- a borrower reported dead -------------------------------------------------------------------

DEATH_REPORTABLE = (NORMAL, PROMISED, CEASED, ARRANGEMENT, HARDSHIP_REVIEW, FORBEARANCE)


@pytest.mark.parametrize("stage", Stage.OPEN)
@pytest.mark.parametrize("situation", DEATH_REPORTABLE)
def test_death_reported_asks_for_verification(stage: str, situation: str) -> None:
    m = restored(stage, situation)
    m.send("death_reported")
    assert (m.stage, m.situation) == (stage, DECEASED_REPORTED)
    assert m.outreach_held
    assert m.collection_paused
    assert m.take_actions() == [Action.VERIFY_DEATH]


@pytest.mark.parametrize("situation", [s for s in SITUATIONS if s not in DEATH_REPORTABLE])
def test_death_reported_is_refused_while_disputed_or_already_reported(situation: str) -> None:
    assert_refused(restored(Stage.MIDDLE, situation), "death_reported")


@pytest.mark.parametrize("stage", Stage.OPEN)
@pytest.mark.parametrize(
    "how", ["estate_claim_filed", "estate_written_off"], ids=["claim", "write-off"]
)
def test_reported_verified_estate_contacted_then_closed(stage: str, how: str) -> None:
    m = restored(stage)
    m.send("death_reported")
    assert m.take_actions() == [Action.VERIFY_DEATH]
    m.send("death_verified")
    assert (m.stage, m.situation) == (stage, ESTATE_CONTACT)
    assert m.outreach_held
    assert m.collection_paused
    assert m.take_actions() == [Action.ESTATE_INQUIRY]
    m.send(how)
    assert m.stage == (ESTATE_CLAIM if how == "estate_claim_filed" else WRITTEN_OFF)
    assert m.situation == "closed"
    assert m.is_closed
    assert not m.collection_paused
    assert m.take_actions() == [], "closing is the workflow's business: no entry action"


@pytest.mark.parametrize("stage", Stage.OPEN)
@pytest.mark.parametrize("via_review", [False, True], ids=["reported", "review"])
def test_death_not_verified_returns_to_normal(stage: str, via_review: bool) -> None:
    m = restored(stage)
    m.send("death_reported")
    if via_review:
        m.send("verification_overdue")
    m.take_actions()
    m.send("death_not_verified")
    assert (m.stage, m.situation) == (stage, NORMAL)
    assert not m.outreach_held
    assert not m.collection_paused
    assert m.take_actions() == [], "the stage is not re-entered"


@pytest.mark.parametrize("stage", Stage.OPEN)
def test_verification_overdue_hands_the_report_to_a_person(stage: str) -> None:
    m = restored(stage, DECEASED_REPORTED)
    m.send("verification_overdue")
    assert (m.stage, m.situation) == (stage, DECEASED_REVIEW)
    assert m.outreach_held
    assert m.collection_paused
    assert m.take_actions() == [], "no second verification request"
    assert_refused(m, "verification_overdue")
    m.send("death_verified")
    assert m.situation == ESTATE_CONTACT
    assert m.take_actions() == [Action.ESTATE_INQUIRY]


@pytest.mark.parametrize("situation", [s for s in SITUATIONS if s != DECEASED_REPORTED])
def test_verification_overdue_only_while_a_report_awaits_verification(situation: str) -> None:
    assert_refused(restored(Stage.MIDDLE, situation), "verification_overdue")


@pytest.mark.parametrize("stage", Stage.OPEN)
@pytest.mark.parametrize("cease", [False, True], ids=["no_cease", "cease_standing"])
@pytest.mark.parametrize(
    ("decided", "after", "actions"),
    [
        ("death_verified", ESTATE_CONTACT, [Action.ESTATE_INQUIRY]),
        ("death_not_verified", NORMAL, []),
    ],
)
def test_a_registry_miss_hands_the_report_to_a_person(
    stage: str, cease: bool, decided: str, after: str, actions: list[str]
) -> None:
    # Registries lag: "not verified" does not overrule a report by family, nor resume contact.
    m = restored(stage, CEASED if cease else NORMAL)
    m.send("death_reported")
    assert m.take_actions() == [Action.VERIFY_DEATH]
    m.send("registry_not_verified")
    assert (m.stage, m.situation) == (stage, DECEASED_REVIEW)
    assert m.outreach_held
    assert m.collection_paused
    assert m.take_actions() == [], "no second verification request"
    # Only a person moves it on: the deadline has passed its part, and the registry has spoken.
    assert allowed(m) >= {"death_verified", "death_not_verified", "dispute_opened"}
    for event in ("registry_not_verified", "verification_overdue", "death_reported"):
        assert_refused(m, event)
    m.send(decided)
    expected = CEASED if cease and decided == "death_not_verified" else after
    assert (m.stage, m.situation) == (stage, expected)
    assert m.take_actions() == actions
    assert m.outreach_held is (expected != NORMAL)


@pytest.mark.parametrize("situation", [s for s in SITUATIONS if s != DECEASED_REPORTED])
def test_a_registry_miss_only_while_a_report_awaits_verification(situation: str) -> None:
    assert_refused(restored(Stage.MIDDLE, situation), "registry_not_verified")


@pytest.mark.parametrize("event", ["death_verified", "death_not_verified"])
@pytest.mark.parametrize(
    "situation", [s for s in SITUATIONS if s not in (DECEASED_REPORTED, DECEASED_REVIEW)]
)
def test_a_verification_decision_needs_a_death_report(event: str, situation: str) -> None:
    assert_refused(restored(Stage.MIDDLE, situation), event)


@pytest.mark.parametrize("event", ["estate_claim_filed", "estate_written_off"])
@pytest.mark.parametrize("situation", [s for s in SITUATIONS if s != ESTATE_CONTACT])
def test_the_estate_decisions_need_the_estate_contacted(event: str, situation: str) -> None:
    m = restored(Stage.LATE, situation)
    assert m.accepts(event), "a guard declines, not the configuration"
    assert_refused(m, event)


def test_the_estate_is_not_collected_like_a_borrower() -> None:
    # Once the estate is contacted only a payment, an estate decision or a dispute of the debt
    # moves the situation.
    m = restored(Stage.LATE, ESTATE_CONTACT, broken=LIMIT)
    for event in (e for e in SITUATION_EVENTS if e != "dispute_opened"):
        assert_refused(m, event)
    assert m.situation == ESTATE_CONTACT


def test_a_whole_death_walk_from_a_new_machine() -> None:
    m = new_machine()
    m.send("promise_made")
    m.send("death_reported")
    m.send("verification_overdue")
    m.send("death_verified")
    m.send("estate_written_off")
    assert m.stage == WRITTEN_OFF
    assert m.take_actions() == [
        Action.REMINDER_SMS,
        Action.VERIFY_DEATH,
        Action.ESTATE_INQUIRY,
    ]


# --- hardship: arrangements and forbearance -----------------------------------------------------


@pytest.mark.parametrize("stage", Stage.OPEN)
@pytest.mark.parametrize("situation", [NORMAL, PROMISED])
def test_short_term_hardship_offers_an_arrangement(stage: str, situation: str) -> None:
    m = restored(stage, situation)
    m.send("short_term_hardship")
    assert (m.stage, m.situation) == (stage, ARRANGEMENT)
    assert m.outreach_held, "a plan is waited on"
    assert m.collection_paused
    assert m.take_actions() == [Action.ARRANGEMENT]


@pytest.mark.parametrize("situation", [s for s in SITUATIONS if s not in (NORMAL, PROMISED)])
def test_short_term_hardship_is_refused_elsewhere(situation: str) -> None:
    assert_refused(restored(Stage.MIDDLE, situation), "short_term_hardship")


@pytest.mark.parametrize("stage", Stage.OPEN)
@pytest.mark.parametrize("situation", [NORMAL, PROMISED, ARRANGEMENT])
def test_long_term_hardship_goes_to_a_review(stage: str, situation: str) -> None:
    m = restored(stage, situation)
    m.send("long_term_hardship")
    assert (m.stage, m.situation) == (stage, HARDSHIP_REVIEW)
    assert m.outreach_held
    assert m.collection_paused
    assert m.take_actions() == [], "a person decides first"


@pytest.mark.parametrize(
    "situation", [s for s in SITUATIONS if s not in (NORMAL, PROMISED, ARRANGEMENT)]
)
def test_long_term_hardship_is_refused_elsewhere(situation: str) -> None:
    assert_refused(restored(Stage.MIDDLE, situation), "long_term_hardship")


@pytest.mark.parametrize("stage", Stage.OPEN)
def test_forbearance_approved_offers_forbearance(stage: str) -> None:
    m = restored(stage, HARDSHIP_REVIEW)
    m.send("forbearance_approved")
    assert (m.stage, m.situation) == (stage, FORBEARANCE)
    assert m.outreach_held
    assert m.collection_paused
    assert m.take_actions() == [Action.FORBEARANCE]


@pytest.mark.parametrize("stage", Stage.OPEN)
def test_forbearance_rejected_returns_to_normal(stage: str) -> None:
    m = restored(stage, HARDSHIP_REVIEW)
    m.send("forbearance_rejected")
    assert (m.stage, m.situation) == (stage, NORMAL)
    assert not m.outreach_held
    assert not m.collection_paused
    assert m.take_actions() == []


@pytest.mark.parametrize("event", ["forbearance_approved", "forbearance_rejected"])
@pytest.mark.parametrize("situation", [s for s in SITUATIONS if s != HARDSHIP_REVIEW])
def test_a_hardship_decision_needs_a_review(event: str, situation: str) -> None:
    assert_refused(restored(Stage.MIDDLE, situation), event)


@pytest.mark.parametrize("stage", Stage.OPEN)
@pytest.mark.parametrize("plan", PLANS)
@pytest.mark.parametrize("broken", range(LIMIT))
def test_instalment_missed_below_the_limit_only_ends_the_plan(
    stage: str, plan: str, broken: int
) -> None:
    m = restored(stage, plan, broken=broken)
    m.send("instalment_missed")
    assert (m.stage, m.situation) == (stage, NORMAL)
    assert not m.collection_paused
    assert m.take_actions() == []


@pytest.mark.parametrize("stage", [Stage.EARLY, Stage.MIDDLE, Stage.LATE])
@pytest.mark.parametrize("plan", PLANS)
@pytest.mark.parametrize("over", [0, 1, 5], ids=["at-limit", "limit+1", "limit+5"])
def test_instalment_missed_at_the_limit_escalates_one_stage(
    stage: str, plan: str, over: int
) -> None:
    m = restored(stage, plan, broken=LIMIT + over)
    m.send("instalment_missed")
    target = NEXT_STAGE[stage]
    assert (m.stage, m.situation) == (target, NORMAL), "one stage, not a catch-up"
    assert m.take_actions() == ENTRY_ACTIONS[target]


@pytest.mark.parametrize("plan", PLANS)
@pytest.mark.parametrize("broken", [LIMIT - 1, LIMIT, LIMIT + 3])
def test_legal_stays_legal_when_an_instalment_is_missed(plan: str, broken: int) -> None:
    m = restored(Stage.LEGAL, plan, broken=broken)
    m.send("instalment_missed")
    assert (m.stage, m.situation) == (Stage.LEGAL, NORMAL)
    assert not m.is_closed
    assert m.take_actions() == []


@pytest.mark.parametrize("situation", [s for s in SITUATIONS if s not in PLANS])
def test_instalment_missed_without_a_plan_is_refused_at_the_limit(situation: str) -> None:
    assert_refused(restored(Stage.EARLY, situation, broken=LIMIT), "instalment_missed")


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_short_hardship_walk_escalates_exactly_at_the_limit(limit: int) -> None:
    # Arrangement after arrangement, each missed: the broken count escalates at the limit.
    m = restored(Stage.EARLY, limit=limit)
    for broken in range(1, limit + 1):
        m.send("short_term_hardship")
        assert m.take_actions() == [Action.ARRANGEMENT]
        m.loan.broken_promises = broken
        m.send("instalment_missed")
        assert m.situation == NORMAL
        expected = Stage.MIDDLE if broken >= limit else Stage.EARLY
        assert m.stage == expected, f"{broken} broken of {limit}"
    assert m.take_actions() == []


def test_promises_and_instalments_count_together() -> None:
    # One broken promise, then a missed instalment: the second breach reaches the limit of 2.
    m = restored(Stage.MIDDLE)
    m.send("promise_made")
    m.loan.broken_promises = 1
    m.send("promise_broken")
    assert m.stage == Stage.MIDDLE
    m.send("short_term_hardship")
    m.loan.broken_promises = LIMIT
    m.send("instalment_missed")
    assert (m.stage, m.situation) == (Stage.LATE, NORMAL)
    assert m.take_actions() == [Action.ARRANGEMENT, Action.FIRM_SMS]


@pytest.mark.parametrize("limit_reached", [False, True])
def test_long_hardship_walk(limit_reached: bool) -> None:
    m = restored(Stage.MIDDLE, broken=LIMIT if limit_reached else 0)
    m.send("short_term_hardship")
    m.send("long_term_hardship")
    assert m.situation == HARDSHIP_REVIEW
    m.send("forbearance_approved")
    assert m.situation == FORBEARANCE
    m.send("instalment_missed")
    assert m.situation == NORMAL
    assert m.stage == (Stage.LATE if limit_reached else Stage.MIDDLE)
    expected = [Action.ARRANGEMENT, Action.FORBEARANCE]
    assert m.take_actions() == ([*expected, Action.FIRM_SMS] if limit_reached else expected)


# --- entry actions of each situation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("situation", "event", "after", "actions"),
    [
        *(
            (s, "death_reported", DECEASED_REPORTED, [Action.VERIFY_DEATH])
            for s in DEATH_REPORTABLE
        ),
        (DECEASED_REPORTED, "verification_overdue", DECEASED_REVIEW, []),
        (DECEASED_REPORTED, "registry_not_verified", DECEASED_REVIEW, []),
        (DECEASED_REPORTED, "death_verified", ESTATE_CONTACT, [Action.ESTATE_INQUIRY]),
        (DECEASED_REVIEW, "death_verified", ESTATE_CONTACT, [Action.ESTATE_INQUIRY]),
        (NORMAL, "short_term_hardship", ARRANGEMENT, [Action.ARRANGEMENT]),
        (PROMISED, "short_term_hardship", ARRANGEMENT, [Action.ARRANGEMENT]),
        (NORMAL, "long_term_hardship", HARDSHIP_REVIEW, []),
        (PROMISED, "long_term_hardship", HARDSHIP_REVIEW, []),
        (ARRANGEMENT, "long_term_hardship", HARDSHIP_REVIEW, []),
        (HARDSHIP_REVIEW, "forbearance_approved", FORBEARANCE, [Action.FORBEARANCE]),
        (HARDSHIP_REVIEW, "forbearance_rejected", NORMAL, []),
        (ARRANGEMENT, "instalment_missed", NORMAL, []),
        (FORBEARANCE, "instalment_missed", NORMAL, []),
        (DECEASED_REPORTED, "death_not_verified", NORMAL, []),
        (DECEASED_REVIEW, "death_not_verified", NORMAL, []),
        (ARRANGEMENT, "dispute_opened", DISPUTED, []),
        (FORBEARANCE, "dispute_opened", DISPUTED, []),
        (ARRANGEMENT, "cease_requested", CEASED, []),
    ],
)
def test_entering_a_situation_asks_for_its_action_once(
    situation: str, event: str, after: str, actions: list[str]
) -> None:
    m = restored(Stage.MIDDLE, situation)
    m.send(event)
    assert (m.stage, m.situation) == (Stage.MIDDLE, after)
    assert m.take_actions() == actions
    assert m.take_actions() == [], "actions are handed over once"
    m.calendar.days_past_due = 1
    assert m.observe_day() is False
    assert m.take_actions() == [], "staying does not repeat entry actions"


@pytest.mark.parametrize("situation", SITUATIONS)
def test_the_way_to_each_situation_asks_for_its_actions(situation: str) -> None:
    assert reached(Stage.LATE, situation).take_actions() == PATH_ACTIONS[situation]


# --- outreach_held, collection_paused and accepts -------------------------------------------------


@pytest.mark.parametrize(
    ("situation", "held", "paused"),
    [
        (NORMAL, False, False),
        (PROMISED, True, False),
        (DISPUTED, True, True),
        (CEASED, True, False),
        (DECEASED_REPORTED, True, True),
        (DECEASED_REVIEW, True, True),
        (ESTATE_CONTACT, True, True),
        (ARRANGEMENT, True, True),
        (HARDSHIP_REVIEW, True, True),
        (FORBEARANCE, True, True),
    ],
)
@pytest.mark.parametrize("stage", Stage.OPEN)
def test_outreach_held_and_collection_paused_per_situation(
    stage: str, situation: str, held: bool, paused: bool
) -> None:
    # Outreach is held everywhere but normal; collection pauses in the PAUSING situations only.
    for m in (restored(stage, situation), reached(stage, situation)):
        assert m.outreach_held is held
        assert m.collection_paused is paused


@pytest.mark.parametrize("how", CLOSED)
def test_a_closed_loan_holds_outreach_and_pauses_nothing(how: str) -> None:
    # A closed loan is outside the normal situation: there is nothing to reach out for.
    m = restored(how)
    assert m.situation == "closed"
    assert m.outreach_held
    assert not m.collection_paused


@pytest.mark.parametrize(("stage", "situation"), OPEN_STATES)
def test_accepts_the_situation_events_of_the_situation(stage: str, situation: str) -> None:
    m = restored(stage, situation)
    for event in SITUATION_EVENTS:
        if event in STAGE_GUARDED and stage != Stage.LEGAL:
            # Guarded in the stage region below legal, so ``accepts`` reports them there.
            assert m.accepts(event), event
            continue
        assert m.accepts(event) is (event in ACCEPTED[situation]), event


@pytest.mark.parametrize(("stage", "situation"), OPEN_STATES)
def test_accepts_closing_events_while_open_guards_aside(stage: str, situation: str) -> None:
    m = restored(stage, situation)
    for event in CLOSING_EVENTS:
        assert m.accepts(event), event
    assert m.accepts("day_passed") is (stage != Stage.LEGAL)


def test_accepts_an_unknown_event_is_false() -> None:
    assert not restored(Stage.EARLY).accepts("no_such_event")


@pytest.mark.parametrize(("stage", "situation"), OPEN_STATES)
def test_a_situation_event_not_accepted_raises(stage: str, situation: str) -> None:
    # Below the broken-promise limit the stage-guarded events are refused unless the situation
    # region takes them.
    for event in SITUATION_EVENTS:
        if event in ACCEPTED[situation]:
            continue
        assert_refused(restored(stage, situation, broken=0), event)


@pytest.mark.parametrize(("stage", "situation"), OPEN_STATES)
def test_every_accepted_situation_event_is_taken(stage: str, situation: str) -> None:
    for event in sorted(ACCEPTED[situation]):
        m = restored(stage, situation)
        m.send(event)
        assert m.stage == stage, "below the limit a situation event keeps the stage"
        assert not m.is_closed


@pytest.mark.parametrize(
    ("situation", "event"),
    [
        (NORMAL, "promise_kept"),
        (NORMAL, "promise_broken"),  # below the limit
        (NORMAL, "dispute_rejected"),
        (NORMAL, "instalment_missed"),  # below the limit
        (PROMISED, "promise_made"),
        (PROMISED, "dispute_rejected"),
        (PROMISED, "instalment_missed"),
        (DISPUTED, "promise_made"),
        (DISPUTED, "promise_kept"),
        (DISPUTED, "dispute_opened"),
        (DISPUTED, "short_term_hardship"),
        (CEASED, "promise_made"),
        (CEASED, "promise_kept"),
        (CEASED, "dispute_rejected"),
        (CEASED, "cease_requested"),
        (CEASED, "short_term_hardship"),
        (CEASED, "long_term_hardship"),
        (DECEASED_REPORTED, "promise_made"),
        (DECEASED_REPORTED, "death_reported"),
        (DECEASED_REVIEW, "verification_overdue"),
        (ESTATE_CONTACT, "death_not_verified"),
        (ARRANGEMENT, "promise_made"),
        (ARRANGEMENT, "promise_broken"),
        (ARRANGEMENT, "short_term_hardship"),
        (HARDSHIP_REVIEW, "cease_requested"),
        (HARDSHIP_REVIEW, "instalment_missed"),
        (FORBEARANCE, "cease_requested"),
        (FORBEARANCE, "long_term_hardship"),
        (FORBEARANCE, "forbearance_approved"),
    ],
)
def test_inapplicable_events_raise(situation: str, event: str) -> None:
    assert_refused(restored(Stage.MIDDLE, situation, broken=0), event)


# --- closed -----------------------------------------------------------------------------------


def _closed_by(how: str) -> CollectionMachine:
    if how == Stage.CURED:
        m = restored(Stage.MIDDLE, PROMISED, outstanding=0)
        assert m.observe_payment()
    elif how == Stage.REFERRED:
        m = restored(Stage.LEGAL, CEASED, dpd=40, days_in_stage=REFERRAL_AFTER)
        assert m.observe_day()
    elif how == DISPUTE_UPHELD:
        m = restored(Stage.LATE, DISPUTED)
        m.send("dispute_closed")
    elif how == ESTATE_CLAIM:
        m = restored(Stage.LATE, ESTATE_CONTACT)
        m.send("estate_claim_filed")
    else:
        m = restored(Stage.EARLY, ESTATE_CONTACT)
        m.send("estate_written_off")
    assert m.stage == how
    return m


@pytest.mark.parametrize("how", CLOSED)
def test_every_event_raises_once_closed(how: str) -> None:
    m = _closed_by(how)
    # Every guard would pass: the refusal is the closing, not a guard.
    m.calendar.days_past_due = 60
    m.loan.outstanding_minor = 0
    m.calendar.days_in_stage = REFERRAL_AFTER * 2
    m.loan.broken_promises = LIMIT * 2
    m.loan.history.cease_requested = True
    for event in EVENTS:
        assert not m.accepts(event), event
        assert_refused(m, event)
        assert m.stage == how


@pytest.mark.parametrize("how", CLOSED)
def test_observing_a_closed_machine_changes_nothing(how: str) -> None:
    m = _closed_by(how)
    m.loan.outstanding_minor = 0
    m.calendar.days_in_stage = REFERRAL_AFTER * 2
    assert m.observe_day() is False
    assert m.observe_payment() is False
    assert m.stage == how
    assert m.take_actions() == []
