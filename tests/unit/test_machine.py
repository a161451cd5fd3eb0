"""The collection state machine: a stage region and a situation region, and three ways to close.

The stage follows collection DPD (early, middle, late, legal); the situation follows what
conversations revealed (normal, promised, disputed, ceased). A cleared balance cures the loan, a
long enough stay in legal refers it, an upheld dispute ends it.
"""

from __future__ import annotations

from itertools import product

import pytest
from statemachine.exceptions import TransitionNotAllowed

from workflows.machine import Action, CollectionMachine, LoanFacts
from workflows.types import Stage, StageBands

from .support import default_strategy

STRATEGY = default_strategy()
BANDS = STRATEGY.stages
REFERRAL_AFTER = STRATEGY.referral_after_days
LIMIT = STRATEGY.broken_promise_limit
BALANCE = 50_000

NORMAL, PROMISED, DISPUTED, CEASED = "normal", "promised", "disputed", "ceased"
SITUATIONS = (NORMAL, PROMISED, DISPUTED, CEASED)
DISPUTE_UPHELD = "dispute_upheld"
CLOSED = (Stage.CURED, Stage.REFERRED, DISPUTE_UPHELD)
OPEN_STATES = list(product(Stage.OPEN, SITUATIONS))

SITUATION_EVENTS = (
    "promise_made",
    "promise_kept",
    "promise_broken",
    "dispute_opened",
    "dispute_rejected",
    "cease_requested",
)
EVENTS = ("day_passed", *SITUATION_EVENTS, "payment_applied", "referral_due", "dispute_closed")

ENTRY_ACTIONS = {
    Stage.EARLY: [Action.REMINDER_SMS],
    Stage.MIDDLE: [],
    Stage.LATE: [Action.FIRM_SMS],
    Stage.LEGAL: [Action.LEGAL_NOTICE],
}
NEXT_STAGE = {Stage.EARLY: Stage.MIDDLE, Stage.MIDDLE: Stage.LATE, Stage.LATE: Stage.LEGAL}
THRESHOLD = {Stage.MIDDLE: BANDS.middle, Stage.LATE: BANDS.late, Stage.LEGAL: BANDS.legal}


def facts(
    dpd: int = 1, outstanding: int = BALANCE, days_in_stage: int = 0, broken: int = 0
) -> LoanFacts:
    return LoanFacts(dpd, outstanding, days_in_stage, broken)


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
        bands, facts(dpd, outstanding, days_in_stage, broken), REFERRAL_AFTER, limit
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
    return CollectionMachine(
        bands,
        facts(dpd, outstanding, days_in_stage, broken),
        REFERRAL_AFTER,
        limit,
        stage=stage,
        situation=situation,
    )


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


# --- the strategy's numbers -------------------------------------------------------------------


def test_default_strategy_numbers() -> None:
    assert (BANDS.middle, BANDS.late, BANDS.legal) == (6, 19, 29)
    assert REFERRAL_AFTER == 10
    assert LIMIT == 2


# --- a new machine ----------------------------------------------------------------------------


def test_new_machine_starts_early_and_normal_with_a_reminder() -> None:
    m = new_machine()
    assert (m.stage, m.situation) == (Stage.EARLY, NORMAL)
    assert not m.is_closed
    assert not m.outreach_held
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
    m.facts.days_past_due = threshold
    assert m.observe_day() is True
    assert m.stage == target
    assert m.take_actions() == ENTRY_ACTIONS[target]


def test_default_thresholds_are_6_19_29() -> None:
    m = new_machine()
    m.take_actions()
    seen = {}
    for dpd in range(1, 40):
        m.facts.days_past_due = dpd
        if m.observe_day():
            seen[m.stage] = dpd
    assert seen == {Stage.MIDDLE: 6, Stage.LATE: 19, Stage.LEGAL: 29}
    assert m.take_actions() == [Action.FIRM_SMS, Action.LEGAL_NOTICE]


def test_thresholds_come_from_the_strategy() -> None:
    m = restored(Stage.EARLY, dpd=3, bands=StageBands(middle=3, late=5, legal=7))
    assert m.observe_day()
    assert m.stage == Stage.MIDDLE
    m.facts.days_past_due = 5
    assert m.observe_day()
    assert m.stage == Stage.LATE
    m.facts.days_past_due = 7
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
    # The machine reads collection DPD: pausing it during a dispute is the workflow's business.
    m = restored(Stage.EARLY, situation, dpd=30)
    assert catch_up(m) == [Stage.MIDDLE, Stage.LATE, Stage.LEGAL]
    assert m.situation == situation, "the stage moves, the situation stays"


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


@pytest.mark.parametrize("situation", [NORMAL, PROMISED, CEASED])
def test_referral_after_referral_after_days_in_legal(situation: str) -> None:
    m = restored(Stage.LEGAL, situation, dpd=40, days_in_stage=REFERRAL_AFTER - 1)
    assert m.observe_day() is False
    assert m.stage == Stage.LEGAL
    m.facts.days_in_stage = REFERRAL_AFTER
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


def test_no_referral_while_a_dispute_is_open() -> None:
    m = restored(Stage.LEGAL, DISPUTED, dpd=40, days_in_stage=REFERRAL_AFTER)
    assert m.observe_day() is False
    assert m.stage == Stage.LEGAL


# --- cure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("stage", "situation"), OPEN_STATES)
@pytest.mark.parametrize("outstanding", [0, -1], ids=["cleared", "overpaid"])
def test_clearing_the_balance_cures_from_every_open_state(
    stage: str, situation: str, outstanding: int
) -> None:
    m = restored(stage, situation, dpd=30)
    m.facts.outstanding_minor = outstanding
    assert m.observe_payment() is True
    assert m.stage == Stage.CURED
    assert m.situation == "closed"
    assert m.is_closed
    assert not m.outreach_held
    assert m.take_actions() == []


@pytest.mark.parametrize(("stage", "situation"), OPEN_STATES)
def test_partial_payment_changes_nothing(stage: str, situation: str) -> None:
    m = restored(stage, situation, dpd=30)
    m.facts.outstanding_minor = 1
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
    assert m.take_actions() == [], "entry actions ran before continue-as-new"


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
    assert not m.outreach_held
    assert m.take_actions() == []
    assert not any(m.accepts(e) for e in EVENTS)


def test_restored_machine_keeps_going() -> None:
    m = restored(Stage.MIDDLE, PROMISED, dpd=BANDS.late)
    assert m.observe_day()
    assert (m.stage, m.situation) == (Stage.LATE, PROMISED)
    assert m.take_actions() == [Action.FIRM_SMS]
    m.send("promise_kept")
    assert (m.stage, m.situation) == (Stage.LATE, NORMAL)


def test_restored_machines_are_independent() -> None:
    a = restored(Stage.LATE, PROMISED)
    b = restored(Stage.EARLY, CEASED)
    a.send("promise_kept")
    assert (b.stage, b.situation) == (Stage.EARLY, CEASED)


# --- promises ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", Stage.OPEN)
def test_promise_made_then_kept(stage: str) -> None:
    m = restored(stage)
    m.send("promise_made")
    assert (m.stage, m.situation) == (stage, PROMISED)
    assert m.outreach_held
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
        m.facts.broken_promises = broken
        m.send("promise_broken")
        expected = Stage.MIDDLE if broken >= limit else Stage.EARLY
        assert m.stage == expected, f"{broken} broken of {limit}"
    assert m.situation == NORMAL
    m.send("promise_made")
    m.facts.broken_promises = limit + 1
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
    m.facts.days_in_stage = REFERRAL_AFTER
    assert m.observe_day() is True
    assert m.stage == Stage.REFERRED


@pytest.mark.parametrize("situation", [NORMAL, DISPUTED, CEASED])
def test_promise_broken_without_a_promise_is_refused_at_the_limit(situation: str) -> None:
    assert_refused(restored(Stage.EARLY, situation, broken=LIMIT), "promise_broken")


# --- disputes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", Stage.OPEN)
@pytest.mark.parametrize("situation", [NORMAL, PROMISED, CEASED])
def test_dispute_opened_from_normal_promised_and_ceased(stage: str, situation: str) -> None:
    m = restored(stage, situation)
    m.send("dispute_opened")
    assert (m.stage, m.situation) == (stage, DISPUTED)
    assert m.outreach_held
    assert m.take_actions() == []


@pytest.mark.parametrize("stage", Stage.OPEN)
def test_dispute_rejected_returns_to_normal_in_the_same_stage(stage: str) -> None:
    m = restored(stage, DISPUTED)
    m.send("dispute_rejected")
    assert (m.stage, m.situation) == (stage, NORMAL)
    assert not m.outreach_held
    assert m.take_actions() == [], "the stage is not re-entered"


@pytest.mark.parametrize("stage", Stage.OPEN)
def test_dispute_closed_upholds_the_dispute_when_disputed(stage: str) -> None:
    m = restored(stage, DISPUTED)
    m.send("dispute_closed")
    assert m.stage == DISPUTE_UPHELD
    assert m.situation == "closed"
    assert m.is_closed
    assert not m.outreach_held
    assert m.take_actions() == []


@pytest.mark.parametrize("stage", Stage.OPEN)
@pytest.mark.parametrize("situation", [NORMAL, PROMISED, CEASED])
def test_dispute_closed_is_refused_unless_disputed(stage: str, situation: str) -> None:
    assert_refused(restored(stage, situation), "dispute_closed")


def test_a_whole_dispute_round_trip() -> None:
    m = new_machine()
    m.take_actions()
    m.send("promise_made")
    m.send("dispute_opened")
    m.send("dispute_rejected")
    m.send("promise_made")
    m.send("dispute_opened")
    m.send("dispute_closed")
    assert m.stage == DISPUTE_UPHELD
    assert m.take_actions() == []


# --- cease requests ---------------------------------------------------------------------------


@pytest.mark.parametrize("stage", Stage.OPEN)
@pytest.mark.parametrize("situation", [NORMAL, PROMISED])
def test_cease_requested_from_normal_and_promised(stage: str, situation: str) -> None:
    m = restored(stage, situation)
    m.send("cease_requested")
    assert (m.stage, m.situation) == (stage, CEASED)
    assert m.outreach_held
    assert m.take_actions() == []


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
        m.facts.cease_requested = True
    m.send("dispute_rejected")
    assert m.outreach_held
    assert m.situation == CEASED


# --- outreach_held and accepts ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("situation", "held"), [(NORMAL, False), (PROMISED, True), (DISPUTED, True), (CEASED, True)]
)
@pytest.mark.parametrize("stage", Stage.OPEN)
def test_outreach_held_per_situation(stage: str, situation: str, held: bool) -> None:
    assert restored(stage, situation).outreach_held is held


# Which situation events each situation takes (promise_broken is guarded in the stage region
# too, so it is left to the dedicated tests above).
ACCEPTED = {
    NORMAL: {"promise_made", "dispute_opened", "cease_requested"},
    PROMISED: {"promise_kept", "promise_broken", "dispute_opened", "cease_requested"},
    DISPUTED: {"dispute_rejected"},
    CEASED: {"dispute_opened"},
}


@pytest.mark.parametrize(("stage", "situation"), OPEN_STATES)
def test_accepts_the_situation_events_of_the_situation(stage: str, situation: str) -> None:
    m = restored(stage, situation)
    for event in SITUATION_EVENTS:
        if event == "promise_broken" and situation != PROMISED:
            continue
        assert m.accepts(event) is (event in ACCEPTED[situation]), event


@pytest.mark.parametrize(("stage", "situation"), OPEN_STATES)
def test_accepts_closing_events_while_open_guards_aside(stage: str, situation: str) -> None:
    m = restored(stage, situation)
    assert m.accepts("payment_applied")
    assert m.accepts("referral_due")
    assert m.accepts("dispute_closed")
    assert m.accepts("day_passed") is (stage != Stage.LEGAL)


def test_accepts_an_unknown_event_is_false() -> None:
    assert not restored(Stage.EARLY).accepts("no_such_event")


@pytest.mark.parametrize(("stage", "situation"), OPEN_STATES)
@pytest.mark.parametrize("event", SITUATION_EVENTS)
def test_a_situation_event_not_accepted_raises(stage: str, situation: str, event: str) -> None:
    m = restored(stage, situation)
    if m.accepts(event):
        return
    assert_refused(m, event)


@pytest.mark.parametrize(
    ("situation", "event"),
    [
        (NORMAL, "promise_kept"),
        (NORMAL, "promise_broken"),  # below the limit
        (NORMAL, "dispute_rejected"),
        (PROMISED, "promise_made"),
        (PROMISED, "dispute_rejected"),
        (DISPUTED, "promise_made"),
        (DISPUTED, "promise_kept"),
        (DISPUTED, "dispute_opened"),
        (CEASED, "promise_made"),
        (CEASED, "promise_kept"),
        (CEASED, "dispute_rejected"),
        (CEASED, "cease_requested"),
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
    else:
        m = restored(Stage.LATE, DISPUTED)
        m.send("dispute_closed")
    assert m.stage == how
    return m


@pytest.mark.parametrize("how", CLOSED)
@pytest.mark.parametrize("event", EVENTS)
def test_every_event_raises_once_closed(how: str, event: str) -> None:
    m = _closed_by(how)
    # Every guard would pass: the refusal is the closing, not a guard.
    m.facts.days_past_due = 60
    m.facts.outstanding_minor = 0
    m.facts.days_in_stage = REFERRAL_AFTER * 2
    m.facts.broken_promises = LIMIT * 2
    assert not m.accepts(event)
    assert_refused(m, event)
    assert m.stage == how


@pytest.mark.parametrize("how", CLOSED)
def test_observing_a_closed_machine_changes_nothing(how: str) -> None:
    m = _closed_by(how)
    m.facts.outstanding_minor = 0
    m.facts.days_in_stage = REFERRAL_AFTER * 2
    assert m.observe_day() is False
    assert m.observe_payment() is False
    assert m.stage == how
    assert m.take_actions() == []


# --- next boundary ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "boundary"),
    [
        (Stage.EARLY, BANDS.middle),
        (Stage.MIDDLE, BANDS.late),
        (Stage.LATE, BANDS.legal),
        (Stage.LEGAL, None),
        (Stage.CURED, None),
        (Stage.REFERRED, None),
        (DISPUTE_UPHELD, None),
    ],
)
def test_next_boundary_dpd(stage: str, boundary: int | None) -> None:
    assert restored(stage).next_boundary_dpd() == boundary
