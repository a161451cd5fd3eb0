"""Messages and state of a loan collection.

Every type here crosses the Temporal boundary (workflow input, signal, query, activity argument or
result), so each is a plain dataclass the default JSON converter can carry. Dates are ISO
strings (``YYYY-MM-DD``) because the converter carries ``datetime`` but not ``date``. Money is
always integer minor units next to an ISO 4217 currency code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from workflows.queue import CaseAction, CaseBook, PersonCase
from workflows.slots import SlotLearning
from workflows.strategy import CrossLoanPolicy, Strategy
from workflows.vocabulary import (
    Channel,
    ComplaintCategory,
    HardshipTerm,
    NextActionKind,
    Outcome,
    Review,
    Situation,
    Stage,
    Target,
)

WORKFLOW_TYPE = "LoanCollection"
TASK_QUEUE = "collections"


def workflow_id_for(loan_id: str) -> str:
    """The workflow id of a loan's collection: the contract others build on.

    Every collection of the loan has it: one that starts after a cure (the loan fell overdue
    again) is a new workflow execution under the same id, and payment services reach it as
    they reached the first.
    """
    return f"collection-{loan_id}"


def collection_key(loan_id: str, number: int) -> str:
    """What the ledger's keys of the loan's ``number``-th collection start with: the loan id
    for the first, ``L-1~2`` for the second (``~`` is never in a loan id)."""
    return loan_id if number == 1 else f"{loan_id}~{number}"


@dataclass
class Promise:
    """A promise to pay ``amount_minor`` by ``due_date`` (ISO date, borrower-local)."""

    amount_minor: int
    due_date: str


@dataclass
class Hardship:
    term: HardshipTerm
    reason: str


@dataclass
class ContactOutcome:
    """Signal ``contact_outcome``: what a conversation revealed. Idempotent by ``outcome_id``.

    Every source reports the same way: a human collector (``overdue outcome``), a dialer, an
    agent desk, or the simulator. ``source`` names it, e.g. ``collector:ann``.
    """

    outcome_id: str
    source: str
    at: datetime
    right_party: bool = True
    situation: Situation | None = None
    promise: Promise | None = None
    complaint: ComplaintCategory | None = None
    dispute: bool = False
    hardship: Hardship | None = None
    death_reported_by: str | None = None
    cease: bool = False
    refusal: bool = False
    note: str | None = None
    # How the conversation was held: "call", "inbound_call", "sms", "email" or "in_person". A
    # right-party conversation by phone counts for every conversation rule, like an answered
    # dialer call, across all the borrower's loans.
    channel: str = "call"
    # The dialer attempt this report is about, when there is one: that conversation is already
    # counted, and the report adds no second one.
    attempt_key: str | None = None


@dataclass
class DisputeResolution:
    """Signal ``dispute_resolved``: the outcome of a dispute of the debt."""

    resolution_id: str
    upheld: bool
    at: datetime
    note: str | None = None


@dataclass
class ReviewDecision:
    """Signal ``review_decided``: a person's decision. Idempotent by ``decision_id``."""

    decision_id: str
    review: Review
    outcome: str  # one of ``Review.OUTCOMES[review]``
    by: str
    at: datetime
    note: str | None = None


@dataclass
class HoldRequest:
    """Signals ``pause`` and ``resume`` (and their updates): an operator steps in on one loan.

    ``request_id`` is optional: pausing a paused loan or resuming a running one changes nothing,
    so a retried request is harmless; with an id, a retry is also recognised and ignored.
    """

    reason: str = ""
    operator: str = "operations"
    request_id: str = ""


@dataclass
class HoldChange:
    """A pause or resume request waiting for the workflow's main loop."""

    pause: bool
    request: HoldRequest


@dataclass
class OperatorHold:
    """A pause an operator put on the collection: no outreach and no escalation until resumed."""

    reason: str
    operator: str
    since: datetime  # collection time


@dataclass
class Contact:
    """A reference the borrower named: a relative, a friend or a workplace."""

    contact_id: str
    name: str
    phone: str
    relation: str


@dataclass
class Borrower:
    borrower_id: str
    name: str
    phone: str
    timezone: str  # IANA zone: every time of day is borrower-local
    # BCP 47 tag of the language the borrower is written to in (``overdue.languages``); "" is
    # the jurisdiction's default, and decodes histories recorded before the field.
    language: str = ""


@dataclass
class Loan:
    loan_id: str
    borrower: Borrower
    product: str
    principal_minor: int
    outstanding_minor: int
    currency: str
    due_date: str  # ISO date of the missed instalment; DPD counts from it
    jurisdiction: str  # contact-rule profile: "cn" or "us"
    contacts: list[Contact] = field(default_factory=list)
    # The whole unpaid balance, due or not, when the loan book gives a schedule; without one,
    # ``outstanding_minor`` is all of it.
    total_outstanding_minor: int | None = None
    # The lender's risk score, when the loan book has one: strategies may be assigned by it.
    risk_score: int | None = None


@dataclass
class PaymentReceived:
    """Signal ``payment_received``: idempotent by ``payment_id``."""

    payment_id: str
    amount_minor: int
    currency: str
    paid_at: datetime
    source: str


@dataclass
class PaymentResult:
    """Update ``apply_payment``'s answer: what became of the payment, and the balance after it."""

    payment_id: str
    applied: bool
    duplicate: bool  # the payment id was applied before; nothing changed
    rejection: str | None  # why the ledger refused it, if it did
    outstanding_minor: int
    currency: str
    stage: Stage


@dataclass
class LoanChanged:
    """Signal ``loan_changed``: the loan as the lender's core system now has it.

    The delinquency scan sends it when the loan book holds a newer ``version`` than the
    collection was last told. The figures are the core's own, net of every payment the core
    received: ``payments`` are those it received since that last version, each applied once
    through the collection's payment path (idempotent by ``payment_id``, whichever source
    reported it first). Idempotent by ``version``: an older or equal one changes nothing.
    """

    version: int
    overdue_minor: int  # unpaid of the instalments past due
    outstanding_minor: int  # unpaid of every instalment, due or not
    oldest_unpaid_due: str | None  # ISO date (borrower-local); None once nothing is unpaid
    payments: list[PaymentReceived] = field(default_factory=list)


@dataclass
class BorrowerChange:
    """Signal ``borrower_changed``: another loan of the borrower used the shared budget in a way
    that may forbid what this loan planned (a conversation, a cease request). The loan asks the
    ledger again at once, instead of at its next contact."""

    reason: str  # "conversation" or "cease_requested"
    by_loan: str
    at: datetime  # collection time


@dataclass
class AttemptRecord:
    """One contact attempt as the contact planner sees it (no PII: ids and number keys only).

    ``number`` is the key of the phone number reached (``budget.number_key``), ``borrower_id``
    the person the attempt was about and ``loan_id`` the loan that made it: the borrower-level
    budget counts attempts by all three. Histories recorded before the budget leave them empty.
    """

    at: datetime  # UTC, collection time
    channel: Channel
    target: Target
    target_id: str
    slot: str
    outcome: Outcome
    number: str = ""
    borrower_id: str = ""
    loan_id: str = ""


@dataclass
class SharedContacts:
    """What the ledger last said of the borrower's other loans, and of their phone numbers.

    ``attempts`` are the other loans' recent attempts (to the borrower, to their numbers, or to
    the same references) and their held reservations (outcome ``reserved``). The lasting facts
    are the borrower's, whichever loan learnt them. Filled from the ``reserve_contact`` activity.
    """

    attempts: list[AttemptRecord] = field(default_factory=list)
    cease_requested: bool = False  # on any loan of the borrower
    borrower_deceased: bool = False  # reported on any loan, and not ruled out since
    objected_numbers: list[str] = field(default_factory=list)  # references who objected
    contacted_numbers: list[str] = field(default_factory=list)  # references already asked


@dataclass
class ContactHistory:
    """What the planner needs to know of past outreach.

    ``attempts`` keeps only the recent past (the longest rule looks back seven days), so the
    history carried across continue-as-new stays small; the lasting facts are kept apart.
    """

    attempts: list[AttemptRecord] = field(default_factory=list)
    tried_slots: list[str] = field(default_factory=list)  # unanswered slots in this rotation
    unanswered_streak: int = 0
    nudges_in_streak: int = 0
    last_conversation_at: datetime | None = None
    contacted_third_parties: list[str] = field(default_factory=list)
    objected_third_parties: list[str] = field(default_factory=list)
    dispute_open: bool = False  # a dispute of the debt stops all collection outreach
    cease_requested: bool = False  # the borrower asked that collection contact stop
    borrower_deceased: bool = False  # reported dead: no contact with the borrower's number
    shared: SharedContacts = field(default_factory=SharedContacts)  # the other loans' budget use
    cross_loan: CrossLoanPolicy = field(default_factory=CrossLoanPolicy)


@dataclass
class ClockAnchor:
    """Maps workflow time to collection time.

    In production a collection day lasts a day (``day_seconds`` is None). A demo compresses time:
    a day lasts ``day_seconds`` real seconds. The anchor is workflow input, so replay is exact.
    """

    real_origin: datetime
    collection_origin: datetime
    day_seconds: float | None = None


@dataclass
class PendingPayment:
    payment: PaymentReceived
    rejection: str | None = None  # why the signal cannot be applied, if it cannot
    # Listed by the loan book: the core's figures count it already (``book``).
    in_book: bool = False


@dataclass
class ActivePromise:
    """The promise the loan is waiting on, and what has been paid towards it."""

    promise_id: str
    amount_minor: int
    due_date: str
    made_at: datetime
    paid_minor: int = 0


@dataclass
class Instalment:
    """One instalment of a plan; a missed instalment is a broken promise."""

    promise_id: str
    due_date: str
    amount_minor: int
    paid_minor: int = 0


@dataclass
class Arrangement:
    """An instalment plan: ``arrangement`` (short-term hardship) or ``forbearance`` (approved
    long-term hardship: reduced instalments, no fees)."""

    kind: str
    instalments: list[Instalment] = field(default_factory=list)


@dataclass
class RefusedMessage:
    """A signal refused whole (malformed, or outside the limits), as ``status`` shows it.

    ``problem`` names the field and what is wrong with it, never the value sent.
    """

    message: str  # the signal's name: ``payment_received``, ``pause``, ...
    problem: str  # ``field: what is wrong``
    at: datetime  # collection time it was audited


@dataclass
class ServedNotice:
    """A notice the collection served, as ``status`` and the Web UI's details show it.

    No text: a letter names the borrower. ``overdue notice show LOAN_ID NOTICE_KEY`` prints it
    from the ledger's copy, checked against ``sha256``.
    """

    notice_key: str  # ``L-1001:legal_notice`` (a later collection: ``L-1001~2:legal_notice``)
    kind: str  # ``legal_notice``, ``refusal_notice``, ``estate_inquiry``, ...
    served_at: datetime  # collection time
    sha256: str  # of the letter's text as stored


@dataclass
class StageEntered:
    """When the collection entered a stage (collection time), for the story the details tell."""

    stage: Stage
    at: datetime


# Refusals ``status`` shows, newest last: enough to see what a source keeps sending wrong.
RECENT_REFUSALS = 10


@dataclass
class CollectionState:
    """Everything the workflow carries across continue-as-new."""

    strategy: Strategy
    clock: ClockAnchor
    # The collection machine's configuration: its stage (or final state) and its situation
    # region's state. The machine reads and writes them itself (``workflows.machine``).
    stage: Stage
    outstanding_minor: int
    history: ContactHistory
    applied_payment_ids: list[str] = field(default_factory=list)
    pending_payments: list[PendingPayment] = field(default_factory=list)
    recovered_minor: int = 0
    attempt_count: int = 0
    # What outreach last revealed: the ``Situation`` label while the machine's situation is
    # normal (``rules.situation_label`` derives the label from the machine otherwise).
    situation: Situation = Situation.NONE
    last_outcome: Outcome | None = None
    stage_entered_at: datetime | None = None
    entered_stages: list[Stage] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    queued_messages: list[str] = field(default_factory=list)
    situation_state: str = "normal"
    promise: ActivePromise | None = None
    promises_made: int = 0
    broken_promises: int = 0
    seen_signal_ids: list[str] = field(default_factory=list)  # outcome and resolution ids
    pending_outcomes: list[ContactOutcome] = field(default_factory=list)
    pending_resolutions: list[DisputeResolution] = field(default_factory=list)
    paused_seconds: float = 0.0  # collection time spent paused (situations, operator holds)
    paused_since: datetime | None = None
    complaint_cases: list[str] = field(default_factory=list)
    arrangement: Arrangement | None = None
    arrangements_made: int = 0
    denials: int = 0  # contacts the planner refused at the planned moment
    reservations: int = 0  # places asked for in the borrower's budget: keys the reservations
    death_reported_at: datetime | None = None
    pending_decisions: list[ReviewDecision] = field(default_factory=list)
    hold: OperatorHold | None = None
    holds: int = 0  # pause and resume changes so far: keys their audit entries
    pending_hold_changes: list[HoldChange] = field(default_factory=list)
    # Messages refused by the limits, to be audited (``reports.audit_refusals``), and how many
    # were: keys their audit entries.
    pending_refusals: list[str] = field(default_factory=list)
    refusals: int = 0
    # The last ``RECENT_REFUSALS`` of them, for ``status``.
    recent_refusals: list[RefusedMessage] = field(default_factory=list)
    # Histories before ``situation-from-machine`` only: a label an outcome reported that the
    # machine's state does not give, shown until the label next changed (``events.report``).
    reported_label: Situation | None = None
    # Letters an outcome called for before the first day past due, served on it (``letters``).
    letters_waiting: list[str] = field(default_factory=list)
    # What the collection added to the amount owed: failed-debit fees (``fees-owed``).
    fees_minor: int = 0
    # The whole unpaid balance, due or not, with fees and net of payments; None in histories
    # from before the loan book (``view`` then shows the amount in collection alone).
    total_outstanding_minor: int | None = None
    # The loan book's version the collection was last told (``book.apply_loan_changes``), and
    # the payments it applied that the core system has not yet counted (id -> amount): they
    # are taken off the core's figures until a version lists them.
    book_version: int = 0
    payments_not_in_book: dict[str, int] = field(default_factory=dict)
    pending_loan_changes: list[LoanChanged] = field(default_factory=list)
    # When the collection opened, in real time: a payment the core received before it is the
    # borrower's history, not a recovery of the collection.
    opened_at: datetime | None = None
    number: int = 1  # the loan's n-th collection (``CollectionInput.number``)
    # What the collection learnt of when the borrower answers (``workflows.slots``); None in
    # histories from before learning slots, which rotate blindly (``patches.LEARNING_SLOTS``).
    slot_learning: SlotLearning | None = None
    # The cases waiting on a person (``workflows.queue``); None in histories from before the
    # work queue (``patches.WORK_QUEUE``), and the operator actions not yet applied.
    cases: CaseBook | None = None
    pending_case_actions: list[CaseAction] = field(default_factory=list)
    # This collection publishes the console attributes (``patches.CONSOLE_ATTRIBUTES``): set by
    # the first run that takes the patch, so later runs ask nothing.
    console: bool = False
    # Stage changes are written by an activity (``patches.STAGE_CHANGES_AS_ACTIVITIES``): set by
    # the first stage change that takes the patch, so later ones and later runs ask nothing.
    stage_changes_as_activities: bool = False
    # Opened on code that took every gate at once (``patches.GATES_AT_OPEN``): no run of this
    # collection asks one of ``patches.AT_OPEN``.
    gates_at_open: bool = False
    # The notices served and the stages entered, with their moments, for the story every run's
    # details tell. (Collections from before kept neither: ``notices`` has the keys alone.)
    served_notices: list[ServedNotice] = field(default_factory=list)
    stages_entered: list[StageEntered] = field(default_factory=list)


@dataclass
class CollectionInput:
    """Workflow input. ``state`` is None on the first run and set on continue-as-new."""

    loan: Loan
    day_seconds: float | None = None
    state: CollectionState | None = None
    # Where a compressed clock starts (real and collection time alike). Loans started with one
    # origin share one collection time; without it, each loan's clock starts at its own start.
    clock_origin: datetime | None = None
    # The loan's n-th collection: 2 and on when it fell overdue again after a cure.
    number: int = 1


@dataclass
class NextAction:
    kind: NextActionKind
    at_utc: datetime | None
    at_local: str | None
    detail: str = ""


@dataclass
class CollectionStatus:
    """Query ``status``: where the loan stands, without PII."""

    loan_id: str
    stage: Stage
    days_past_due: int
    outstanding_minor: int
    recovered_minor: int
    currency: str
    # The machine's situation state (``normal``, ``promised``, ``disputed``, ...); collections
    # from before ``console-attributes`` show the older labels (``none``, ``promise``, ...).
    situation: str
    jurisdiction: str
    timezone: str
    attempt_count: int
    last_outcome: Outcome | None
    next_action: NextAction
    collection_time: datetime
    recent_attempts: list[AttemptRecord]
    applied_payment_ids: list[str]
    notices: list[str]
    broken_promises: int = 0
    promise: ActivePromise | None = None
    complaint_cases: list[str] = field(default_factory=list)
    days_paused: int = 0
    arrangement: Arrangement | None = None
    hold: OperatorHold | None = None
    # ``outstanding_minor`` is the amount in collection (past-due instalments and fees, less
    # payments); these show its fees apart, and the whole balance including what is not due yet.
    fees_minor: int = 0
    total_outstanding_minor: int | None = None
    # The last signals refused whole (malformed, or outside the limits), newest last.
    refusals: list[RefusedMessage] = field(default_factory=list)
    # The cases waiting on a person, oldest first (``workflows.queue``).
    cases: list[PersonCase] = field(default_factory=list)
    # What outreach last revealed in the normal situation (``rules.OUTREACH_LABELS``); None in
    # collections from before ``console-attributes``, whose ``situation`` says it.
    outreach: str | None = None
    # The notices served, with when; ``overdue notice show`` prints their text.
    served_notices: list[ServedNotice] = field(default_factory=list)


@dataclass
class CollectionSummary:
    """The workflow result when the collection ends."""

    loan_id: str
    final_stage: Stage
    resolved_in: Stage  # the open stage the loan was in when it ended
    days_past_due: int
    outstanding_minor: int
    recovered_minor: int
    currency: str
    attempt_count: int
    payments: int
    notices: list[str]
    ended_at: datetime
    broken_promises: int = 0
    # As ``CollectionStatus.situation``: the machine's state, or an older label.
    situation: str = Situation.NONE
    outreach: str | None = None
