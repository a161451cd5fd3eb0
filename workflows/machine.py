"""The collection state machine: where a loan stands, and what each state calls for.

Two regions run in parallel while a loan is collected. The **stage** follows days past due (early,
middle, late, legal). The **situation** follows what conversations revealed: a promise to pay, a
dispute of the debt, a request to cease. Each region reacts to the events it knows: a broken
promise ends the promise in one region and, past the strategy's limit, escalates the stage in
the other. A payment that clears the balance, a referral or an upheld dispute ends the loan.

The machine is pure. The workflow feeds it events and carries out the actions it asks for on
entering a state; it never decides a state itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from temporalio import workflow

from workflows.types import CollectionState
from workflows.vocabulary import Stage

with workflow.unsafe.imports_passed_through():
    # python-statemachine's i18n resolves paths at import, which the workflow sandbox forbids.
    from statemachine import State, StateMachine


class Action(StrEnum):
    """What a state asks the workflow to carry out when it is entered."""

    REMINDER_SMS = "reminder_sms"
    FIRM_SMS = "firm_sms"
    LEGAL_NOTICE = "legal_notice"
    VERIFY_DEATH = "verify_death"
    ESTATE_INQUIRY = "estate_inquiry"
    ARRANGEMENT = "arrangement"
    FORBEARANCE = "forbearance"


@dataclass
class Calendar:
    """What the workflow last read off the clock, for the guards that count days.

    ``days_past_due`` is collection DPD: the days a dispute (or an operator's hold) paused
    collection do not count towards the next stage, so a loan resumes where it was.
    """

    days_past_due: int = 0
    days_in_stage: int = 0


class LoanModel:
    """The machine's model (python-statemachine's domain model): the loan's own state.

    The machine keeps its configuration in ``CollectionState.stage`` and ``situation_state``,
    so what the workflow carries across continue-as-new is the machine itself, never a copy.
    A fresh model has no configuration until the machine enters its initial states.
    """

    def __init__(self, loan: CollectionState, *, started: bool) -> None:
        self.loan = loan
        self._started = started

    @property
    def state(self) -> Any:
        # Plain strings: the library reads this with ``getattr(model, "state", None)``, which
        # would take an ``AttributeError`` raised here for "not started" and start afresh.
        if not self._started:
            return None
        stage = str(self.loan.stage)
        if stage in Stage.CLOSED:
            return stage
        return {"collecting", "stage", stage, "situation", str(self.loan.situation_state)}

    @state.setter
    def state(self, configuration: Any) -> None:
        self._started = True
        if isinstance(configuration, str):  # a final state
            self.loan.stage = Stage(configuration)
            return
        active = {str(value) for value in configuration}
        self.loan.stage = Stage(next(s for s in Stage.OPEN if s in active))
        self.loan.situation_state = next(s for s in CollectionMachine.SITUATIONS if s in active)


class CollectionMachine(StateMachine):
    """Stage and situation of one loan's collection, until it is cured, referred or closed."""

    class collecting(State.Parallel):
        class stage(State.Compound):
            early = State(initial=True, enter="send_courteous_reminder")
            middle = State()
            late = State(enter="send_firm_message")
            legal = State(enter="serve_legal_notice")

            day_passed = (
                early.to(middle, cond="middle_reached")
                | middle.to(late, cond="late_reached")
                | late.to(legal, cond="legal_reached")
            )
            promise_broken = (
                early.to(middle, cond=["promise_standing", "broken_promise_limit_reached"])
                | middle.to(late, cond=["promise_standing", "broken_promise_limit_reached"])
                | late.to(legal, cond=["promise_standing", "broken_promise_limit_reached"])
            )
            # A missed instalment is a broken promise, with the same escalation.
            instalment_missed = (
                early.to(middle, cond=["arrangement_standing", "broken_promise_limit_reached"])
                | middle.to(late, cond=["arrangement_standing", "broken_promise_limit_reached"])
                | late.to(legal, cond=["arrangement_standing", "broken_promise_limit_reached"])
            )

        class situation(State.Compound):
            normal = State(initial=True)
            promised = State()
            disputed = State()
            ceased = State(enter="remember_cease")
            deceased_reported = State(enter="verify_death")
            deceased_review = State()
            estate_contact = State(enter="ask_estate")
            arrangement = State(enter="offer_arrangement")
            hardship_review = State()
            forbearance = State(enter="offer_forbearance")

            promise_made = normal.to(promised)
            promise_kept = promised.to(normal)
            promise_broken = promised.to(normal)
            dispute_opened = (
                normal.to(disputed)
                | deceased_reported.to(disputed)
                | deceased_review.to(disputed)
                | estate_contact.to(disputed)
                | promised.to(disputed)
                | ceased.to(disputed)
                | arrangement.to(disputed)
                | hardship_review.to(disputed)
                | forbearance.to(disputed)
            )
            dispute_rejected = disputed.to(ceased, cond="cease_standing") | disputed.to(normal)
            cease_requested = normal.to(ceased) | promised.to(ceased) | arrangement.to(ceased)
            death_reported = (
                normal.to(deceased_reported)
                | promised.to(deceased_reported)
                | ceased.to(deceased_reported)
                | arrangement.to(deceased_reported)
                | hardship_review.to(deceased_reported)
                | forbearance.to(deceased_reported)
            )
            death_verified = deceased_reported.to(estate_contact) | deceased_review.to(
                estate_contact
            )
            # A cease request outlives every situation that ends: they return to ceased.
            death_not_verified = (
                deceased_reported.to(ceased, cond="cease_standing")
                | deceased_reported.to(normal)
                | deceased_review.to(ceased, cond="cease_standing")
                | deceased_review.to(normal)
            )
            verification_overdue = deceased_reported.to(deceased_review)
            # A registry lags: its "not verified" does not overrule a report by family. A person
            # decides (``death_verified`` or ``death_not_verified``), as after the deadline.
            registry_not_verified = deceased_reported.to(deceased_review)
            short_term_hardship = normal.to(arrangement) | promised.to(arrangement)
            long_term_hardship = (
                normal.to(hardship_review)
                | promised.to(hardship_review)
                | arrangement.to(hardship_review)
            )
            forbearance_approved = hardship_review.to(forbearance)
            forbearance_rejected = hardship_review.to(ceased, cond="cease_standing") | (
                hardship_review.to(normal)
            )
            instalment_missed = (
                arrangement.to(ceased, cond="cease_standing")
                | arrangement.to(normal)
                | forbearance.to(ceased, cond="cease_standing")
                | forbearance.to(normal)
            )

    cured = State(final=True)
    referred = State(final=True)
    dispute_upheld = State(final=True)
    estate_claim = State(final=True)
    written_off = State(final=True)

    payment_applied = collecting.to(cured, cond="balance_cleared")
    referral_due = collecting.to(referred, cond="in_legal_long_enough")
    dispute_closed = collecting.to(dispute_upheld, cond="in_dispute")
    estate_claim_filed = collecting.to(estate_claim, cond="estate_contacted")
    estate_written_off = collecting.to(written_off, cond="estate_contacted")

    STAGES = Stage.OPEN
    SITUATIONS = (
        "normal",
        "promised",
        "disputed",
        "ceased",
        "deceased_reported",
        "deceased_review",
        "estate_contact",
        "arrangement",
        "hardship_review",
        "forbearance",
    )
    CLOSED = Stage.CLOSED
    # Situations that pause collection: stage thresholds do not advance while they stand.
    PAUSING = (
        "disputed",
        "deceased_reported",
        "deceased_review",
        "estate_contact",
        "hardship_review",
        "arrangement",
        "forbearance",
    )

    def __init__(
        self, loan: CollectionState, calendar: Calendar | None = None, *, restore: bool = False
    ) -> None:
        """A new machine over ``loan``, or with ``restore`` the one the loan's state holds,
        restored as it was, without entry actions (they ran before continue-as-new)."""
        if restore and loan.stage not in (*Stage.OPEN, *Stage.CLOSED):
            raise ValueError(f"cannot restore the collection machine in stage {loan.stage!r}")
        if restore and loan.situation_state not in self.SITUATIONS:
            raise ValueError(
                f"cannot restore the collection machine in situation {loan.situation_state!r}"
            )
        self.loan = loan
        self.calendar = calendar or Calendar()
        self.actions: list[Action] = []
        super().__init__(model=LoanModel(loan, started=restore))

    @property
    def stage(self) -> Stage:
        """The stage, or the final state once the loan is closed."""
        return self.loan.stage

    @property
    def situation(self) -> str:
        """The situation region's state, or ``closed`` once the loan is closed."""
        if self.is_closed:
            return "closed"
        return self.loan.situation_state

    @property
    def is_closed(self) -> bool:
        return self.stage in Stage.CLOSED

    @property
    def outreach_held(self) -> bool:
        """No collection calls or messages outside the normal situation.

        A promise or a plan is waited on; a dispute, a cease request, a death report and a
        hardship review stop outreach. Each situation does what it calls for instead. An
        operator's hold stops it in any situation.
        """
        return self.loan.hold is not None or self.situation != "normal"

    @property
    def collection_paused(self) -> bool:
        """Whether the stage thresholds and the referral wait (the days do not count)."""
        return self.loan.hold is not None or self.situation in self.PAUSING

    def accepts(self, event: str) -> bool:
        """Whether ``event`` would be taken now (guards aside): outcomes do not always apply."""
        return any(e.id == event for e in self.allowed_events)

    def observe_day(self, calendar: Calendar | None = None) -> bool:
        """Let the machine see the calendar (as last seen, without one).

        Returns whether the stage or the loan changed. Most days cross no boundary.
        """
        self.calendar = calendar or self.calendar
        return self.take("day_passed") or self.take("referral_due")

    def take(self, event: str) -> bool:
        """Send ``event`` if it applies now, guards included. Returns whether it was taken.

        Any other event is refused by the library (``TransitionNotAllowed``): a bug.
        """
        if not any(e.id == event for e in self.enabled_events()):
            return False
        self.send(event)
        return True

    def observe_payment(self) -> bool:
        """A payment was applied. Returns whether it cleared the balance (the loan is cured)."""
        return self.take("payment_applied")

    def take_actions(self) -> list[Action]:
        """Hand the pending actions to the workflow, once."""
        actions, self.actions = self.actions, []
        return actions

    # Guards.
    def middle_reached(self) -> bool:
        return self.calendar.days_past_due >= self.loan.strategy.stages.middle

    def late_reached(self) -> bool:
        return self.calendar.days_past_due >= self.loan.strategy.stages.late

    def legal_reached(self) -> bool:
        return self.calendar.days_past_due >= self.loan.strategy.stages.legal

    def in_legal_long_enough(self) -> bool:
        """Referral waits while collection is paused (a dispute, a death report, a plan)."""
        return (
            self.stage == "legal"
            and not self.collection_paused
            and self.calendar.days_in_stage >= self.loan.strategy.referral_after_days
        )

    def promise_standing(self) -> bool:
        return self.situation == "promised"

    def arrangement_standing(self) -> bool:
        return self.situation in ("arrangement", "forbearance")

    def estate_contacted(self) -> bool:
        return self.situation == "estate_contact"

    def cease_standing(self) -> bool:
        return self.loan.history.cease_requested

    def broken_promise_limit_reached(self) -> bool:
        return self.loan.broken_promises >= self.loan.strategy.broken_promise_limit

    def balance_cleared(self) -> bool:
        return self.loan.outstanding_minor <= 0

    def in_dispute(self) -> bool:
        return self.situation == "disputed"

    # What each stage calls for.
    def send_courteous_reminder(self) -> None:
        self.actions.append(Action.REMINDER_SMS)

    def send_firm_message(self) -> None:
        self.actions.append(Action.FIRM_SMS)

    def serve_legal_notice(self) -> None:
        self.actions.append(Action.LEGAL_NOTICE)

    def remember_cease(self) -> None:
        self.loan.history.cease_requested = True

    def verify_death(self) -> None:
        self.actions.append(Action.VERIFY_DEATH)

    def ask_estate(self) -> None:
        self.actions.append(Action.ESTATE_INQUIRY)

    def offer_arrangement(self) -> None:
        self.actions.append(Action.ARRANGEMENT)

    def offer_forbearance(self) -> None:
        self.actions.append(Action.FORBEARANCE)
