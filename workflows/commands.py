"""Arguments and results of the activities the collection workflow calls.

Each activity takes one dataclass, so that fields can be added later without breaking histories.
Every write carries its own idempotency key, which the ledger enforces with a unique constraint.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from workflows.queue import CaseAction, PersonCase
from workflows.strategy import CrossLoanPolicy
from workflows.types import ContactOutcome, Loan, PaymentReceived, SharedContacts
from workflows.vocabulary import Outcome


@dataclass
class SegmentFacts:
    """What a loan's strategy is chosen by (``activities.assignment``): no PII."""

    loan_id: str
    jurisdiction: str
    product: str
    amount_band: str  # ``workflows.money.band_of`` the amount in collection
    risk_score: int | None = None


@dataclass
class LoadStrategy:
    name: str = "default"
    # The loan to choose a strategy for, by segment and split; without one, ``name`` is loaded.
    loan: SegmentFacts | None = None


@dataclass
class LoadSlotPriors:
    """What the slot priors are read for: the jurisdiction's portfolio up to ``as_of``
    (collection time), and the borrower's own earlier calls."""

    jurisdiction: str
    borrower_id: str
    slots: list[str]
    as_of: datetime


@dataclass
class OpenLoan:
    loan: Loan
    opened_at: datetime
    number: int = 1  # the loan's n-th collection: a later one reopens the loan in the ledger
    workflow_id: str = ""
    run_id: str = ""
    strategy: str = "default"  # the strategy's name and version the collection runs by
    strategy_version: str = ""
    strategy_segment: str = ""  # the assignment's segment, and whether it is the champion
    strategy_champion: bool = True


@dataclass
class BudgetTerms:
    """The rules a contact is checked against in the ledger, across the borrower's loans."""

    jurisdiction: str
    timezone: str
    max_calls_per_day: int  # the strategy's, per borrower
    min_gap_minutes: int  # the strategy's, per borrower and number
    cross_loan: CrossLoanPolicy = field(default_factory=CrossLoanPolicy)


@dataclass
class ContactReservation:
    """A place in the borrower's budget for one planned contact; ``reservation_key`` names it.

    ``now`` and every moment are collection time. A held place lapses at ``expires_at``.
    """

    reservation_key: str
    loan_id: str
    borrower_id: str
    channel: str
    target: str
    target_id: str
    number: str  # the key of the number it reaches (workflows.budget.number_key)
    at: datetime
    expires_at: datetime
    now: datetime
    terms: BudgetTerms
    # The loan's own view of the borrower's reachability, which the ledger cannot rebuild: the
    # unanswered calls in a row (``cn`` asks references only of an unreachable borrower).
    unanswered_streak: int = 0
    # Checked just before the contact is made, rather than when it is planned.
    at_contact: bool = False


@dataclass
class ReservationResult:
    """The ledger's answer: the place is held, or the rule that refuses it and until when.

    ``shared`` is what the borrower's other loans use of the budget, for the loan's next plan.
    """

    reservation_key: str
    granted: bool
    shared: SharedContacts
    rule: str | None = None
    not_before: datetime | None = None
    across_loans: bool = False


@dataclass
class SiblingsQuery:
    """Which other loans of a borrower are still being collected."""

    borrower_id: str
    loan_id: str


@dataclass
class ContactRequest:
    """One outreach to carry out; ``idempotency_key`` names it for every retry."""

    idempotency_key: str
    loan_id: str
    borrower_id: str
    attempt_no: int
    channel: str
    target: str
    target_id: str
    slot: str
    purpose: str
    template: str
    stage: str
    at: datetime  # UTC collection time the planner allowed
    at_local: str
    timezone: str
    message: str  # template text from the strategy (en-US); rendered by the activity
    outstanding_minor: int
    currency: str
    # The planner's decision, for the audit log: allowed now, after the denials listed here.
    deferred_by: list[str] = field(default_factory=list)
    # The place held in the borrower's budget; the ledger checks it again before the contact.
    reservation: ContactReservation | None = None
    # Why a borrower call aims at its slot (``workflows.slots.choose``): each slot's draw and
    # rank, for the audit log. Empty for other contacts and in histories before learning slots.
    slot_choice: dict[str, str] = field(default_factory=dict)
    # The template's text in the strategy's other languages, by BCP 47 tag: the activity sends
    # the borrower's. Empty in histories before languages (``message`` is then sent).
    scripts: dict[str, str] = field(default_factory=dict)


@dataclass
class ContactResult:
    """What became of a contact. ``deferred`` is the refusal (``rule until moment``) when the
    borrower's budget no longer had room at the contact moment: nothing was sent."""

    idempotency_key: str
    outcome: Outcome
    deferred: ReservationResult | None = None


PAYMENT_CONFLICT = "PaymentConflict"  # error type: a payment id already recorded otherwise
OUTCOME_CONFLICT = "OutcomeConflict"  # error type: an outcome id recorded for another loan


@dataclass
class PaymentEntry:
    loan_id: str
    payment: PaymentReceived
    outstanding_before: int
    outstanding_after: int
    overpaid_minor: int
    stage: str


@dataclass
class LoanChangeEntry:
    """A change of the loan book, as the collection took it in (the ledger's audit entry and
    the loan's balance and due date). Keyed by loan and version."""

    loan_id: str
    version: int
    at: datetime
    overdue_minor: int  # the core's figure
    outstanding_before: int  # the amount in collection, before and after (with fees, less
    outstanding_after: int  # the payments the book does not list yet)
    due_date: str  # the oldest unpaid instalment past due: DPD counts from it
    payment_ids: list[str] = field(default_factory=list)


@dataclass
class RejectedPayment:
    loan_id: str
    payment: PaymentReceived
    reason: str


@dataclass
class StageChange:
    loan_id: str
    sequence: int  # ordinal of this change in the collection: with ``number``, the key
    from_stage: str
    to_stage: str
    days_past_due: int
    outstanding_minor: int
    at: datetime
    number: int = 1  # the loan's n-th collection


@dataclass
class NoticeRequest:
    notice_key: str
    loan_id: str
    kind: str
    days_past_due: int
    outstanding_minor: int
    currency: str
    issued_at: datetime
    facts: dict[str, str] = field(default_factory=dict)


@dataclass
class NoticeRecord:
    notice_key: str
    path: str
    sha256: str


@dataclass
class OutcomeRecord:
    """A reported contact outcome, to keep in the ledger as reported."""

    loan_id: str
    outcome: ContactOutcome
    stage: str
    conversation: bool = False  # a right-party phone conversation that the budget counts


@dataclass
class ComplaintCase:
    """A complaint opened as a case of its own, routed by category."""

    case_id: str
    loan_id: str
    category: str
    route: str
    opened_at: datetime
    note: str | None = None


@dataclass
class PromiseRecord:
    promise_id: str
    loan_id: str
    amount_minor: int
    currency: str
    due_date: str
    made_at: datetime
    source: str


@dataclass
class PromiseSettlement:
    """How a promise ended: ``kept``, ``broken`` or ``partially_kept`` (broken, part paid)."""

    promise_id: str
    loan_id: str
    status: str
    paid_minor: int
    at: datetime


@dataclass
class BrokenPromise:
    """A broken promise's consequences: a negative credit record and a failed-debit fee."""

    promise_id: str
    loan_id: str
    borrower_id: str
    amount_minor: int
    paid_minor: int
    currency: str
    fee_minor: int
    broken_count: int
    at: datetime
    # The amount in collection once the fee is added to it (collections with the loan book);
    # None where the fee was charged without being owed (older histories).
    outstanding_after: int | None = None


@dataclass
class CreditReport:
    """What the credit bureau adapter answered."""

    record_key: str
    bureau_reference: str


@dataclass
class SituationEvent:
    """A change of situation to keep in the audit log (dispute opened, cease requested, …)."""

    loan_id: str
    event_key: str
    action: str
    at: datetime
    details: dict[str, str] = field(default_factory=dict)


@dataclass
class DeathCheck:
    """Verify a reported death with an institution (a registry); the answer is recorded."""

    check_key: str
    loan_id: str
    borrower_id: str
    reported_by: str
    reported_at: datetime


class DeathCheckResult:
    VERIFIED = "verified"
    NOT_VERIFIED = "not_verified"
    NO_RECORD = "no_record"  # nothing yet: verification waits, then a person decides


@dataclass
class ScanPage:
    """The activity's argument: one page of the book, after ``after_loan_id``."""

    as_of: datetime
    after_loan_id: str
    page_size: int


@dataclass
class ScanPageResult:
    """What one page held and what became of it; ``last_loan_id`` is empty past the end."""

    last_loan_id: str
    examined: int
    delinquent: int
    started: int
    already_running: int
    already_ended: int
    signalled: int = 0  # running collections told of a newer version of their loan
    started_again: int = 0  # collections started for loans overdue again after a cure


@dataclass
class CaseChange:
    """A case opened, assigned, escalated, resolved or closed (``activities.cases``).

    ``case`` is the case as it stands after the change; the change is audited once, keyed by
    ``change_key``, and the ledger's row takes the case's values (a retry writes them again).
    """

    change_key: str
    loan_id: str
    action: str  # case_opened, case_assigned, case_escalated, case_resolved, case_closed
    at: datetime
    case: PersonCase
    operator: str = "workflow"
    outcome: str | None = None  # how it ended: a complaint's outcome, or what ended the wait
    note: str = ""

    @classmethod
    def of(
        cls,
        action: str,
        case: PersonCase,
        loan_id: str,
        at: datetime,
        *,
        operator: str = "workflow",
        outcome: str | None = None,
        note: str = "",
        key: str = "",
    ) -> CaseChange:
        """The change ``action`` makes to ``case``, keyed ``<case>:<action>[:<key>]``."""
        change_key = f"{case.case_id}:{action.removeprefix('case_')}" + (f":{key}" if key else "")
        # A copy: the loan's case changes on; the change is what it was then.
        return cls(change_key, loan_id, action, at, replace(case), operator, outcome, note)

    @classmethod
    def taken(cls, action: CaseAction, case: PersonCase, loan_id: str, at: datetime) -> CaseChange:
        """An operator's action on ``case``: assigned (``case`` takes the assignee) or resolved.
        The loan's collection and, after it has closed, the ledger write the same change."""
        if action.assign_to:
            case.assignee = action.assign_to
            return cls.of(
                "case_assigned", case, loan_id, at, operator=action.operator, key=action.action_id
            )
        return cls.of(
            "case_resolved",
            case,
            loan_id,
            at,
            operator=action.operator,
            outcome=action.resolve_with,
            note=action.note,
        )
