"""The collection state machine: where a loan stands, and what each stage calls for.

The machine is pure. The workflow feeds it events (days passing, payments) and then carries out
the actions the machine asked for on entering a state: it never decides a stage itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow

from workflows.types import StageBands

with workflow.unsafe.imports_passed_through():
    # python-statemachine's i18n resolves paths at import, which the workflow sandbox forbids.
    from statemachine import State, StateMachine


class Action:
    """What a state asks the workflow to carry out when it is entered."""

    REMINDER_SMS = "reminder_sms"
    FIRM_SMS = "firm_sms"
    LEGAL_NOTICE = "legal_notice"


@dataclass
class LoanFacts:
    """What the machine's guards read. The workflow keeps it current before each event."""

    days_past_due: int
    outstanding_minor: int
    days_in_stage: int = 0


class CollectionMachine(StateMachine):
    """Early, middle and late outreach, then legal; cured whenever the balance is cleared."""

    early = State(initial=True, enter="send_courteous_reminder")
    middle = State()
    late = State(enter="send_firm_message")
    legal = State(enter="serve_legal_notice")
    cured = State(final=True)
    referred = State(final=True)

    day_passed = (
        early.to(middle, cond="middle_reached")
        | middle.to(late, cond="late_reached")
        | late.to(legal, cond="legal_reached")
        | legal.to(referred, cond="referral_due")
        | early.to.itself(internal=True)
        | middle.to.itself(internal=True)
        | late.to.itself(internal=True)
        | legal.to.itself(internal=True)
    )
    payment_applied = (
        early.to(cured, cond="balance_cleared")
        | middle.to(cured, cond="balance_cleared")
        | late.to(cured, cond="balance_cleared")
        | legal.to(cured, cond="balance_cleared")
        | early.to.itself(internal=True)
        | middle.to.itself(internal=True)
        | late.to.itself(internal=True)
        | legal.to.itself(internal=True)
    )

    def __init__(
        self,
        bands: StageBands,
        facts: LoanFacts,
        referral_after_days: int,
        stage: str | None = None,
    ) -> None:
        self.bands = bands
        self.facts = facts
        self.referral_after_days = referral_after_days
        self.actions: list[str] = []
        super().__init__(start_value=stage)

    @property
    def stage(self) -> str:
        return str(self.current_state_value)

    @property
    def is_closed(self) -> bool:
        return self.stage in (self.cured.id, self.referred.id)

    def take_actions(self) -> list[str]:
        """Hand the pending actions to the workflow, once."""
        actions, self.actions = self.actions, []
        return actions

    # Guards.
    def middle_reached(self) -> bool:
        return self.facts.days_past_due >= self.bands.middle

    def late_reached(self) -> bool:
        return self.facts.days_past_due >= self.bands.late

    def legal_reached(self) -> bool:
        return self.facts.days_past_due >= self.bands.legal

    def referral_due(self) -> bool:
        return self.facts.days_in_stage >= self.referral_after_days

    def balance_cleared(self) -> bool:
        return self.facts.outstanding_minor <= 0

    # What each stage calls for.
    def send_courteous_reminder(self) -> None:
        self.actions.append(Action.REMINDER_SMS)

    def send_firm_message(self) -> None:
        self.actions.append(Action.FIRM_SMS)

    def serve_legal_notice(self) -> None:
        self.actions.append(Action.LEGAL_NOTICE)

    def next_boundary_dpd(self) -> int | None:
        """The DPD at which the current stage ends by itself, if it does."""
        return {
            self.early.id: self.bands.middle,
            self.middle.id: self.bands.late,
            self.late.id: self.bands.legal,
        }.get(self.stage)
