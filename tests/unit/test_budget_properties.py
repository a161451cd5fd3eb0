"""Property tests of the borrower-level contact budget, over portfolios of loans.

Every limit the law or the strategy sets per person or per phone number must hold across all of
a borrower's loans, and across borrowers who share a number (docs/decisions.md, "Borrower-level
contact budget"). Here 1-3 borrowers with 1-4 loans each (a borrower may share the first one's
household number; a borrower's loans may name the same reference, its number written
differently) run an in-memory copy of the protocol, in both profiles, with the real pure rules
(``workflows.planner``, ``workflows.budget``):

- the ledger (``Ledger``) holds the recorded attempts, the reported conversations, the cease
  requests and one held place per loan, with its expiry. It builds the history a place is
  checked against as ``activities/budget.py`` does (``budget_history``, ``shared_facts``): the
  loan's own attempts and reported conversations in ``attempts``; the other loans' (of the
  borrower, or on the same number) and their unexpired held places (outcome ``reserved``) in
  ``shared.attempts``; a cease on any loan, and the references asked or objecting, by number;
- each loan (``LoanRun``) keeps its own ``ContactHistory`` as ``LoanCollection`` does and plans
  with it and with the ledger's last snapshot of the others (``_plan``, ``_plan_within_budget``:
  keep the planned moment or plan, reserve, and on a refusal plan again from the moment the rule
  lifts, at most three times; a cease learnt from the ledger is taken, ``_ceased_across_loans``);
- steps drawn by hypothesis interleave the loans: a loan plans and reserves (one step: one
  transaction under the budget's locks); time passes; a timer fires, on time or late; the loan
  checks its own history (``_reach_out``), the ledger checks the place again and holds it at
  that moment (the channel activity's ``confirm``), and the contact is made: it is recorded,
  with a drawn outcome, only when it ends (within the grace), and other loans may act meanwhile;
  a right-party phone conversation is reported (``_count_conversation``); a cease request
  arrives on one loan; a loan forgets its plan (a worker crashed, the loan was cured), so its
  place lapses only at its expiry. A conversation or a cease makes the borrower's other loans
  ask the ledger again at once for the plan they hold (``_tell_siblings``), in runs with that
  patch.

The shipped strategy, a lax one under which the law's own caps bind, and a brisk one whose gap
is shorter than a held place's grace (so a contact can be confirmed while another to the same
person is still being made) are all tried.

What was made is then re-counted here, simply, from the driver's own log (by the phone numbers
as the fixtures wrote them, not by ``number_key``), in the order things happened: a contact
happens when it is confirmed. A cap holds when, for every contact made, fewer than the cap had
been counted before it.

A reference being asked on another loan (its call's place held, the call not yet recorded) counts
as asked for the reference rules: the last test pins that case.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activities.budget import LOOK_BACK
from workflows import budget, planner, profiles, rotation
from workflows.strategy import CrossLoanPolicy, Slot, Strategy
from workflows.types import AttemptRecord, ContactHistory, SharedContacts
from workflows.vocabulary import Channel, Outcome, Target

from .support import default_strategy

STRATEGY = default_strategy()
# The strategy may only be stricter than the law. With the default one (3 calls a day, 90
# minutes apart) cn's 6 unanswered calls a day per number bind only on a number three borrowers
# share; a lax copy (hourly slots, 10 calls a day, 20 minutes apart) lets the law's caps bite.
LAX_STRATEGY = default_strategy()
LAX_STRATEGY.name = "lax"
LAX_STRATEGY.max_calls_per_day = 10
LAX_STRATEGY.min_gap_minutes = 20
LAX_STRATEGY.slots = [Slot(f"h{hour:02d}", hour * 60, (hour + 1) * 60) for hour in range(24)]
# A gap shorter than a held place's grace (15 minutes): another contact to the same person may
# be confirmed while one is still being made, and only its held place (counted as the worst it
# can turn into) keeps the caps.
BRISK_STRATEGY = default_strategy()
BRISK_STRATEGY.name = "brisk"
BRISK_STRATEGY.max_calls_per_day = 10
BRISK_STRATEGY.min_gap_minutes = 5
BRISK_STRATEGY.slots = LAX_STRATEGY.slots
MAX_PLANS_PER_WAKE = 3  # workflows.loan_collection.MAX_PLANS_PER_WAKE

# The law, written out again here rather than read from ``profiles.PROFILES``.
WINDOW = {"cn": (time(8, 0), time(22, 0)), "us": (time(8, 0), time(21, 0))}
CN_UNANSWERED_PER_NUMBER_PER_DAY = 6
CN_CONVERSATIONS_PER_DAY = 3
US_CALLS_PER_WEEK = 7
WEEK = timedelta(days=7)

POLICY_ON = CrossLoanPolicy()
POLICY_OFF = CrossLoanPolicy(quiet_period=False, cease=False, weekly_calls=False)

ZONES = ("Asia/Shanghai", "America/New_York", "America/Los_Angeles", "Pacific/Auckland")

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- the portfolio ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """A borrower: ``digits`` is their phone number as a person would compare it."""

    borrower_id: str
    digits: str
    phone: str  # as intake wrote it
    zone: str
    answers: bool = True  # False: never picks up (so the caps on unanswered calls bite)


@dataclass(frozen=True)
class Reference:
    contact_id: str
    digits: str
    phone: str


# Each borrower, with the references each of their loans names.
Portfolio = list[tuple[Person, list[list[Reference]]]]
# kind, which loan, intent kind, which reference or outcome, minutes to let pass
Step = tuple[str, int, str, int, int]


@dataclass(frozen=True)
class Intent:
    channel: str
    target: str
    target_id: str
    digits: str
    phone: str


@dataclass
class Planned:
    """The loan's next contact (the workflow's ``_next``)."""

    intent: Intent
    at: datetime


@dataclass
class Dialing:
    """A contact the channel activity confirmed and is making: recorded when it ends."""

    seq: int  # when it happened, in the order of everything else
    record: AttemptRecord
    digits: str


@dataclass
class LoanRun:
    """One loan's collection, as far as outreach goes."""

    loan_id: str
    person: Person
    references: list[Reference]
    history: ContactHistory
    planned: Planned | None = None
    dialing: Dialing | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.person.zone)

    def intent(self, kind: str, choice: int) -> Intent:
        if kind == "reference":
            ref = self.references[choice % len(self.references)]
            return Intent(Channel.CALL, Target.CONTACT, ref.contact_id, ref.digits, ref.phone)
        channel = Channel.CALL if kind == "call" else Channel.SMS
        b = self.person
        return Intent(channel, Target.BORROWER, b.borrower_id, b.digits, b.phone)


def _phone(digits: str, written: int) -> str:
    """One number, written in one of the ways intake may have kept it."""
    if written == 0:
        return f"+{digits}"
    return f"+{digits[:2]} {digits[2:5]}-{digits[5:9]} {digits[9:]}"


@st.composite
def portfolios(draw: st.DrawFn, max_borrowers: int = 3, min_loans: int = 1) -> Portfolio:
    """1-3 borrowers (a later one may share the first one's household number, and so its zone),
    each with 1-4 loans naming 1-2 references from the borrower's three (shared by number)."""
    people: list[Person] = []
    for i in range(draw(st.integers(1, max_borrowers))):
        written, answers = draw(st.integers(0, 1)), draw(st.booleans())
        if len(people) > 0 and draw(st.booleans()):
            first = people[0]
            phone = _phone(first.digits, written)
            people.append(Person(f"B{i}", first.digits, phone, first.zone, answers))
        else:
            digits = f"1555010{i:04d}"
            zone = draw(st.sampled_from(ZONES))
            people.append(Person(f"B{i}", digits, _phone(digits, written), zone, answers))
    portfolio = []
    for i, person in enumerate(people):
        loans = []
        for j in range(draw(st.integers(min_loans, 4))):
            picks = draw(st.lists(st.integers(0, 2), min_size=1, max_size=2, unique=True))
            refs = []
            for k, pick in enumerate(picks):
                digits = f"86139{i}{pick}000000"
                refs.append(
                    Reference(f"L{i}{j}-ref{k}", digits, _phone(digits, draw(st.integers(0, 1))))
                )
            loans.append(refs)
        portfolio.append((person, loans))
    return portfolio


# --- the steps -------------------------------------------------------------------------------

# "wake": the loan's timer fires and it makes its planned contact, or it has none and plans one.
# "next": the earliest timer of all fires (time runs on to it), so close contacts overlap.
# "late": the same, some minutes late (a busy worker, a worker back from a restart).
# "all": every loan without a planned contact plans one, as all loans do at a day boundary.
# "plan": the loan plans a contact anew (another intent), which releases its held place.
STEP_KINDS = (
    ["wake"] * 24
    + ["next"] * 8
    + ["late"] * 2
    + ["all"] * 4
    + ["plan"] * 6
    + ["advance"] * 10
    + ["report"] * 3
    + ["lapse"] * 3
    + ["cease"]
)
INTENT_KINDS = ["call"] * 4 + ["sms"] + ["reference"] * 2
MINUTES = st.one_of(
    st.integers(1, 180), st.integers(180, 24 * 60), st.integers(24 * 60, 8 * 24 * 60)
)


def steps_of(
    kinds: list[str], intents: list[str], minutes: st.SearchStrategy[int]
) -> st.SearchStrategy[list[Step]]:
    return st.lists(
        st.tuples(
            st.sampled_from(kinds),
            st.integers(0, 11),  # which loan
            st.sampled_from(intents),
            st.integers(0, 5),  # which reference; which outcome
            minutes,
        ),
        min_size=40,
        max_size=60,
    )


STEPS = steps_of(STEP_KINDS, INTENT_KINDS, MINUTES)
# Contacts close together: the loans plan at once and their timers fire in turn, minutes apart,
# so that one loan's contact is confirmed while another's is still being made.
CLOSE_STEP_KINDS = (
    ["all"] * 3 + ["next"] * 4 + ["late"] * 4 + ["wake"] * 2 + ["advance"] * 2 + ["report"]
)
CLOSE_INTENT_KINDS = ["call"] * 3 + ["reference"]
STARTS = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 20), timezones=st.just(UTC)
)
SEEDS = st.integers(0, 2**32 - 1)
STRATEGIES = st.sampled_from([STRATEGY, LAX_STRATEGY, BRISK_STRATEGY])


@dataclass(frozen=True)
class Scenario:
    strategy: Strategy
    portfolio: Portfolio
    steps: list[Step]
    start: datetime
    seed: int  # the planner's randomness (``workflow.random()``)
    siblings_told: bool  # runs with the patch tell-siblings, or recorded before it


SCENARIOS = st.builds(
    Scenario,
    strategy=STRATEGIES,
    portfolio=portfolios(),
    steps=STEPS,
    start=STARTS,
    seed=SEEDS,
    siblings_told=st.booleans(),
)
CLOSE_SCENARIOS = st.builds(
    Scenario,
    strategy=st.just(BRISK_STRATEGY),
    portfolio=portfolios(max_borrowers=2, min_loans=2),
    steps=steps_of(CLOSE_STEP_KINDS, CLOSE_INTENT_KINDS, st.integers(1, 30)),
    start=STARTS,
    seed=SEEDS,
    siblings_told=st.booleans(),
)

BORROWER_CALL_OUTCOMES = [
    Outcome.NO_ANSWER,
    Outcome.BUSY,
    Outcome.ANSWERED,
    Outcome.ANSWERED,
    Outcome.WRONG_PARTY,
]
UNANSWERED_OUTCOMES = [Outcome.NO_ANSWER, Outcome.BUSY]
REFERENCE_OUTCOMES = [Outcome.RELAYED, Outcome.OBJECTED]


# --- the ledger ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Logged:
    """Something the ledger recorded: an attempt of ours or a reported conversation.

    ``digits`` is the number reached as the fixture wrote it; ``seq`` the order it happened in
    (an attempt happens when it is confirmed, and is recorded when it ends).
    """

    seq: int
    kind: str  # "attempt" or "report"
    record: AttemptRecord
    digits: str
    zone: str


@dataclass
class Reservation:
    record: AttemptRecord  # outcome ``budget.RESERVED``
    expires_at: datetime


@dataclass
class Ledger:
    policy: CrossLoanPolicy
    log: list[Logged] = field(default_factory=list)
    ceased: dict[str, int] = field(default_factory=dict)  # loan -> seq of its cease request
    requested: dict[str, int] = field(default_factory=dict)  # cease requests the borrower made
    reservations: dict[str, Reservation] = field(default_factory=dict)  # held, by loan
    borrower_of: dict[str, str] = field(default_factory=dict)  # loan -> borrower
    seq: int = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def view(self, loan: LoanRun, number: str, now: datetime) -> ContactHistory:
        """The history ``activities.budget.budget_history`` builds for a request of ``loan`` to
        reach ``number`` at collection time ``now``."""
        borrower_id = loan.person.borrower_id
        since = now - LOOK_BACK
        rows: list[AttemptRecord] = []
        for logged in self.log:
            a = logged.record
            if logged.kind == "attempt":
                related = (
                    a.borrower_id == borrower_id or a.number == number or a.loan_id == loan.loan_id
                )
                if related and a.at > since:
                    rows.append(a)
            elif a.borrower_id == borrower_id and a.at > since:
                # contact_outcomes: no number, slot "reported", the loan's borrower.
                rows.append(
                    AttemptRecord(
                        a.at,
                        Channel.CALL,
                        Target.BORROWER,
                        a.borrower_id,
                        "reported",
                        Outcome.ANSWERED,
                        "",
                        a.borrower_id,
                        a.loan_id,
                    )
                )
        for loan_id, held in self.reservations.items():
            r = held.record
            if (
                (r.borrower_id == borrower_id or r.number == number)
                and loan_id != loan.loan_id
                and held.expires_at > now
            ):
                rows.append(r)
        own = [a for a in rows if a.loan_id == loan.loan_id]
        others = [a for a in rows if a.loan_id != loan.loan_id]
        references = [
            (logged.record.number, logged.record.outcome == Outcome.OBJECTED)
            for logged in self.log
            if logged.kind == "attempt"
            and logged.record.target == Target.CONTACT
            and (
                logged.record.borrower_id == borrower_id
                or (logged.record.number == number and logged.record.outcome == Outcome.OBJECTED)
            )
        ]
        shared = SharedContacts(
            attempts=sorted(others, key=lambda a: a.at),
            cease_requested=any(self.borrower_of[lid] == borrower_id for lid in self.ceased),
            borrower_deceased=False,
            objected_numbers=sorted({n for n, objected in references if objected}),
            contacted_numbers=sorted({n for n, _ in references}),
        )
        history = ContactHistory(
            attempts=own,
            shared=shared,
            cross_loan=self.policy,
            unanswered_streak=loan.history.unanswered_streak,
        )
        history.contacted_third_parties = [
            a.target_id for a in own if a.target == Target.CONTACT and a.channel == Channel.CALL
        ]
        return history


# --- the driver ------------------------------------------------------------------------------


@dataclass
class Run:
    profile: profiles.JurisdictionProfile
    strategy: Strategy
    ledger: Ledger
    loans: list[LoanRun]
    now: datetime
    rng: random.Random
    siblings_told: bool = True  # the patch tell-siblings

    @property
    def slot_names(self) -> list[str]:
        return [s.name for s in self.strategy.slots]

    def proposal(
        self, loan: LoanRun, intent: Intent, at: datetime, *, at_contact: bool = False
    ) -> planner.Proposal:
        """The contact as the planner sees it: planned ahead, or checked as it is made."""
        return planner.Proposal(
            at,
            intent.channel,
            intent.target,
            intent.target_id,
            budget.number_key(intent.phone),
            loan.person.borrower_id,
            at_contact=at_contact,
        )

    def schedule(
        self, loan: LoanRun, intent: Intent, earliest: datetime
    ) -> planner.PlannedContact | None:
        """``LoanCollection._schedule``."""
        if intent.channel == Channel.CALL and intent.target == Target.BORROWER:
            return planner.plan_borrower_call(
                self.profile,
                self.strategy,
                loan.history,
                intent.target_id,
                earliest,
                loan.zone,
                self.rng,
                number=budget.number_key(intent.phone),
            )
        return planner.plan_message(
            self.profile,
            self.strategy,
            loan.history,
            self.proposal(loan, intent, earliest),
            loan.zone,
            self.rng,
        )

    def plan(self, loan: LoanRun, intent: Intent) -> None:
        """``_plan`` and ``_plan_within_budget``: keep the planned moment of the same intent while
        the ledger still has room for it, or plan; reserve in the ledger; on a refusal, plan again
        from the moment the rule lifts, at most three times."""
        if loan.history.cease_requested:
            loan.planned = None  # the machine holds outreach: no intent at all
            return
        kept = loan.planned if loan.planned is not None and loan.planned.intent == intent else None
        loan.planned = None
        if self.ceased_across_loans(loan):
            return
        earliest = self.now
        for _ in range(MAX_PLANS_PER_WAKE):
            if kept is not None and kept.at > self.now:
                at, kept = kept.at, None
            else:
                fresh = self.schedule(loan, intent, earliest)
                if fresh is None:
                    return
                at = fresh.at
            proposal = self.proposal(loan, intent, at)
            # reserve_contact, one transaction: a new place releases the loan's old one.
            self.ledger.reservations.pop(loan.loan_id, None)
            view = self.ledger.view(loan, proposal.number, self.now)
            decision = planner.check(self.profile, view, proposal, loan.zone, self.strategy)
            loan.history.shared = view.shared
            if decision.allowed:
                self.ledger.reservations[loan.loan_id] = Reservation(
                    AttemptRecord(
                        at,
                        intent.channel,
                        intent.target,
                        intent.target_id,
                        budget.RESERVED,
                        budget.RESERVED,
                        proposal.number,
                        loan.person.borrower_id,
                        loan.loan_id,
                    ),
                    budget.reservation_lapses(at, None),
                )
                loan.planned = Planned(intent, at)
                return
            if self.ceased_across_loans(loan) or decision.not_before is None:
                return
            earliest = max(earliest, decision.not_before)

    def ceased_across_loans(self, loan: LoanRun) -> bool:
        """``_ceased_across_loans``: a cease request on another loan, learnt from the ledger,
        covers this one (policy on): it takes the ceased situation, on the record."""
        history = loan.history
        if history.cease_requested or not (
            history.cross_loan.cease and history.shared.cease_requested
        ):
            return False
        history.cease_requested = True
        self.ledger.ceased.setdefault(loan.loan_id, self.ledger.next_seq())
        return True

    def tell_siblings(self, loan: LoanRun) -> None:
        """``_tell_siblings`` (when the run has the patch): the borrower's other loans ask the
        ledger again at once, each for the plan it holds."""
        if not self.siblings_told:
            return
        for other in self.loans:
            same_borrower = other.person.borrower_id == loan.person.borrower_id
            if other is not loan and same_borrower and other.dialing is None and other.planned:
                self.plan(other, other.planned.intent)

    def advance(self, to: datetime) -> None:
        """Time passes. A contact being made ends within its grace: its place counts for the
        other loans until the attempt is recorded."""
        for loan in self.loans:
            held = self.ledger.reservations.get(loan.loan_id)
            if loan.dialing is not None and held is not None and held.expires_at <= to:
                self.finish(loan)
        self.now = max(self.now, to)

    def perform(self, loan: LoanRun, outcome_choice: int) -> None:
        """The loan's timer fires (``_reach_out``), and the channel activity confirms the place
        in the ledger (``confirm``: checked again now, held at this moment) and dials. The
        attempt is recorded, with a drawn outcome, when the contact ends (``finish``): other
        loans may act meanwhile, and see the place held."""
        planned = loan.planned
        if planned is None:
            return
        self.advance(planned.at)
        loan.planned = None
        intent = planned.intent
        proposal = self.proposal(loan, intent, self.now, at_contact=True)
        if not planner.check(
            self.profile, loan.history, proposal, loan.zone, self.strategy
        ).allowed:
            return  # audited as contact_denied; the held place lapses by itself
        view = self.ledger.view(loan, proposal.number, self.now)
        if not planner.check(self.profile, view, proposal, loan.zone, self.strategy).allowed:
            self.ledger.reservations.pop(loan.loan_id, None)  # hold() releases it
            loan.history.shared = view.shared  # the deferred answer's snapshot
            return
        if intent.channel == Channel.SMS:
            outcome = Outcome.DELIVERED
        elif intent.target == Target.CONTACT:
            outcome = REFERENCE_OUTCOMES[outcome_choice % len(REFERENCE_OUTCOMES)]
        else:
            outcomes = BORROWER_CALL_OUTCOMES if loan.person.answers else UNANSWERED_OUTCOMES
            outcome = outcomes[outcome_choice % len(outcomes)]
        record = AttemptRecord(
            self.now,
            intent.channel,
            intent.target,
            intent.target_id,
            rotation.slot_of(self.now, self.strategy, loan.zone),
            outcome,
            number=proposal.number,
            borrower_id=loan.person.borrower_id,
            loan_id=loan.loan_id,
        )
        self.ledger.reservations[loan.loan_id] = Reservation(
            replace(record, slot=budget.RESERVED, outcome=budget.RESERVED),
            budget.reservation_lapses(self.now, None),
        )
        seq = self.ledger.next_seq()
        loan.dialing = Dialing(seq, record, intent.digits)

    def finish(self, loan: LoanRun) -> None:
        """The contact ends: the attempt is recorded and its place marked used, in one
        transaction; the workflow folds the outcome into the loan's history."""
        dialing = loan.dialing
        if dialing is None:
            return
        loan.dialing = None
        self.ledger.reservations.pop(loan.loan_id, None)
        self.ledger.log.append(
            Logged(dialing.seq, "attempt", dialing.record, dialing.digits, loan.person.zone)
        )
        rotation.record_attempt(loan.history, dialing.record, self.slot_names)
        if budget.is_conversation(dialing.record):
            self.tell_siblings(loan)

    def report(self, loan: LoanRun) -> None:
        """A right-party phone conversation reported for the loan (``_count_conversation``)."""
        person = loan.person
        record = AttemptRecord(
            self.now,
            Channel.CALL,
            Target.BORROWER,
            person.borrower_id,
            rotation.slot_of(self.now, self.strategy, loan.zone),
            Outcome.ANSWERED,
            number=budget.number_key(person.phone),
            borrower_id=person.borrower_id,
            loan_id=loan.loan_id,
        )
        self.ledger.log.append(
            Logged(self.ledger.next_seq(), "report", record, person.digits, person.zone)
        )
        rotation.record_attempt(loan.history, record, self.slot_names)
        loan.planned = None  # plan again; the held place stays until then, or lapses
        self.tell_siblings(loan)

    def cease(self, loan: LoanRun) -> None:
        seq = self.ledger.next_seq()
        loan.history.cease_requested = True
        loan.planned = None
        self.ledger.ceased.setdefault(loan.loan_id, seq)
        self.ledger.requested.setdefault(loan.loan_id, seq)
        self.tell_siblings(loan)


def simulate(profile_code: str, policy: CrossLoanPolicy, scenario: Scenario) -> Run:
    ledger = Ledger(policy)
    loans = []
    for person, loan_refs in scenario.portfolio:
        for j, refs in enumerate(loan_refs):
            loan_id = f"L{person.borrower_id[1:]}{j}"
            ledger.borrower_of[loan_id] = person.borrower_id
            loans.append(LoanRun(loan_id, person, refs, ContactHistory(cross_loan=policy)))
    profile = profiles.profile_for(profile_code)
    rng = random.Random(scenario.seed)
    run = Run(profile, scenario.strategy, ledger, loans, scenario.start, rng)
    run.siblings_told = scenario.siblings_told
    for kind, which, intent_kind, choice, minutes in scenario.steps:
        loan = loans[which % len(loans)]
        if kind == "all":
            for other in loans:
                if other.planned is None and other.dialing is None:
                    run.plan(other, other.intent(intent_kind, choice))
            continue
        if kind in ("next", "late"):
            waiting = [(loan.planned.at, i) for i, loan in enumerate(loans) if loan.planned]
            if waiting:
                at, first = min(waiting)
                if kind == "late":
                    run.advance(at + timedelta(minutes=minutes))
                run.perform(loans[first], choice)
            continue
        if kind == "advance":
            run.advance(run.now + timedelta(minutes=minutes))
            continue
        if loan.dialing is not None:
            # The workflow waits for its contact to end before anything else.
            run.finish(loan)
            if kind == "wake":
                continue
        if kind == "wake" and loan.planned is not None:
            run.perform(loan, choice)
        elif kind in ("wake", "plan"):
            run.plan(loan, loan.intent(intent_kind, choice))
        elif kind == "report":
            run.report(loan)
        elif kind == "lapse":
            loan.planned = None  # a crashed worker or a cured loan: the place lapses
        elif kind == "cease":
            run.cease(loan)
    for loan in loans:
        run.finish(loan)
    return run


# --- independent re-counting -----------------------------------------------------------------


def _day(logged: Logged) -> date:
    return logged.record.at.astimezone(ZoneInfo(logged.zone)).date()


def _attempts(run: Run) -> list[Logged]:
    return [x for x in run.ledger.log if x.kind == "attempt"]


def _is_borrower_call(x: Logged) -> bool:
    return x.record.channel == Channel.CALL and x.record.target == Target.BORROWER


def _is_conversation(x: Logged) -> bool:
    """An answered call of ours to the borrower, or a reported phone conversation."""
    return x.kind == "report" or (_is_borrower_call(x) and x.record.outcome == Outcome.ANSWERED)


def _before(run: Run, x: Logged) -> list[Logged]:
    return [y for y in run.ledger.log if y.seq < x.seq]


def _describe(x: Logged) -> str:
    r = x.record
    local = r.at.astimezone(ZoneInfo(x.zone)).isoformat()
    return f"{r.loan_id} {r.channel} {r.target} {r.target_id} at {local} ({r.outcome})"


def check_window(run: Run) -> None:
    start, end = WINDOW[run.profile.code]
    for x in _attempts(run):
        local = x.record.at.astimezone(ZoneInfo(x.zone)).time()
        assert start <= local < end, f"outside the window: {_describe(x)}"


def check_number_cap(run: Run) -> None:
    """cn: once a number has 6 unanswered calls on a local day, no more calls to it that day,
    whoever's loan makes them."""
    if run.profile.code != "cn":
        return
    for x in _attempts(run):
        if x.record.channel != Channel.CALL:
            continue
        unanswered = [
            y
            for y in _before(run, x)
            if y.kind == "attempt"
            and y.record.channel == Channel.CALL
            and y.digits == x.digits
            and _day(y) == _day(x)
            and y.record.outcome in (Outcome.NO_ANSWER, Outcome.BUSY)
        ]
        assert len(unanswered) < CN_UNANSWERED_PER_NUMBER_PER_DAY, (
            f"cn: {len(unanswered)} unanswered calls to the number that day before {_describe(x)}"
        )


def check_conversations_a_day(run: Run) -> None:
    """cn: once a borrower had 3 conversations on a local day, over all their loans (answered
    calls and reported phone conversations), no more calls to them that day."""
    if run.profile.code != "cn":
        return
    for x in _attempts(run):
        if not _is_borrower_call(x):
            continue
        conversations = [
            y
            for y in _before(run, x)
            if _is_conversation(y)
            and y.record.borrower_id == x.record.borrower_id
            and _day(y) == _day(x)
        ]
        assert len(conversations) < CN_CONVERSATIONS_PER_DAY, (
            f"cn: {len(conversations)} conversations that day before {_describe(x)}"
        )


def check_daily_calls(run: Run) -> None:
    """Strategy: at most ``max_calls_per_day`` calls to a borrower a local day, over all loans."""
    for x in _attempts(run):
        if not _is_borrower_call(x):
            continue
        calls = [
            y
            for y in _before(run, x)
            if y.kind == "attempt"
            and _is_borrower_call(y)
            and y.record.borrower_id == x.record.borrower_id
            and _day(y) == _day(x)
        ]
        assert len(calls) < run.strategy.max_calls_per_day, (
            f"strategy: {len(calls)} calls to the borrower that day before {_describe(x)}"
        )


def check_gap(run: Run) -> None:
    """Strategy: no two attempts about one borrower, or to one number, closer than the gap."""
    attempts = _attempts(run)
    gap = timedelta(minutes=run.strategy.min_gap_minutes)
    for i, x in enumerate(attempts):
        for y in attempts[i + 1 :]:
            related = x.record.borrower_id == y.record.borrower_id or x.digits == y.digits
            if related:
                assert abs(y.record.at - x.record.at) >= gap, (
                    f"gap: {_describe(x)} and {_describe(y)}"
                )


def check_quiet_period(run: Run, scope: Callable[[AttemptRecord], str]) -> None:
    """us: no call to the borrower within 7 days after a conversation (in ``scope``: all the
    borrower's loans, or the loan alone)."""
    if run.profile.code != "us":
        return
    for x in _attempts(run):
        if not _is_borrower_call(x):
            continue
        for y in _before(run, x):
            if _is_conversation(y) and scope(y.record) == scope(x.record):
                assert x.record.at >= y.record.at + WEEK, (
                    f"us: {_describe(x)} within 7 days of the conversation {_describe(y)}"
                )


def check_weekly_calls(run: Run, scope: Callable[[AttemptRecord], str]) -> None:
    """us: at most 7 calls to the borrower in any 7 consecutive days (in ``scope``)."""
    if run.profile.code != "us":
        return
    for x in _attempts(run):
        if not _is_borrower_call(x):
            continue
        week = [
            y
            for y in _before(run, x)
            if y.kind == "attempt"
            and _is_borrower_call(y)
            and scope(y.record) == scope(x.record)
            and y.record.at > x.record.at - WEEK
        ]
        assert len(week) < US_CALLS_PER_WEEK, (
            f"us: {len(week)} calls in the 7 days before {_describe(x)}"
        )


def check_references(run: Run) -> None:
    """A reference (by number) who objected is never called again, and no reference is asked
    twice, over all the borrower's loans (both profiles ask a reference once)."""
    for x in _attempts(run):
        if x.record.target != Target.CONTACT:
            continue
        earlier = [
            y
            for y in _before(run, x)
            if y.kind == "attempt"
            and y.record.target == Target.CONTACT
            and y.digits == x.digits
            and y.record.borrower_id == x.record.borrower_id
        ]
        assert not [y for y in earlier if y.record.outcome == Outcome.OBJECTED], (
            f"reference called after objecting: {_describe(x)}"
        )
        assert not earlier, f"reference asked twice: {_describe(x)} after {_describe(earlier[0])}"


def check_cease(run: Run, scope: Callable[[str], str]) -> None:
    """No call or SMS after a cease request (in ``scope``: any loan of the borrower, or the loan
    itself)."""
    ledger = run.ledger
    for x in _attempts(run):
        for loan_id, seq in ledger.requested.items():
            if seq < x.seq:
                assert scope(loan_id) != scope(x.record.loan_id), (
                    f"{_describe(x)} after a cease request on {loan_id}"
                )


def _by_borrower(record: AttemptRecord) -> str:
    return record.borrower_id


def _by_loan(record: AttemptRecord) -> str:
    return record.loan_id


# --- the properties --------------------------------------------------------------------------


def check_every_budget(run: Run, *, across_loans: bool) -> None:
    """Every rule, re-counted. The rules the law sets per debt (the quiet period, the weekly
    cap, a cease request) are counted per borrower under the cross-loan policy, else per loan;
    every cap per person or per number is counted across loans either way."""
    per_debt = _by_borrower if across_loans else _by_loan
    check_window(run)
    check_number_cap(run)
    check_conversations_a_day(run)
    check_daily_calls(run)
    check_gap(run)
    check_quiet_period(run, per_debt)
    check_weekly_calls(run, per_debt)
    check_references(run)
    check_cease(run, run.ledger.borrower_of.__getitem__ if across_loans else (lambda loan: loan))


@pytest.mark.parametrize("profile_code", ["cn", "us"])
@SETTINGS
@given(scenario=SCENARIOS)
def test_no_budget_is_exceeded_across_loans(profile_code: str, scenario: Scenario) -> None:
    """With the default cross-loan policy, every per-person and per-number limit holds over all
    of a borrower's loans, and over borrowers on one household number."""
    run = simulate(profile_code, POLICY_ON, scenario)
    check_every_budget(run, across_loans=True)


@pytest.mark.parametrize("profile_code", ["cn", "us"])
@SETTINGS
@given(scenario=SCENARIOS)
def test_caps_per_person_and_number_hold_with_the_policy_off(
    profile_code: str, scenario: Scenario
) -> None:
    """With the cross-loan policy off, the rules the law sets per debt (the quiet period, the
    weekly cap, a cease request) hold per loan, and every cap per person or number still holds
    across loans."""
    run = simulate(profile_code, POLICY_OFF, scenario)
    check_every_budget(run, across_loans=False)


@pytest.mark.parametrize("profile_code", ["cn", "us"])
@settings(SETTINGS, max_examples=200)
@given(scenario=CLOSE_SCENARIOS)
def test_a_contact_being_made_counts_as_its_worst_outcome(
    profile_code: str, scenario: Scenario
) -> None:
    """Contacts to one borrower minutes apart (a strategy gap shorter than a held place's
    grace): a loan's contact confirmed while another loan's is still being made counts that one
    as the worst it can turn into (a conversation, an unanswered call), so no cap is exceeded
    whatever it turns out to be."""
    run = simulate(profile_code, POLICY_ON, scenario)
    check_every_budget(run, across_loans=True)


# --- a reference being asked --------------------------------------------------------------


@pytest.mark.parametrize("profile_code", ["cn", "us"])
def test_a_reference_being_asked_on_another_loan_is_not_asked_again(profile_code: str) -> None:
    """Loan L1 is calling reference R: the channel activity confirmed its place at 10:00 and the
    call is not recorded yet, so the ledger holds only L1's place (outcome ``reserved``). Loan
    L2, same borrower, names R too, and its timer fires at 10:09. With a strategy gap of 5
    minutes (the strategy allows any gap of at least 1) no gap keeps the two calls apart, so
    L1's held place must count as R asked (were it not, R would be asked twice, and called even
    if L1's call ends in an objection). Found by the properties above with BRISK_STRATEGY."""
    zone = ZoneInfo("America/New_York")
    ten = datetime(2026, 3, 2, 10, 0, tzinfo=zone).astimezone(UTC)
    r = budget.number_key("+1 212-555-0199")
    held = AttemptRecord(
        ten, Channel.CALL, Target.CONTACT, "L1-ref", budget.RESERVED, budget.RESERVED, r, "B", "L1"
    )
    ledger_view = ContactHistory(shared=SharedContacts(attempts=[held]), unanswered_streak=3)
    # L2's timer fired; the channel activity checks the contact as it is made.
    at = ten + timedelta(minutes=9)
    proposal = planner.Proposal(at, Channel.CALL, Target.CONTACT, "L2-ref", r, "B", at_contact=True)
    decision = planner.check(
        profiles.profile_for(profile_code), ledger_view, proposal, zone, BRISK_STRATEGY
    )
    assert not decision.allowed, "R is asked on L2 while L1 is asking R"
    assert decision.rule == planner.Rule.THIRD_PARTY_ONCE
