"""Compliance properties over generated mixes of outcomes and situations, without Temporal.

A small pure driver plays the part of ``LoanCollection``: it holds a ``CollectionMachine``, a
``ContactHistory``, the shipped default strategy, a jurisdiction profile and a zone. It asks
``outreach.next_intent`` for the next outreach (only while the machine does not hold outreach),
schedules it with ``planner.plan_borrower_call`` / ``planner.plan_message`` as the workflow's
``_schedule`` does, and performs it at the planned moment after the planner's second look, as
``_reach_out`` does, with an outcome drawn by hypothesis. Between attempts it applies generated
events (payments, conversation outcomes carrying promises, disputes, cease requests, death
reports, refusals, and dispute resolutions) the way ``_apply_payments``, ``_apply_outcomes``,
``_situation_event`` and ``_settle_promise`` do, and sleeps like ``run``: until the earliest of
the next contact, the next local midnight, the promise deadline or the next event.

What the law says is then checked on what was performed, counted here from the driver's own log
and its own record of the events (never from the planner's helpers or the history flags):

(a) no call or SMS while a dispute is open, after a cease request, or to the borrower while a
    death report stands (and no letter while a dispute is open);
(b) every call and SMS is inside the profile window, borrower-local, and breaks no cap;
(c) no debt is disclosed to a third party: the reference script, rendered as
    ``activities/channels.py`` renders it, names no loan, amount or debt; and each reference is
    asked at most once, never after objecting, and in ``cn`` only once the borrower is unreachable.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activities.strategy import read_strategy
from workflows import clock, outreach, planner
from workflows.machine import Action, CollectionMachine, LoanFacts
from workflows.money import format_minor
from workflows.types import (
    ActivePromise,
    AttemptRecord,
    Channel,
    ContactHistory,
    Outcome,
    Strategy,
    Target,
)

REPO = Path(__file__).parents[2]
STRATEGY = read_strategy(REPO / "overdue" / "strategies" / "default.toml")
# The strategy may only be stricter than the law. A lax copy of the shipped strategy (many calls
# a day, short gaps) leaves the law's own caps as the only limit, so that they actually bite.
LAX_STRATEGY = read_strategy(REPO / "overdue" / "strategies" / "default.toml")
LAX_STRATEGY.name = "lax"
LAX_STRATEGY.max_calls_per_day = 20
LAX_STRATEGY.min_gap_minutes = 1

BORROWER_ID = "B-1"
CONTACT_IDS = ["R1", "R2", "R3"]
CURRENCY = {"cn": "CNY", "us": "USD"}
OPENING_BALANCE = 50_000
STAGE_MESSAGES = {Action.REMINDER_SMS: "early_reminder", Action.FIRM_SMS: "late_firm"}
DAY = timedelta(days=1)
WEEK = timedelta(days=7)

# The law, written out again here rather than read from ``planner.PROFILES``.
WINDOW = {"cn": (time(8, 0), time(22, 0)), "us": (time(8, 0), time(21, 0))}
CN_UNANSWERED_PER_NUMBER_PER_DAY = 6
CN_CONVERSATIONS_PER_DAY = 3
CN_UNREACHABLE_AFTER = 3
US_CALLS_PER_WEEK = 7
US_QUIET_AFTER_CONVERSATION = WEEK

DEBT_WORDS = ("debt", "overdue", "owe", "payment", "account", "collection", "loan")
FIRST_NAMES = ("Ann", "Wei", "Maria", "Jose", "Li", "Priya")
ZONES = (
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",  # half-hour offset
    "America/Santiago",  # southern-hemisphere DST
    "Europe/London",
    "Asia/Shanghai",
    "Asia/Kathmandu",  # quarter-hour offset
    "Australia/Lord_Howe",  # half-hour DST shift
    "Pacific/Chatham",
    "Pacific/Kiritimati",  # UTC+14
    "Pacific/Pago_Pago",  # UTC-11
)

# Keep the runtime small: every example simulates up to a few weeks of collection.
MAX_ITERATIONS = 400
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- generated inputs ----------------------------------------------------------------------


@dataclass(frozen=True)
class ReportedOutcome:
    """A ``contact_outcome`` signal, reduced to the facts that change the collection's course."""

    facts: frozenset[str]  # promise, dispute, cease, death, refusal, complaint, hardship, note
    promise_in_days: int = 0  # the promised date, counted from the borrower's today
    promise_share: float = 1.0  # of the outstanding balance


@dataclass(frozen=True)
class Resolution:
    """A ``dispute_resolved`` signal."""

    upheld: bool


@dataclass(frozen=True)
class Payment:
    """A ``payment_received`` signal, as a share of the balance at the time."""

    share: float


Event = ReportedOutcome | Resolution | Payment

FACTS = ("promise", "dispute", "cease", "death", "refusal", "complaint", "hardship", "note")
OUTCOMES = st.builds(
    ReportedOutcome,
    # Mostly one fact, sometimes several in one conversation (a promise and a complaint, a
    # dispute and a cease request, ...). Promises come up more often: they are the common case.
    facts=st.frozensets(
        st.sampled_from(("promise", "promise", *FACTS)), min_size=1, max_size=3
    ),
    promise_in_days=st.integers(0, 6),
    promise_share=st.sampled_from([0.2, 0.5, 1.0]),
)
RESOLUTIONS = st.builds(Resolution, upheld=st.booleans())
PAYMENTS = st.builds(Payment, share=st.sampled_from([0.1, 0.5, 1.0]))
EVENTS = st.lists(
    st.tuples(
        st.integers(0, 4 * 24 * 60),  # minutes after the previous event
        st.one_of(OUTCOMES, OUTCOMES, RESOLUTIONS, PAYMENTS),
    ),
    max_size=6,
)


@dataclass(frozen=True)
class Scenario:
    jurisdiction: str
    strategy: Strategy
    zone_name: str
    start_day: date
    start_minute: int
    dpd_at_start: int
    loan_id: str
    first_name: str
    events: list[tuple[int, Event]]
    seed: int
    answering: str = "sometimes"  # how the borrower takes calls: never, sometimes, always


SCENARIOS = st.builds(
    Scenario,
    jurisdiction=st.sampled_from(["cn", "us"]),
    strategy=st.sampled_from([STRATEGY, STRATEGY, LAX_STRATEGY]),
    zone_name=st.sampled_from(ZONES),
    start_day=st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31)),
    start_minute=st.integers(0, 24 * 60 - 1),
    dpd_at_start=st.integers(1, 28) | st.integers(1, 34),  # legal (29+) makes no calls
    loan_id=st.from_regex(r"L-[0-9]{3,6}", fullmatch=True),
    first_name=st.sampled_from(FIRST_NAMES),
    events=EVENTS,
    seed=st.integers(0, 2**32 - 1),
    answering=st.sampled_from(["never", "sometimes", "sometimes", "always"]),
)

# A borrower who never answers makes references and the unanswered caps come into play; one who
# always answers, the conversation caps and the quiet period.
BORROWER_CALL_OUTCOMES = {
    "never": [Outcome.NO_ANSWER, Outcome.NO_ANSWER, Outcome.BUSY],
    "sometimes": [Outcome.NO_ANSWER, Outcome.NO_ANSWER, Outcome.BUSY, Outcome.ANSWERED],
    "always": [Outcome.ANSWERED, Outcome.ANSWERED, Outcome.NO_ANSWER],
}
SMS_OUTCOMES = [Outcome.DELIVERED, Outcome.DELIVERED, Outcome.FAILED]
REFERENCE_OUTCOMES = [Outcome.RELAYED, Outcome.OBJECTED, Outcome.NO_ANSWER, Outcome.BUSY]


# --- the driver ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Standing:
    """What the driver itself knows was reported, independent of the history's flags."""

    dispute_open: bool
    ceased: bool
    deceased: bool


@dataclass(frozen=True)
class Performed:
    """One contact that happened, with what was known when it happened."""

    at: datetime
    channel: str
    target: str
    target_id: str
    template: str
    outcome: str
    standing: Standing
    text: str  # the message as the channel activity renders it


@dataclass
class Driver:
    """``LoanCollection`` without Temporal: the same pure pieces, fed the same way."""

    scenario: Scenario
    outcome_draw: st.DataObject
    profile: planner.JurisdictionProfile = field(init=False)
    zone: ZoneInfo = field(init=False)
    strategy: Strategy = field(init=False)
    rng: random.Random = field(init=False)
    now: datetime = field(init=False)
    due_date: str = field(init=False)
    history: ContactHistory = field(default_factory=ContactHistory)
    machine: CollectionMachine = field(init=False)
    outstanding: int = OPENING_BALANCE
    stage: str = "early"
    stage_entered_at: datetime = field(init=False)
    queued: list[str] = field(default_factory=list)
    promise: ActivePromise | None = None
    promises_made: int = 0
    broken_promises: int = 0
    paused_seconds: float = 0.0
    paused_since: datetime | None = None
    notices: list[str] = field(default_factory=list)
    next: tuple[outreach.Intent, planner.PlannedContact] | None = None
    # The driver's own record of what was reported (the "truth" the properties compare with).
    dispute_reported: bool = False
    cease_reported: bool = False
    death_reported: bool = False
    performed: list[Performed] = field(default_factory=list)

    def __post_init__(self) -> None:
        s = self.scenario
        self.profile = planner.profile_for(s.jurisdiction)
        self.zone = ZoneInfo(s.zone_name)
        self.strategy = s.strategy
        self.rng = random.Random(s.seed)
        local_start = datetime.combine(
            s.start_day, time(s.start_minute // 60, s.start_minute % 60), tzinfo=self.zone
        )
        self.now = local_start.astimezone(UTC)
        self.due_date = (self.now.astimezone(self.zone).date() - timedelta(days=s.dpd_at_start)).isoformat()
        self.stage_entered_at = self.now
        self.machine = CollectionMachine(
            bands=self.strategy.stages,
            facts=LoanFacts(
                days_past_due=self._collection_dpd(),
                outstanding_minor=self.outstanding,
                days_in_stage=0,
                broken_promises=0,
                cease_requested=False,
            ),
            referral_after_days=self.strategy.referral_after_days,
            broken_promise_limit=self.strategy.broken_promise_limit,
        )
        self._perform(self.machine.take_actions())

    # -- the run loop (LoanCollection.run) --

    def run(self) -> None:
        at = self.now
        timeline: list[tuple[datetime, Event]] = []
        for gap, event in self.scenario.events:
            at += timedelta(minutes=gap)
            timeline.append((at, event))
        horizon = max(at, self.now + WEEK) + 3 * DAY
        for _ in range(MAX_ITERATIONS):
            payments: list[Payment] = []
            outcomes: list[ReportedOutcome] = []
            resolutions: list[Resolution] = []
            while timeline and timeline[0][0] <= self.now:
                event = timeline.pop(0)[1]
                if isinstance(event, Payment):
                    payments.append(event)
                elif isinstance(event, ReportedOutcome):
                    outcomes.append(event)
                else:
                    resolutions.append(event)
            self._apply_payments(payments)
            self._apply_outcomes(outcomes, resolutions)
            self._settle_promise_if_due()
            if self.machine.is_closed:
                return
            self._observe_days()
            if self.machine.is_closed or self.now > horizon:
                return
            wake_at = self._plan()
            if timeline and timeline[0][0] <= wake_at:
                self.now = max(self.now, timeline[0][0])  # a signal ends the sleep
                continue
            self.now = max(self.now, wake_at)
            if self.next is not None and self.now >= self.next[1].at:
                self._reach_out(*self.next)

    # -- time --

    def _dpd(self, at: datetime) -> int:
        return clock.days_past_due(self.due_date, at, self.zone)

    def _paused(self) -> timedelta:
        paused = timedelta(seconds=self.paused_seconds)
        if self.paused_since is not None:
            paused += self.now - self.paused_since
        return paused

    def _collection_dpd(self) -> int:
        return self._dpd(self.now - self._paused())

    def _next_day_boundary(self) -> datetime:
        boundary = clock.day_starts(self.due_date, self._dpd(self.now) + 1, self.zone)
        if self.stage == "legal":
            referral = self.stage_entered_at + timedelta(days=self.strategy.referral_after_days)
            boundary = min(boundary, max(referral, self.now))
        return boundary

    # -- the machine's stage (_observe_days, _stage_changed, _perform) --

    def _observe_days(self) -> None:
        while not self.machine.is_closed:
            self.machine.facts.days_past_due = self._collection_dpd()
            self.machine.facts.days_in_stage = (self.now - self.stage_entered_at).days
            if not self.machine.observe_day():
                return
            self._stage_changed()

    def _stage_changed(self) -> None:
        self.stage = self.machine.stage
        self.stage_entered_at = self.now
        self.queued = []
        self._perform(self.machine.take_actions())

    def _perform(self, actions: list[str]) -> None:
        for action in actions:
            if action in STAGE_MESSAGES:
                self.queued.append(STAGE_MESSAGES[action])
            elif action == Action.LEGAL_NOTICE and self._letter_allowed():
                self._log(Channel.LETTER, Target.BORROWER, BORROWER_ID, "legal_notice", "sent")
                self.notices.append("legal_notice")
                planner.record_attempt(
                    self.history,
                    AttemptRecord(
                        self.now, Channel.LETTER, Target.BORROWER, BORROWER_ID, "letter", "sent"
                    ),
                    self._slot_names(),
                )

    def _letter_allowed(self) -> bool:
        proposal = planner.Proposal(self.now, Channel.LETTER, Target.BORROWER, BORROWER_ID)
        return planner.check(self.profile, self.history, proposal, self.zone).allowed

    # -- payments (_apply_payments) --

    def _apply_payments(self, payments: list[Payment]) -> None:
        for payment in payments:
            before = self.outstanding
            amount = max(1, int(before * payment.share))
            after = max(0, before - amount)
            self.outstanding = after
            if self.machine.is_closed:
                continue
            self.machine.facts.outstanding_minor = after
            if self.machine.observe_payment():
                self._stage_changed()
            elif self.promise is not None:
                self.promise.paid_minor += before - after
                if self.promise.paid_minor >= self.promise.amount_minor:
                    self._settle_promise(kept=True)

    # -- outcomes (_apply_outcomes, _situation_event, _make_promise) --

    def _apply_outcomes(
        self, outcomes: list[ReportedOutcome], resolutions: list[Resolution]
    ) -> None:
        for outcome in outcomes:
            if self.machine.is_closed:
                return
            facts = outcome.facts
            if "cease" in facts:
                self.cease_reported = True
                self._situation_event("cease_requested")
            if "dispute" in facts:
                self.dispute_reported = True
                self._situation_event("dispute_opened")
            if "promise" in facts and self.machine.accepts("promise_made"):
                self._make_promise(outcome)
            if "refusal" in facts and "refusal_notice" not in self.notices:
                if self._letter_allowed():
                    self._log(Channel.LETTER, Target.BORROWER, BORROWER_ID, "refusal_notice", "sent")
                    self.notices.append("refusal_notice")
            if "death" in facts:
                self.death_reported = True
                self.history.borrower_deceased = True
        for resolution in resolutions:
            if self.machine.is_closed:
                return
            self.dispute_reported = False  # a decision ends any dispute reported before it
            if self.machine.situation == "disputed":
                event = "dispute_closed" if resolution.upheld else "dispute_rejected"
                self._situation_event(event)

    def _situation_event(self, event: str) -> None:
        if event == "cease_requested":
            self.history.cease_requested = True
            self.machine.facts.cease_requested = True
        if not self.machine.accepts(event):
            return
        stage = self.machine.stage
        self.machine.send(event)
        if event == "dispute_opened":
            self.history.dispute_open = True
            self.paused_since = self.now
        elif event in ("dispute_rejected", "dispute_closed"):
            self.history.dispute_open = False
            if self.paused_since is not None:
                self.paused_seconds += (self.now - self.paused_since).total_seconds()
                self.paused_since = None
        if event in ("dispute_opened", "cease_requested"):
            self.promise = None
        if self.machine.stage != stage:
            self._stage_changed()

    def _make_promise(self, outcome: ReportedOutcome) -> None:
        today = self.now.astimezone(self.zone).date()
        self.promises_made += 1
        self.promise = ActivePromise(
            promise_id=f"{self.scenario.loan_id}:promise:{self.promises_made}",
            amount_minor=max(1, min(int(self.outstanding * outcome.promise_share), self.outstanding)),
            due_date=(today + timedelta(days=outcome.promise_in_days)).isoformat(),
            made_at=self.now,
        )
        self.machine.send("promise_made")

    # -- promises (_promise_deadline, _settle_promise) --

    def _promise_deadline(self) -> datetime | None:
        if self.promise is None:
            return None
        days = (date.fromisoformat(self.promise.due_date) - date.fromisoformat(self.due_date)).days
        return clock.day_starts(
            self.due_date, days + 1 + self.strategy.promise_grace_days, self.zone
        )

    def _settle_promise_if_due(self) -> None:
        deadline = self._promise_deadline()
        if deadline is not None and self.now >= deadline:
            self._settle_promise(kept=False)

    def _settle_promise(self, *, kept: bool) -> None:
        self.promise = None
        if kept:
            self.machine.send("promise_kept")
            return
        self.broken_promises += 1
        self.machine.facts.broken_promises = self.broken_promises
        stage = self.machine.stage
        self.machine.send("promise_broken")
        if self.machine.stage != stage:
            self._stage_changed()

    # -- outreach (_plan, _schedule, _reach_out) --

    def _plan(self) -> datetime:
        self.next = None
        intent = (
            None
            if self.machine.outreach_held
            else outreach.next_intent(
                stage=self.machine.stage,
                strategy=self.strategy,
                profile=self.profile,
                history=self.history,
                queued_messages=self.queued,
                nudges_in_streak=self.history.nudges_in_streak,
                borrower_id=BORROWER_ID,
                contact_ids=CONTACT_IDS,
            )
        )
        if intent is not None:
            planned = self._schedule(intent)
            if planned is not None:
                self.next = (intent, planned)
        wake_at = self._next_day_boundary()
        if self.next is not None:
            wake_at = min(wake_at, self.next[1].at)
        deadline = self._promise_deadline()
        if deadline is not None:
            wake_at = min(wake_at, max(deadline, self.now))
        return wake_at

    def _schedule(self, intent: outreach.Intent) -> planner.PlannedContact | None:
        if intent.channel == Channel.CALL and intent.target == Target.BORROWER:
            return planner.plan_borrower_call(
                self.profile,
                self.strategy,
                self.history,
                intent.target_id,
                self.now,
                self.zone,
                self.rng,
            )
        proposal = planner.Proposal(self.now, intent.channel, intent.target, intent.target_id)
        return planner.plan_message(
            self.profile, self.strategy, self.history, proposal, self.zone, self.rng
        )

    def _reach_out(self, intent: outreach.Intent, planned: planner.PlannedContact) -> None:
        proposal = planner.Proposal(self.now, intent.channel, intent.target, intent.target_id)
        if not planner.check(self.profile, self.history, proposal, self.zone).allowed:
            return
        slot = planner.slot_of(self.now, self.strategy, self.zone)
        if intent.channel == Channel.SMS:
            choices = SMS_OUTCOMES
        elif intent.target == Target.CONTACT:
            choices = REFERENCE_OUTCOMES
        else:
            choices = BORROWER_CALL_OUTCOMES[self.scenario.answering]
        result = self.outcome_draw.draw(st.sampled_from(choices), label="outcome")
        self._log(intent.channel, intent.target, intent.target_id, intent.template, result)
        planner.record_attempt(
            self.history,
            AttemptRecord(self.now, intent.channel, intent.target, intent.target_id, slot, result),
            self._slot_names(),
        )
        if intent.template in self.queued:
            self.queued.remove(intent.template)
        if intent.template == outreach.NUDGE_TEMPLATE:
            self.history.nudges_in_streak += 1

    # -- bookkeeping --

    def _log(self, channel: str, target: str, target_id: str, template: str, result: str) -> None:
        # As ContactRequest.message and ChannelActivities._attempt build the text.
        message = self.strategy.messages.get(template, "")
        text = string.Template(message).safe_substitute(
            first_name=self.scenario.first_name, loan_id=self.scenario.loan_id
        )
        standing = Standing(self.dispute_reported, self.cease_reported, self.death_reported)
        self.performed.append(
            Performed(self.now, channel, target, target_id, template, result, standing, text)
        )

    def _slot_names(self) -> list[str]:
        return [s.name for s in self.strategy.slots]


def _collect(scenario: Scenario, data: st.DataObject) -> Driver:
    driver = Driver(scenario, data)
    driver.run()
    return driver


# --- independent checks ----------------------------------------------------------------------


def _reaches_out(p: Performed) -> bool:
    return p.channel in (Channel.CALL, Channel.SMS)


def _is_borrower_call(p: Performed) -> bool:
    return p.channel == Channel.CALL and p.target == Target.BORROWER


def _is_conversation(p: Performed) -> bool:
    return _is_borrower_call(p) and p.outcome == Outcome.ANSWERED


def _describe(driver: Driver, p: Performed) -> str:
    local = p.at.astimezone(driver.zone)
    return (
        f"{p.channel} to {p.target} {p.target_id} ({p.template}) at {local:%Y-%m-%d %H:%M %Z},"
        f" {driver.scenario.jurisdiction}, {p.standing}"
    )


@given(scenario=SCENARIOS, data=st.data())
@SETTINGS
def test_no_contact_during_a_dispute_a_cease_or_after_a_death_report(
    scenario: Scenario, data: st.DataObject
) -> None:
    driver = _collect(scenario, data)
    for p in driver.performed:
        assert not p.standing.dispute_open, "contact while a dispute is open: " + _describe(
            driver, p
        )
        if _reaches_out(p):
            assert not p.standing.ceased, "call or SMS after a cease request: " + _describe(
                driver, p
            )
            if p.target == Target.BORROWER:
                assert not p.standing.deceased, (
                    "call or SMS to the borrower after a death report: " + _describe(driver, p)
                )


@given(scenario=SCENARIOS, data=st.data())
@SETTINGS
def test_every_contact_is_in_the_window_and_under_the_caps(
    scenario: Scenario, data: st.DataObject
) -> None:
    driver = _collect(scenario, data)
    zone, code = driver.zone, scenario.jurisdiction
    start, end = WINDOW[code]
    contacts = [p for p in driver.performed if _reaches_out(p)]
    calls = [p for p in contacts if p.channel == Channel.CALL]

    def day(at: datetime) -> date:
        return at.astimezone(zone).date()

    for p in contacts:
        assert start <= p.at.astimezone(zone).time() < end, "outside the window: " + _describe(
            driver, p
        )
    if code == "cn":
        unanswered: dict[tuple[str, date], int] = {}
        conversations: dict[date, int] = {}
        for p in calls:
            if p.outcome in (Outcome.NO_ANSWER, Outcome.BUSY):
                key = (p.target_id, day(p.at))
                unanswered[key] = unanswered.get(key, 0) + 1
                assert unanswered[key] <= CN_UNANSWERED_PER_NUMBER_PER_DAY, (
                    "cn: more than 6 unanswered calls to one number in a day: "
                    + _describe(driver, p)
                )
            if _is_conversation(p):
                conversations[day(p.at)] = conversations.get(day(p.at), 0) + 1
                assert conversations[day(p.at)] <= CN_CONVERSATIONS_PER_DAY, (
                    "cn: more than 3 conversations in a day: " + _describe(driver, p)
                )
    else:
        borrower_calls = [p for p in calls if p.target == Target.BORROWER]
        for p in borrower_calls:
            in_week = [q for q in borrower_calls if p.at - WEEK < q.at <= p.at]
            assert len(in_week) <= US_CALLS_PER_WEEK, (
                "us: more than 7 borrower calls in 7 days: " + _describe(driver, p)
            )
            quiet = [
                q
                for q in borrower_calls
                if _is_conversation(q) and q.at < p.at < q.at + US_QUIET_AFTER_CONVERSATION
            ]
            assert not quiet, "us: a call within 7 days after a conversation: " + _describe(
                driver, p
            )


@given(scenario=SCENARIOS, data=st.data())
@SETTINGS
def test_no_debt_is_disclosed_to_a_third_party(scenario: Scenario, data: st.DataObject) -> None:
    driver = _collect(scenario, data)
    currency = CURRENCY[scenario.jurisdiction]
    forbidden = re.compile("|".join(DEBT_WORDS), re.IGNORECASE)
    asked: set[str] = set()
    objected: set[str] = set()
    streak = 0  # unanswered borrower calls in a row, recounted here
    for p in driver.performed:
        if _is_borrower_call(p):
            streak = 0 if p.outcome == Outcome.ANSWERED else streak + 1
        if p.target != Target.CONTACT:
            continue
        where = _describe(driver, p)
        assert p.channel == Channel.CALL, "a third party gets only a call: " + where
        assert p.text, "a third-party contact without a script: " + where
        assert scenario.loan_id not in p.text, f"loan id told to a third party: {p.text!r}"
        assert not re.search(r"\d", p.text), f"an amount told to a third party: {p.text!r}"
        for amount in (OPENING_BALANCE, driver.outstanding):
            assert format_minor(amount, currency) not in p.text
        assert currency not in p.text and "$" not in p.text, f"money in {p.text!r}"
        found = forbidden.search(p.text)
        assert found is None, f"{found.group(0)!r} told to a third party: {p.text!r}"
        assert p.target_id not in asked, "a reference asked twice: " + where
        assert p.target_id not in objected, "a reference asked after objecting: " + where
        if scenario.jurisdiction == "cn":
            assert streak >= CN_UNREACHABLE_AFTER, (
                f"cn: a reference asked while the borrower is reachable (streak {streak}): "
                + where
            )
        asked.add(p.target_id)
        if p.outcome == Outcome.OBJECTED:
            objected.add(p.target_id)


def test_the_driver_reaches_every_situation() -> None:
    """The driver is not vacuous: a fixed mix makes contacts, then holds them as it should."""
    scenario = Scenario(
        jurisdiction="cn",
        strategy=STRATEGY,
        zone_name="Asia/Shanghai",
        start_day=date(2026, 11, 2),
        start_minute=7 * 60,
        dpd_at_start=1,
        loan_id="L-1001",
        first_name="Wei",
        events=[
            (3 * 24 * 60, ReportedOutcome(frozenset({"promise"}), promise_in_days=1)),
            (6 * 24 * 60, ReportedOutcome(frozenset({"dispute"}))),
            (2 * 24 * 60, Resolution(upheld=False)),
            (2 * 24 * 60, ReportedOutcome(frozenset({"death"}))),
            (2 * 24 * 60, ReportedOutcome(frozenset({"cease"}))),
        ],
        seed=7,
    )

    class NoAnswer:
        def draw(self, strategy: object, label: object = None) -> str:
            return Outcome.NO_ANSWER

    driver = Driver(scenario, NoAnswer())  # type: ignore[arg-type]
    driver.run()
    kinds = {(p.channel, p.target) for p in driver.performed}
    assert (Channel.SMS, Target.BORROWER) in kinds
    assert (Channel.CALL, Target.BORROWER) in kinds
    assert (Channel.CALL, Target.CONTACT) in kinds  # references once the borrower is unreachable
    assert driver.broken_promises == 1
    assert driver.machine.situation == "ceased"
    assert driver.history.cease_requested and driver.history.borrower_deceased
    assert not driver.history.dispute_open
