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

from temporalio import workflow

from workflows.types import StageBands

with workflow.unsafe.imports_passed_through():
    # python-statemachine's i18n resolves paths at import, which the workflow sandbox forbids.
    from statemachine import State, StateMachine
    from statemachine.exceptions import TransitionNotAllowed


class Action:
    """What a state asks the workflow to carry out when it is entered."""

    REMINDER_SMS = "reminder_sms"
    FIRM_SMS = "firm_sms"
    LEGAL_NOTICE = "legal_notice"


@dataclass
class LoanFacts:
    """What the machine's guards read. The workflow keeps it current before each event.

    ``days_past_due`` here is collection DPD: the days a dispute paused collection do not count
    towards the next stage, so a loan resumes where it was.
    """

    days_past_due: int
    outstanding_minor: int
    days_in_stage: int = 0
    broken_promises: int = 0
    cease_requested: bool = False  # outlives a dispute: a rejected dispute returns to ceased


@dataclass
class _Configuration:
    """The model python-statemachine keeps the active states in; it restores a machine as-is."""

    state: object = None


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

        class situation(State.Compound):
            normal = State(initial=True)
            promised = State()
            disputed = State()
            ceased = State(enter="remember_cease")

            promise_made = normal.to(promised)
            promise_kept = promised.to(normal)
            promise_broken = promised.to(normal)
            dispute_opened = normal.to(disputed) | promised.to(disputed) | ceased.to(disputed)
            dispute_rejected = disputed.to(ceased, cond="cease_standing") | disputed.to(normal)
            cease_requested = normal.to(ceased) | promised.to(ceased)

    cured = State(final=True)
    referred = State(final=True)
    dispute_upheld = State(final=True)

    payment_applied = collecting.to(cured, cond="balance_cleared")
    referral_due = collecting.to(referred, cond="in_legal_long_enough")
    dispute_closed = collecting.to(dispute_upheld, cond="in_dispute")

    STAGES = ("early", "middle", "late", "legal")
    SITUATIONS = ("normal", "promised", "disputed", "ceased")
    CLOSED = ("cured", "referred", "dispute_upheld")

    def __init__(
        self,
        bands: StageBands,
        facts: LoanFacts,
        referral_after_days: int,
        broken_promise_limit: int,
        stage: str | None = None,
        situation: str | None = None,
    ) -> None:
        """A new machine, or with ``stage`` (and ``situation``) one restored without entry actions."""
        self.bands = bands
        self.facts = facts
        self.referral_after_days = referral_after_days
        self.broken_promise_limit = broken_promise_limit
        self.actions: list[str] = []
        model = _Configuration()
        if stage is not None and stage not in (*self.STAGES, *self.CLOSED):
            raise ValueError(f"cannot restore the collection machine in stage {stage!r}")
        if situation is not None and situation not in self.SITUATIONS:
            raise ValueError(f"cannot restore the collection machine in situation {situation!r}")
        if stage is not None:
            open_stage = stage in self.STAGES
            model.state = (
                {"collecting", "stage", stage, "situation", situation or "normal"}
                if open_stage
                else stage
            )
        if situation == "ceased":
            facts.cease_requested = True
        super().__init__(model=model)

    @property
    def stage(self) -> str:
        """The stage, or the final state once the loan is closed."""
        return self._active_in((*self.STAGES, *self.CLOSED))

    @property
    def situation(self) -> str:
        """The situation region's state, or ``closed`` once the loan is closed."""
        if self.is_closed:
            return "closed"
        return self._active_in(self.SITUATIONS)

    @property
    def is_closed(self) -> bool:
        return self.stage in self.CLOSED

    @property
    def outreach_held(self) -> bool:
        """No calls or messages while a promise, a dispute or a cease request stands."""
        return self.situation in ("promised", "disputed", "ceased")

    def accepts(self, event: str) -> bool:
        """Whether ``event`` would be taken now (guards aside): outcomes do not always apply."""
        return any(e.id == event for e in self.allowed_events)

    def observe_day(self) -> bool:
        """Let the machine see the calendar. Returns whether the stage or the loan changed.

        Most days cross no boundary: every guard declines, which the machine reports as a
        transition not allowed. That is the one refusal expected here; any other event that
        does not apply still raises.
        """
        return self._guarded("day_passed") or self._guarded("referral_due")

    def observe_payment(self) -> bool:
        """A payment was applied. Returns whether it cleared the balance (the loan is cured)."""
        return self._guarded("payment_applied")

    def _guarded(self, event: str) -> bool:
        try:
            self.send(event)
        except TransitionNotAllowed:
            return False
        return True

    def take_actions(self) -> list[str]:
        """Hand the pending actions to the workflow, once."""
        actions, self.actions = self.actions, []
        return actions

    def _active_in(self, ids: tuple[str, ...]) -> str:
        active = {str(value) for value in self.configuration_values}
        return next(i for i in ids if i in active)

    # Guards.
    def middle_reached(self) -> bool:
        return self.facts.days_past_due >= self.bands.middle

    def late_reached(self) -> bool:
        return self.facts.days_past_due >= self.bands.late

    def legal_reached(self) -> bool:
        return self.facts.days_past_due >= self.bands.legal

    def in_legal_long_enough(self) -> bool:
        """Referral waits out a dispute: collection is paused, and so is the legal clock."""
        return (
            self.stage == "legal"
            and self.situation != "disputed"
            and self.facts.days_in_stage >= self.referral_after_days
        )

    def promise_standing(self) -> bool:
        return self.situation == "promised"

    def cease_standing(self) -> bool:
        return self.facts.cease_requested

    def broken_promise_limit_reached(self) -> bool:
        return self.facts.broken_promises >= self.broken_promise_limit

    def balance_cleared(self) -> bool:
        return self.facts.outstanding_minor <= 0

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
        self.facts.cease_requested = True

    def next_boundary_dpd(self) -> int | None:
        """The collection DPD at which the current stage ends by itself, if it does."""
        return {
            "early": self.bands.middle,
            "middle": self.bands.late,
            "late": self.bands.legal,
        }.get(self.stage)
