"""The ledger's rows as the report reads them, and each loan's collections rebuilt from them.

Everything here is plain data and pure functions: the SQL lives in ``overdue.report.ledger``.
A loan collected again after a cure has one collection per opening (its ``loan_opened`` audit
entries); every figure counts collections, so such a loan counts once per collection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from workflows.vocabulary import Stage

OPEN_STAGES: tuple[str, ...] = tuple(Stage.OPEN)
NEXT_STAGE = {"early": "middle", "middle": "late", "late": "legal"}


@dataclass(frozen=True)
class Period:
    """The half-open period ``[since, until)`` the figures are about (UTC instants)."""

    since: datetime
    until: datetime

    def holds(self, at: datetime) -> bool:
        """Whether the instant falls in the period."""
        return self.since <= at < self.until


@dataclass(frozen=True)
class LoanRow:
    """A loan of the ledger, with what the report splits by and its borrower's zone."""

    loan_id: str
    product: str
    jurisdiction: str
    strategy: str
    strategy_version: str
    currency: str
    due_date: date
    timezone: str
    opened_at: datetime
    closed_at: datetime | None = None


@dataclass(frozen=True)
class EventRow:
    """An audit entry: ``loan_opened``, ``stage_changed``, a situation event or a hold.

    ``to_stage`` is a stage change's ``to``, ``operator`` a hold's operator, and
    ``outstanding_minor`` the balance a ``loan_opened`` entry opened with.
    """

    seq: int
    loan_id: str
    at: datetime
    action: str
    to_stage: str | None = None
    operator: str | None = None
    outstanding_minor: int | None = None


@dataclass(frozen=True)
class PaymentRow:
    """A payment applied to a loan; ``overpaid_minor`` of it went beyond what was owed."""

    loan_id: str
    paid_at: datetime
    amount_minor: int
    overpaid_minor: int = 0


@dataclass(frozen=True)
class AttemptRow:
    """A contact attempt; ``at_local`` is borrower-local, ``YYYY-MM-DD HH:MM ZONE``."""

    loan_id: str
    at_utc: datetime
    at_local: str
    slot: str
    channel: str
    target: str
    outcome: str


@dataclass(frozen=True)
class PromiseRow:
    """A promise to pay; ``settled_at`` is set once it is kept, partially kept or broken."""

    loan_id: str
    status: str
    made_at: datetime
    settled_at: datetime | None = None


@dataclass(frozen=True)
class Ledger:
    """What the report reads from the ledger for one period."""

    loans: list[LoanRow]
    events: list[EventRow] = field(default_factory=list)
    payments: list[PaymentRow] = field(default_factory=list)
    attempts: list[AttemptRow] = field(default_factory=list)
    promises: list[PromiseRow] = field(default_factory=list)

    def only(self, loan_ids: set[str]) -> Ledger:
        """The rows of these loans alone."""
        return Ledger(
            loans=[r for r in self.loans if r.loan_id in loan_ids],
            events=[r for r in self.events if r.loan_id in loan_ids],
            payments=[r for r in self.payments if r.loan_id in loan_ids],
            attempts=[r for r in self.attempts if r.loan_id in loan_ids],
            promises=[r for r in self.promises if r.loan_id in loan_ids],
        )


@dataclass
class Stint:
    """A stretch a collection spent in one open stage; ``end`` is None while it is still there,
    and ``exit_to`` the stage it left for."""

    stage: str
    start: datetime
    end: datetime | None = None
    exit_to: str | None = None


@dataclass
class Collection:
    """One collection of a loan, rebuilt from its audit entries."""

    loan: LoanRow
    opened_at: datetime
    overdue_minor: int | None  # the balance it opened with; None when no entry says
    stints: list[Stint]
    events: list[EventRow] = field(default_factory=list)  # its situation and hold entries
    closed_stage: str | None = None
    closed_at: datetime | None = None
    ends_before: datetime | None = None  # the next collection's opening, if any

    def open_during(self, period: Period) -> bool:
        """Whether the collection was open at some instant of the period."""
        return self.opened_at < period.until and (
            self.closed_at is None or self.closed_at >= period.since
        )

    def open_at(self, at: datetime) -> bool:
        """Whether the collection was open at this instant."""
        return self.opened_at <= at and (self.closed_at is None or self.closed_at > at)

    def stage_at(self, at: datetime) -> str:
        """The open stage it was in at this instant (its last stint begun by then)."""
        begun = [s for s in self.stints if s.start <= at]
        return (begun[-1] if begun else self.stints[0]).stage

    def cured_in(self, period: Period) -> bool:
        """Whether it was cured (paid in full) within the period."""
        return (
            self.closed_stage == Stage.CURED
            and self.closed_at is not None
            and period.holds(self.closed_at)
        )


def collections_of(loan: LoanRow, events: list[EventRow]) -> list[Collection]:
    """Each collection of the loan, from its audit entries in the order they were written.

    Every collection opens in the early stage and moves one stage at a time; a ``loan_opened``
    entry starts the next one. Entries written before any ``loan_opened`` (a ledger older than
    that entry) belong to a collection opened at the loan's ``opened_at``.
    """
    collections: list[Collection] = []
    current: Collection | None = None
    for event in sorted(events, key=lambda e: e.seq):
        if event.action == "loan_opened":
            if current is not None:
                current.ends_before = event.at
            current = Collection(
                loan, event.at, event.outstanding_minor, [Stint(Stage.EARLY, event.at)]
            )
            collections.append(current)
            continue
        if current is None:
            current = Collection(loan, loan.opened_at, None, [Stint(Stage.EARLY, loan.opened_at)])
            collections.append(current)
        if event.action == "stage_changed" and event.to_stage is not None:
            _change_stage(current, event)
        else:
            current.events.append(event)
    if not collections:
        collections.append(
            Collection(loan, loan.opened_at, None, [Stint(Stage.EARLY, loan.opened_at)])
        )
    return collections


def _change_stage(collection: Collection, event: EventRow) -> None:
    last = collection.stints[-1]
    if last.end is None:
        last.end, last.exit_to = event.at, event.to_stage
    if event.to_stage in OPEN_STAGES:
        assert event.to_stage is not None
        collection.stints.append(Stint(event.to_stage, event.at))
    else:
        collection.closed_stage, collection.closed_at = event.to_stage, event.at


def all_collections(ledger: Ledger) -> list[Collection]:
    """Every collection of the ledger's loans, loan by loan."""
    by_loan: dict[str, list[EventRow]] = {}
    for event in ledger.events:
        by_loan.setdefault(event.loan_id, []).append(event)
    return [c for loan in ledger.loans for c in collections_of(loan, by_loan.get(loan.loan_id, []))]
