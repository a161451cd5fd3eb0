"""The messages waiting for the workflow's main loop: payments, outcomes, decisions, holds.

Signal and update handlers only put messages here; the main loop applies them in order, with
the activities they call for (``reports``). Whatever is still waiting at continue-as-new is
carried in the state, so nothing is lost between runs. Every message is idempotent by its id:
a retried signal is recognised here, in this run or in an earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow

from workflows.queue import CaseAction
from workflows.types import (
    CollectionState,
    ContactOutcome,
    DisputeResolution,
    HoldChange,
    LoanChanged,
    PaymentReceived,
    PendingPayment,
    ReviewDecision,
)


def loan_change_id(change: LoanChanged) -> str:
    """A change of the loan book is known by its version."""
    return f"book:v{change.version}"


@dataclass
class Inbox:
    """What was received and not yet applied."""

    payments: list[PendingPayment] = field(default_factory=list)
    outcomes: list[ContactOutcome] = field(default_factory=list)
    resolutions: list[DisputeResolution] = field(default_factory=list)
    decisions: list[ReviewDecision] = field(default_factory=list)
    hold_changes: list[HoldChange] = field(default_factory=list)
    loan_changes: list[LoanChanged] = field(default_factory=list)
    case_actions: list[CaseAction] = field(default_factory=list)
    # Another loan of the borrower said the shared budget changed: plan again now.
    borrower_changed: bool = False
    # Payment id -> why the payment was not applied (answered to the update that waits on it).
    rejections: dict[str, str] = field(default_factory=dict)
    # The id of the message being applied, at the head of its list (set by ``reports``).
    in_hand: str | None = None
    # Messages refused whole by the limits, described (``kind: field: problem``), to be audited.
    refused: list[str] = field(default_factory=list)

    @classmethod
    def carried_in(cls, state: CollectionState | None) -> Inbox:
        """The messages an earlier run handed over at continue-as-new."""
        if state is None:
            return cls()
        return cls(
            payments=list(state.pending_payments),
            outcomes=list(state.pending_outcomes),
            resolutions=list(state.pending_resolutions),
            decisions=list(state.pending_decisions),
            hold_changes=list(state.pending_hold_changes),
            refused=list(state.pending_refusals),
            loan_changes=list(state.pending_loan_changes),
            case_actions=list(state.pending_case_actions),
        )

    def carry_out(self, state: CollectionState) -> None:
        """Put what is still waiting into ``state``, for the next run."""
        state.pending_payments = list(self.payments)
        state.pending_outcomes = list(self.outcomes)
        state.pending_resolutions = list(self.resolutions)
        state.pending_decisions = list(self.decisions)
        state.pending_hold_changes = list(self.hold_changes)
        state.pending_refusals = list(self.refused)
        state.pending_loan_changes = list(self.loan_changes)
        state.pending_case_actions = list(self.case_actions)

    @staticmethod
    def taken_over(state: CollectionState) -> None:
        """The run holds the carried messages now: the state no longer needs them."""
        state.pending_payments = []
        state.pending_outcomes = []
        state.pending_resolutions = []
        state.pending_decisions = []
        state.pending_hold_changes = []
        state.pending_refusals = []
        state.pending_loan_changes = []
        state.pending_case_actions = []

    def has_mail(self) -> bool:
        """Whether anything waits to be applied: the main loop wakes for it."""
        return bool(
            self.payments
            or self.outcomes
            or self.resolutions
            or self.decisions
            or self.hold_changes
            or self.refused
            or self.loan_changes
            or self.case_actions
            or self.borrower_changed
        )

    def waiting_payment_ids(self) -> set[str]:
        return {p.payment.payment_id for p in self.payments}

    def take_payment(
        self, payment: PaymentReceived, applied: list[str], problem: str | None = None
    ) -> bool:
        """Queue a payment unless its id was applied or is waiting. Returns whether queued."""
        if payment.payment_id in applied or payment.payment_id in self.waiting_payment_ids():
            return False
        self.payments.append(PendingPayment(payment, problem))
        return True

    def first_sight(self, signal_id: str, seen: list[str]) -> bool:
        """Whether a message id is new: neither applied (``seen``) nor waiting here."""
        waiting = {o.outcome_id for o in self.outcomes}
        waiting |= {r.resolution_id for r in self.resolutions}
        waiting |= {d.decision_id for d in self.decisions}
        waiting |= {c.request.request_id for c in self.hold_changes}
        waiting |= {a.action_id for a in self.case_actions}
        if signal_id in waiting or signal_id in seen:
            workflow.logger.info("signal %s already received; ignored", signal_id)
            return False
        return True

    def set_aside(self, reason: str, seen: list[str]) -> str | None:
        """Take the message in hand out of the inbox for good: applying it failed, and applying
        it again would fail again. A payment's update is answered with ``reason``; a retried
        signal of another message is ignored (``seen``). Returns what was set aside."""
        in_hand, self.in_hand = self.in_hand, None
        if in_hand is None:
            return None
        if self.payments and self.payments[0].payment.payment_id == in_hand:
            self.payments.pop(0)
            self.rejections[in_hand] = reason
            return f"payment {in_hand}"
        heads: list[tuple[list[Any], str, str]] = [
            (self.outcomes, self.outcomes[0].outcome_id if self.outcomes else "", "outcome"),
            (self.decisions, self.decisions[0].decision_id if self.decisions else "", "decision"),
            (
                self.resolutions,
                self.resolutions[0].resolution_id if self.resolutions else "",
                "dispute resolution",
            ),
            (
                self.hold_changes,
                self.hold_changes[0].request.request_id if self.hold_changes else "",
                "pause or resume",
            ),
            (
                self.case_actions,
                self.case_actions[0].action_id if self.case_actions else "",
                "case action",
            ),
        ]
        if self.loan_changes and loan_change_id(self.loan_changes[0]) == in_hand:
            self.loan_changes.pop(0)
            return f"loan book version {in_hand.removeprefix('book:v')}"
        for messages, head_id, kind in heads:
            if messages and head_id == in_hand:
                messages.pop(0)
                if in_hand:
                    seen.append(in_hand)
                return f"{kind} {in_hand}".rstrip()
        return None

    def queue_hold_change(self, change: HoldChange, seen: list[str]) -> bool:
        """Queue a pause or resume, unless its request id was seen. Returns whether queued."""
        if change.request.request_id and not self.first_sight(change.request.request_id, seen):
            return False
        self.hold_changes.append(change)
        return True
