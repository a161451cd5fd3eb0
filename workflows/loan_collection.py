"""``LoanCollection``: one durable workflow per overdue loan.

The workflow owns no business rule of its own. The collection machine decides the stage, the
outreach module decides what to do next, the contact planner decides when it is allowed, and
activities carry it out. The workflow feeds them events, sleeps on one timer at a time (the
earliest of the next contact, the next day boundary, or a signal), and continues-as-new at every
stage change, carrying its whole state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

from workflows import budget, clock, outreach, planner
from workflows import search_attributes as sa
from workflows.commands import (
    OUTCOME_CONFLICT,
    PAYMENT_CONFLICT,
    BrokenPromise,
    BudgetTerms,
    ComplaintCase,
    ContactRequest,
    ContactReservation,
    DeathCheck,
    DeathCheckResult,
    LoadStrategy,
    NoticeRequest,
    OpenLoan,
    OutcomeRecord,
    PaymentEntry,
    PromiseRecord,
    PromiseSettlement,
    RejectedPayment,
    ReservationResult,
    SiblingsQuery,
    SituationEvent,
    StageChange,
)
from workflows.machine import Action, CollectionMachine, LoanFacts
from workflows.money import amount_band, format_minor
from workflows.types import (
    PHONE_CONVERSATIONS,
    ActivePromise,
    Arrangement,
    AttemptRecord,
    BorrowerChange,
    Channel,
    ClockAnchor,
    CollectionInput,
    CollectionState,
    CollectionStatus,
    CollectionSummary,
    ContactHistory,
    ContactOutcome,
    DisputeResolution,
    HoldChange,
    HoldRequest,
    Instalment,
    Loan,
    NextAction,
    OperatorHold,
    Outcome,
    PaymentReceived,
    PaymentResult,
    PendingPayment,
    Review,
    ReviewDecision,
    Situation,
    Stage,
    Target,
    workflow_id_for,
)

with workflow.unsafe.imports_passed_through():
    from zoneinfo import ZoneInfo

    from activities.budget import BudgetActivities
    from activities.channels import ChannelActivities
    from activities.ledger import LedgerActivities
    from activities.notices import NoticeActivities
    from activities.situations import SituationActivities
    from activities.strategy import StrategyActivities
    from activities.verification import VerificationActivities

# Patch ids: each gates a change of the command sequence that running histories must not see.
APPLY_PAYMENTS_BEFORE_CONTINUE_AS_NEW = "apply-payments-before-continue-as-new"
AUDIT_DENIED_CONTACTS = "audit-denied-contacts"
# Contacts take a place in the borrower's budget in the ledger, across all the borrower's loans.
BORROWER_CONTACT_BUDGET = "borrower-contact-budget"
# A right-party phone conversation that an outcome reports counts like an answered dialer call.
REPORTED_CONVERSATIONS_COUNT = "reported-conversations-count"
# A conversation or a cease request is told to the borrower's other running loans at once.
TELL_SIBLINGS = "tell-siblings"
# Search attributes are upserted only when a value changed: most workflow tasks upsert nothing.
SEARCH_ATTRIBUTES_ON_CHANGE = "search-attributes-on-change"
# Plans tried in one wake when the ledger refuses each one; then the loan waits for the budget.
MAX_PLANS_PER_WAKE = 3
REGISTRY_MISS_GOES_TO_REVIEW = "registry-miss-goes-to-review"
ArgT = TypeVar("ArgT")
ResultT = TypeVar("ResultT")
ACTIVITY_TIMEOUT = timedelta(seconds=30)
ACTIVITY_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))
# Situations that outreach results may update; the others only an outcome changes.
OUTREACH_SITUATIONS = (
    Situation.NONE,
    Situation.NO_ANSWER,
    Situation.CONTACTED,
    Situation.PROMISE_BROKEN,
)
# A person's decision, as the machine event it sends.
REVIEW_EVENTS = {
    (Review.DEATH_VERIFICATION, "verified"): "death_verified",
    (Review.DEATH_VERIFICATION, "not_verified"): "death_not_verified",
    (Review.HARDSHIP, "approved"): "forbearance_approved",
    (Review.HARDSHIP, "rejected"): "forbearance_rejected",
    (Review.ESTATE, "estate_claim"): "estate_claim_filed",
    (Review.ESTATE, "written_off"): "estate_written_off",
}
# The situation search attribute after each situation event.
SITUATION_AFTER = {
    "dispute_opened": Situation.DISPUTE,
    "dispute_rejected": Situation.CONTACTED,
    "dispute_closed": Situation.DISPUTE,
    "cease_requested": Situation.CEASED,
    "death_reported": Situation.DECEASED,
    "death_not_verified": Situation.CONTACTED,
    "registry_not_verified": Situation.DECEASED,  # a person decides; the report still stands
    "short_term_hardship": Situation.HARDSHIP,
    "long_term_hardship": Situation.HARDSHIP,
    "forbearance_rejected": Situation.CONTACTED,
    "instalment_missed": Situation.PROMISE_BROKEN,
}
STAGE_MESSAGES = {Action.REMINDER_SMS: "early_reminder", Action.FIRM_SMS: "late_firm"}


@workflow.defn(name="LoanCollection")
class LoanCollection:
    """Collects one overdue loan, from its first day past due to cure or legal referral."""

    @workflow.init
    def __init__(self, input: CollectionInput) -> None:
        self._loan = input.loan
        self._zone = ZoneInfo(input.loan.borrower.timezone)
        self._profile = planner.profile_for(input.loan.jurisdiction)
        self._state: CollectionState | None = input.state
        self._inbox: list[PendingPayment] = (
            list(input.state.pending_payments) if input.state else []
        )
        self._machine: CollectionMachine | None = None
        self._next: tuple[outreach.Intent, planner.PlannedContact] | None = None
        # When a plan the ledger refused may be tried again, and the rule that refused it.
        self._budget_wait: tuple[datetime, str] | None = None
        # Another loan of the borrower said the shared budget changed: plan again now.
        self._borrower_changed = False
        # The search attributes as last upserted (by this run, or as the run began with them).
        self._published: dict[str, Any] = {
            pair.key.name: pair.value for pair in workflow.info().typed_search_attributes
        }
        self._rejections: dict[str, str] = {}  # payment id -> why it was not applied
        self._outcomes: list[ContactOutcome] = (
            list(input.state.pending_outcomes) if input.state else []
        )
        self._resolutions: list[DisputeResolution] = (
            list(input.state.pending_resolutions) if input.state else []
        )
        self._decisions: list[ReviewDecision] = (
            list(input.state.pending_decisions) if input.state else []
        )
        self._hold_changes: list[HoldChange] = (
            list(input.state.pending_hold_changes) if input.state else []
        )

    @workflow.run
    async def run(self, input: CollectionInput) -> CollectionSummary:
        if self._state is None:
            self._state = await self._open(input)
            machine = self._build_machine(restore=False)
        else:
            # Restored as it was, without entry actions: they ran before continue-as-new.
            machine = self._build_machine(restore=True)
        self._machine = machine
        self._state.pending_payments = []
        self._state.pending_outcomes = []
        self._state.pending_resolutions = []
        self._state.pending_decisions = []
        self._state.pending_hold_changes = []
        stage_at_start = machine.stage
        await self._perform(machine.take_actions())
        self._publish()

        while True:
            await self._apply_payments()
            await self._apply_outcomes()
            await self._apply_hold_changes()
            await self._meet_deadlines()
            if machine.is_closed:
                break
            await self._observe_days()
            if machine.is_closed:
                break
            if machine.stage != stage_at_start:
                await self._continue_as_new(input)
                continue  # only reached when a waiting payment closed the loan instead
            wake_at = await self._plan()
            self._publish()
            await self._sleep_until(wake_at)
            if self._has_mail():
                continue
            if self._next is not None and self._now() >= self._next[1].at:
                await self._reach_out(*self._next)
            if workflow.info().is_continue_as_new_suggested():
                await self._continue_as_new(input)
                continue

        # Payments that arrive while the loan closes are still recorded (as overpayments), and
        # every update waiting on one gets its answer before the workflow completes. A pause or
        # resume has nothing left to act on.
        self._hold_changes.clear()
        while self._inbox or not workflow.all_handlers_finished():
            await self._apply_payments()
            await workflow.wait_condition(
                lambda: bool(self._inbox) or workflow.all_handlers_finished()
            )
        self._next = None
        self._publish()
        return self._summary()

    @workflow.signal
    def payment_received(self, payment: PaymentReceived) -> None:
        """A payment service reports money in. Idempotent by ``payment_id``."""
        seen = set(self._state.applied_payment_ids if self._state else [])
        seen |= {p.payment.payment_id for p in self._inbox}
        if payment.payment_id in seen:
            workflow.logger.info("payment %s already applied; ignored", payment.payment_id)
            return
        self._inbox.append(PendingPayment(payment, self._payment_problem(payment)))

    @workflow.signal
    def contact_outcome(self, outcome: ContactOutcome) -> None:
        """A collector, a dialer, an agent desk or the simulator reports what a contact revealed.

        Idempotent by ``outcome_id``.
        """
        if self._first_sight(outcome.outcome_id):
            self._outcomes.append(outcome)

    @workflow.signal
    def dispute_resolved(self, resolution: DisputeResolution) -> None:
        """The decision on a dispute of the debt. Idempotent by ``resolution_id``."""
        if self._first_sight(resolution.resolution_id):
            self._resolutions.append(resolution)

    @workflow.signal
    def review_decided(self, decision: ReviewDecision) -> None:
        """A person's decision on a death verification, a hardship review or an estate.

        Idempotent by ``decision_id``. A decision the loan is not waiting for is recorded in the
        history and otherwise ignored.
        """
        if self._first_sight(decision.decision_id):
            self._decisions.append(decision)

    @workflow.signal
    def borrower_changed(self, change: BorrowerChange) -> None:
        """Another loan of the borrower had a conversation or took a cease request: the plan
        this loan holds may no longer be allowed. It asks the ledger again at once."""
        workflow.logger.info("borrower budget changed by %s: %s", change.by_loan, change.reason)
        self._borrower_changed = True

    @workflow.signal
    def pause(self, request: HoldRequest) -> None:
        """An operator pauses the collection: no outreach and no escalation until resumed.

        Payments, outcomes and decisions are still taken. Pausing a paused loan changes nothing.
        """
        self._queue_hold_change(HoldChange(pause=True, request=request))

    @workflow.signal
    def resume(self, request: HoldRequest) -> None:
        """An operator resumes a paused collection where it was. Resuming a running one changes
        nothing."""
        self._queue_hold_change(HoldChange(pause=False, request=request))

    @workflow.update
    async def pause_collection(self, request: HoldRequest) -> CollectionStatus:
        """Pause, as the ``pause`` signal does, and answer with the state once paused."""
        return await self._change_hold(HoldChange(pause=True, request=request))

    @pause_collection.validator
    def _validate_pause(self, request: HoldRequest) -> None:
        # Refused before anything is written to history: a pause must say why.
        if not request.reason.strip():
            raise ValueError("reason: is required to pause a collection")

    @workflow.update
    async def resume_collection(self, request: HoldRequest) -> CollectionStatus:
        """Resume, as the ``resume`` signal does, and answer with the state once resumed."""
        return await self._change_hold(HoldChange(pause=False, request=request))

    def _queue_hold_change(self, change: HoldChange) -> bool:
        if change.request.request_id and not self._first_sight(change.request.request_id):
            return False
        self._hold_changes.append(change)
        return True

    async def _change_hold(self, change: HoldChange) -> CollectionStatus:
        await workflow.wait_condition(lambda: self._state is not None)
        if self._queue_hold_change(change):
            # Done once the main loop has taken it, or when the loan closed first.
            await workflow.wait_condition(lambda: all(c is not change for c in self._hold_changes))
        return self.status()

    def _first_sight(self, signal_id: str) -> bool:
        seen = set(self._state.seen_signal_ids if self._state else [])
        seen |= {o.outcome_id for o in self._outcomes}
        seen |= {r.resolution_id for r in self._resolutions}
        seen |= {d.decision_id for d in self._decisions}
        seen |= {c.request.request_id for c in self._hold_changes}
        if signal_id in seen:
            workflow.logger.info("signal %s already received; ignored", signal_id)
            return False
        return True

    def _has_mail(self) -> bool:
        return bool(
            self._inbox
            or self._outcomes
            or self._resolutions
            or self._decisions
            or self._hold_changes
            or self._borrower_changed
        )

    @workflow.update
    async def apply_payment(self, payment: PaymentReceived) -> PaymentResult:
        """Apply a payment and answer with the new balance. Idempotent by ``payment_id``.

        The validator refuses a malformed payment before anything is written to history; a
        duplicate is not an error, it answers with ``applied=False, duplicate=True``.
        """
        await workflow.wait_condition(lambda: self._state is not None)
        state = self._require_state()
        payment_id = payment.payment_id
        duplicate = payment_id in state.applied_payment_ids
        if not duplicate and payment_id not in {p.payment.payment_id for p in self._inbox}:
            self._inbox.append(PendingPayment(payment))
        await workflow.wait_condition(
            lambda: payment_id in state.applied_payment_ids or payment_id in self._rejections
        )
        return PaymentResult(
            payment_id=payment_id,
            applied=not duplicate and payment_id in state.applied_payment_ids,
            duplicate=duplicate,
            rejection=self._rejections.get(payment_id),
            outstanding_minor=state.outstanding_minor,
            currency=self._loan.currency,
            stage=state.stage,
        )

    @apply_payment.validator
    def _validate_payment(self, payment: PaymentReceived) -> None:
        problem = self._payment_problem(payment)
        if problem is not None:
            raise ValueError(problem)

    @workflow.query
    def status(self) -> CollectionStatus:
        if self._state is None:
            # The state exists only once the loan is opened (after two activities), and a query
            # can come before that (`overdue pay`/`status` right after `start`); it failed with
            # "state is set before the first await". Answer from the input instead.
            return self._opening_status()
        state = self._require_state()
        now = self._now()
        return CollectionStatus(
            loan_id=self._loan.loan_id,
            stage=state.stage,
            days_past_due=self._dpd(now),
            outstanding_minor=state.outstanding_minor,
            recovered_minor=state.recovered_minor,
            currency=self._loan.currency,
            situation=state.situation,
            jurisdiction=self._loan.jurisdiction,
            timezone=self._loan.borrower.timezone,
            attempt_count=state.attempt_count,
            last_outcome=state.last_outcome,
            next_action=self._next_action(),
            collection_time=now,
            recent_attempts=list(state.history.attempts),
            applied_payment_ids=list(state.applied_payment_ids),
            notices=list(state.notices),
            broken_promises=state.broken_promises,
            promise=state.promise,
            complaint_cases=list(state.complaint_cases),
            days_paused=self._paused().days,
            arrangement=state.arrangement,
            hold=state.hold,
        )

    def _opening_status(self) -> CollectionStatus:
        now = workflow.now()
        return CollectionStatus(
            loan_id=self._loan.loan_id,
            stage=Stage.EARLY,
            days_past_due=self._dpd(now),
            outstanding_minor=self._loan.outstanding_minor,
            recovered_minor=0,
            currency=self._loan.currency,
            situation="none",
            jurisdiction=self._loan.jurisdiction,
            timezone=self._loan.borrower.timezone,
            attempt_count=0,
            last_outcome=None,
            next_action=NextAction(kind="stage_review", at_utc=None, at_local=None),
            collection_time=now,
            recent_attempts=[],
            applied_payment_ids=[],
            notices=[],
        )

    # --- opening and restoring -------------------------------------------------------------

    async def _open(self, input: CollectionInput) -> CollectionState:
        strategy = await workflow.execute_activity_method(
            StrategyActivities.load_strategy,
            LoadStrategy(),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
            summary="load collection strategy",
        )
        now = workflow.now()
        await workflow.execute_activity_method(
            LedgerActivities.open_loan,
            OpenLoan(loan=input.loan, opened_at=now),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
            summary="open loan in ledger",
        )
        origin = input.clock_origin or now
        anchor = ClockAnchor(
            real_origin=origin, collection_origin=origin, day_seconds=input.day_seconds
        )
        now = clock.collection_now(anchor, now)
        return CollectionState(
            strategy=strategy,
            clock=anchor,
            stage=Stage.EARLY,
            outstanding_minor=input.loan.outstanding_minor,
            history=ContactHistory(cross_loan=strategy.cross_loan),
            stage_entered_at=now,
            entered_stages=[Stage.EARLY],
        )

    def _build_machine(self, *, restore: bool) -> CollectionMachine:
        state = self._require_state()
        return CollectionMachine(
            bands=state.strategy.stages,
            facts=LoanFacts(
                days_past_due=self._collection_dpd(),
                outstanding_minor=state.outstanding_minor,
                days_in_stage=self._days_in_stage(),
                broken_promises=state.broken_promises,
                cease_requested=state.history.cease_requested,
                on_hold=state.hold is not None,
            ),
            referral_after_days=state.strategy.referral_after_days,
            broken_promise_limit=state.strategy.broken_promise_limit,
            stage=state.stage if restore else None,
            situation=state.situation_state if restore else None,
        )

    async def _continue_as_new(self, input: CollectionInput) -> None:
        """Hand the whole state to a new run. Returns only if the loan closed meanwhile."""
        state = self._require_state()
        if workflow.patched(APPLY_PAYMENTS_BEFORE_CONTINUE_AS_NEW):
            # An update waiting on a payment must be answered by this run: apply what is in
            # the inbox and let every handler finish before handing over to the next run.
            while self._inbox or not workflow.all_handlers_finished():
                await self._apply_payments()
                await self._apply_hold_changes()
                await workflow.wait_condition(
                    lambda: (
                        bool(self._inbox or self._hold_changes) or workflow.all_handlers_finished()
                    )
                )
            if self._require_machine().is_closed:
                return  # a waiting payment cured the loan: it ends in this run
        state.pending_payments = list(self._inbox)
        state.pending_outcomes = list(self._outcomes)
        state.pending_resolutions = list(self._resolutions)
        state.pending_decisions = list(self._decisions)
        state.pending_hold_changes = list(self._hold_changes)
        state.situation_state = self._require_machine().situation
        workflow.continue_as_new(
            CollectionInput(loan=input.loan, day_seconds=input.day_seconds, state=state)
        )

    # --- events into the machine ----------------------------------------------------------

    async def _observe_days(self) -> None:
        """Let the machine see the calendar; a loan may cross more than one boundary at once."""
        machine = self._require_machine()
        while not machine.is_closed:
            machine.facts.days_past_due = self._collection_dpd()
            machine.facts.days_in_stage = self._days_in_stage()
            before = machine.stage
            if not machine.observe_day():
                return
            await self._stage_changed(before)

    async def _apply_payments(self) -> None:
        machine, state = self._require_machine(), self._require_state()
        while self._inbox:
            # Peek, and pop only once the ledger write is done: a duplicate signal that arrives
            # while it is in flight must still find this payment id in the inbox (the signal
            # handler's de-duplication looks there), or it would be applied a second time.
            pending = self._inbox[0]
            payment = pending.payment
            rejection = pending.rejection
            before = state.outstanding_minor
            after = max(0, before - payment.amount_minor)
            if rejection is None:
                rejection = await self._record_payment(
                    PaymentEntry(
                        loan_id=self._loan.loan_id,
                        payment=payment,
                        outstanding_before=before,
                        outstanding_after=after,
                        overpaid_minor=max(0, payment.amount_minor - before),
                        stage=state.stage,
                    )
                )
            if rejection is not None:
                await self._activity(
                    LedgerActivities.record_rejected_payment,
                    RejectedPayment(self._loan.loan_id, payment, rejection),
                    f"reject payment {payment.payment_id}",
                )
                self._rejections[payment.payment_id] = rejection
                self._inbox.pop(0)
                continue
            self._inbox.pop(0)
            state.applied_payment_ids.append(payment.payment_id)
            state.outstanding_minor = after
            state.recovered_minor += before - after
            if machine.is_closed:
                continue
            # What the payment meets first: a standing promise, or the plan's instalments.
            if state.promise is not None:
                state.promise.paid_minor += before - after
                if state.promise.paid_minor >= state.promise.amount_minor:
                    await self._settle_promise(kept=True)
            elif state.arrangement is not None:
                await self._pay_instalments(before - after)
            machine.facts.outstanding_minor = after
            stage = machine.stage
            if machine.observe_payment():
                await self._stage_changed(stage)
            self._publish()

    # --- situations -----------------------------------------------------------------------

    async def _apply_outcomes(self) -> None:
        """Record each reported outcome, then let the machine see what it revealed."""
        machine, state = self._require_machine(), self._require_state()
        while self._outcomes and not machine.is_closed:
            outcome = self._outcomes[0]
            now = self._now()
            conversation = self._is_reported_conversation(outcome)
            if not await self._record_outcome(outcome, conversation=conversation):
                self._outcomes.pop(0)
                continue
            if conversation:
                self._count_conversation(min(outcome.at, now))
                await self._tell_siblings("conversation")
            if outcome.complaint is not None:
                await self._open_complaint(outcome, now)
            if outcome.cease:
                # Recorded before the dispute, so that a cease request outlives a dispute.
                await self._situation_event("cease_requested", outcome.outcome_id, now)
                await self._tell_siblings("cease_requested")
            if outcome.dispute:
                await self._situation_event("dispute_opened", outcome.outcome_id, now)
            if outcome.promise is not None and machine.accepts("promise_made"):
                await self._make_promise(outcome, now)
            if outcome.refusal:
                state.situation = Situation.REFUSAL
                await self._serve_refusal_notice()
            if outcome.death_reported_by is not None:
                await self._situation_event("death_reported", outcome.outcome_id, now)
            elif outcome.hardship is not None:
                event = (
                    "short_term_hardship"
                    if outcome.hardship.term == "short"
                    else "long_term_hardship"
                )
                await self._situation_event(event, outcome.outcome_id, now)
            if outcome.situation is not None:
                state.situation = outcome.situation
            state.seen_signal_ids.append(outcome.outcome_id)
            self._outcomes.pop(0)
            self._publish()
        while self._decisions and not machine.is_closed:
            decision = self._decisions[0]
            decided = REVIEW_EVENTS.get((decision.review, decision.outcome))
            if decided is not None:
                await self._situation_event(decided, decision.decision_id, self._now())
            state.seen_signal_ids.append(decision.decision_id)
            self._decisions.pop(0)
            self._publish()
        while self._resolutions and not machine.is_closed:
            resolution = self._resolutions[0]
            if machine.situation == "disputed":
                event = "dispute_closed" if resolution.upheld else "dispute_rejected"
                await self._situation_event(event, resolution.resolution_id, self._now())
            state.seen_signal_ids.append(resolution.resolution_id)
            self._resolutions.pop(0)
            self._publish()

    def _is_reported_conversation(self, outcome: ContactOutcome) -> bool:
        """A right-party phone conversation that no dialer attempt of ours has counted already
        (a collector's own call, an inbound call): it counts for every conversation rule."""
        return (
            outcome.right_party
            and outcome.channel in PHONE_CONVERSATIONS
            and outcome.attempt_key is None
            and workflow.patched(REPORTED_CONVERSATIONS_COUNT)
        )

    def _count_conversation(self, at: datetime) -> None:
        """Fold a reported conversation into the history, as an answered call at ``at``."""
        state = self._require_state()
        borrower_id = self._loan.borrower.borrower_id
        planner.record_attempt(
            state.history,
            AttemptRecord(
                at,
                Channel.CALL,
                Target.BORROWER,
                borrower_id,
                planner.slot_of(at, state.strategy, self._zone),
                Outcome.ANSWERED,
                number=self._number_of(Target.BORROWER, borrower_id),
                borrower_id=borrower_id,
                loan_id=self._loan.loan_id,
            ),
            self._slot_names(),
        )
        self._next = None  # the quiet period and the caps have moved: plan again

    async def _record_outcome(self, outcome: ContactOutcome, *, conversation: bool) -> bool:
        """Keep the outcome in the ledger. False when the ledger holds its id for another loan:
        the report is refused there (and audited), and the collection goes on without it.
        """
        state = self._require_state()
        try:
            await self._activity(
                SituationActivities.record_contact_outcome,
                OutcomeRecord(self._loan.loan_id, outcome, state.stage, conversation),
                f"record outcome {outcome.outcome_id} from {outcome.source}",
            )
        except ActivityError as failure:
            cause = failure.cause
            if isinstance(cause, ApplicationError) and cause.type == OUTCOME_CONFLICT:
                workflow.logger.warning("outcome %s refused: %s", outcome.outcome_id, cause.message)
                return False
            raise
        return True

    async def _situation_event(self, event: str, key: str, now: datetime) -> None:
        """Send a situation event to the machine, and keep the planner's facts in step."""
        machine, state = self._require_machine(), self._require_state()
        if event == "cease_requested":
            # A cease request binds even when the machine stays put (during a dispute): the
            # planner refuses calls and messages from now on, and a rejected dispute ends in it.
            state.history.cease_requested = True
            machine.facts.cease_requested = True
        if event == "death_reported":
            # Likewise a death report: even during a dispute, nobody contacts the borrower.
            state.history.borrower_deceased = True
            state.death_reported_at = state.death_reported_at or now
        stage, was_paused = machine.stage, machine.collection_paused
        # A decision or an outcome the loan is not waiting for changes nothing.
        if not machine.take(event):
            return
        if event == "death_reported":
            state.death_reported_at = now  # each report is verified anew
        history = state.history
        history.dispute_open = machine.situation == "disputed"
        if event == "death_not_verified":
            history.borrower_deceased = False
        state.situation = SITUATION_AFTER.get(event, state.situation)
        if machine.situation == "ceased":
            state.situation = Situation.CEASED
        self._track_pause(was_paused, now)
        # What stood before no longer holds once the situation moves on.
        if machine.situation != "promised":
            state.promise = None
        if machine.situation not in ("arrangement", "forbearance"):
            state.arrangement = None
        await self._activity(
            SituationActivities.record_situation_event,
            SituationEvent(self._loan.loan_id, f"{self._loan.loan_id}:{event}:{key}", event, now),
            event.replace("_", " "),
        )
        if machine.outreach_held:
            self._next = None  # what was planned is no longer going to happen
        if machine.stage != stage:
            await self._stage_changed(stage)
        else:
            await self._perform(machine.take_actions())
        if event == "dispute_rejected" and history.borrower_deceased:
            # A death reported while the dispute stood is verified once it is over.
            await self._situation_event("death_reported", key, now)

    def _track_pause(self, was_paused: bool, now: datetime) -> None:
        """Collection pauses while a dispute, a death report or a plan stands, or an operator
        holds it; the time paused does not count towards the next stage."""
        state, paused = self._require_state(), self._require_machine().collection_paused
        if paused and not was_paused:
            state.paused_since = now
        elif was_paused and not paused and state.paused_since is not None:
            state.paused_seconds += (now - state.paused_since).total_seconds()
            state.paused_since = None

    async def _apply_hold_changes(self) -> None:
        """Pause or resume as operators asked; each change is kept in the audit log."""
        machine, state = self._require_machine(), self._require_state()
        while self._hold_changes and not machine.is_closed:
            change = self._hold_changes[0]
            request, now = change.request, self._now()
            if change.pause != (state.hold is not None):
                was_paused = machine.collection_paused
                state.hold = (
                    OperatorHold(request.reason or "not given", request.operator, now)
                    if change.pause
                    else None
                )
                machine.facts.on_hold = change.pause
                self._track_pause(was_paused, now)
                if change.pause:
                    self._next = None  # what was planned is no longer going to happen
                state.holds += 1
                action = "collection_paused" if change.pause else "collection_resumed"
                await self._activity(
                    SituationActivities.record_situation_event,
                    SituationEvent(
                        self._loan.loan_id,
                        f"{self._loan.loan_id}:hold:{state.holds}",
                        action,
                        now,
                        {"reason": request.reason, "operator": request.operator},
                    ),
                    f"{action.replace('_', ' ')} by {request.operator}",
                )
            if request.request_id:
                state.seen_signal_ids.append(request.request_id)
            self._hold_changes.pop(0)
            self._publish()

    async def _open_complaint(self, outcome: ContactOutcome, now: datetime) -> None:
        state = self._require_state()
        category = outcome.complaint or ""
        case_id = f"{self._loan.loan_id}:complaint:{outcome.outcome_id}"
        await self._activity(
            SituationActivities.open_complaint_case,
            ComplaintCase(
                case_id=case_id,
                loan_id=self._loan.loan_id,
                category=category,
                route=state.strategy.complaint_routes.get(category, "customer_relations"),
                opened_at=now,
                note=outcome.note,
            ),
            f"open complaint case · {category}",
        )
        state.complaint_cases.append(case_id)

    async def _make_promise(self, outcome: ContactOutcome, now: datetime) -> None:
        machine, state = self._require_machine(), self._require_state()
        assert outcome.promise is not None
        state.promises_made += 1
        promise = ActivePromise(
            promise_id=f"{self._loan.loan_id}:promise:{state.promises_made}",
            amount_minor=min(outcome.promise.amount_minor, state.outstanding_minor),
            due_date=outcome.promise.due_date,
            made_at=now,
        )
        await self._activity(
            SituationActivities.record_promise,
            PromiseRecord(
                promise_id=promise.promise_id,
                loan_id=self._loan.loan_id,
                amount_minor=promise.amount_minor,
                currency=self._loan.currency,
                due_date=promise.due_date,
                made_at=now,
                source=outcome.source,
            ),
            f"promise to pay by {promise.due_date}",
        )
        state.promise = promise
        state.situation = Situation.PROMISE
        machine.send("promise_made")

    def _promise_deadline(self) -> datetime | None:
        promise = self._require_state().promise
        return None if promise is None else self._broken_after(promise.due_date)

    def _broken_after(self, due_date: str) -> datetime:
        """When a promise or an instalment due on ``due_date`` is broken: local midnight after
        the date plus the strategy's grace days."""
        state = self._require_state()
        days = (date.fromisoformat(due_date) - date.fromisoformat(self._loan.due_date)).days
        return clock.day_starts(
            self._loan.due_date, days + 1 + state.strategy.promise_grace_days, self._zone
        )

    def _next_instalment(self) -> Instalment | None:
        state = self._require_state()
        if state.arrangement is None:
            return None
        return next(
            (i for i in state.arrangement.instalments if i.paid_minor < i.amount_minor), None
        )

    def _verification_deadline(self) -> datetime | None:
        state = self._require_state()
        if self._require_machine().situation != "deceased_reported" or not state.death_reported_at:
            return None
        return state.death_reported_at + timedelta(days=state.strategy.death_verification_days)

    def _deadlines(self) -> list[datetime]:
        """Every moment a standing situation must be looked at again (after an operator's hold)."""
        if self._require_state().hold is not None:
            return []
        moments = [self._promise_deadline(), self._verification_deadline()]
        instalment = self._next_instalment()
        if instalment is not None:
            moments.append(self._broken_after(instalment.due_date))
        return [m for m in moments if m is not None]

    async def _meet_deadlines(self) -> None:
        """Break a promise or an instalment left unpaid, and hand an unverified death to a
        person. An operator's hold defers them: they are met once the loan is resumed."""
        if self._require_state().hold is not None:
            return
        now = self._now()
        promise_deadline = self._promise_deadline()
        if promise_deadline is not None and now >= promise_deadline:
            await self._settle_promise(kept=False)
        instalment = self._next_instalment()
        if instalment is not None and now >= self._broken_after(instalment.due_date):
            await self._miss_instalment(instalment)
        verification = self._verification_deadline()
        if verification is not None and now >= verification:
            await self._situation_event("verification_overdue", "deadline", now)

    async def _settle_promise(self, *, kept: bool) -> None:
        """End the standing promise: kept, or broken with its consequences (which may escalate)."""
        machine, state = self._require_machine(), self._require_state()
        promise = state.promise
        assert promise is not None
        now = self._now()
        status = "kept" if kept else ("partially_kept" if promise.paid_minor > 0 else "broken")
        await self._activity(
            SituationActivities.settle_promise,
            PromiseSettlement(
                promise.promise_id, self._loan.loan_id, status, promise.paid_minor, now
            ),
            f"promise {status.replace('_', ' ')}",
        )
        state.promise = None
        if kept:
            state.situation = Situation.CONTACTED
            machine.send("promise_kept")
            return
        await self._report_broken(promise.promise_id, promise.amount_minor, promise.paid_minor)
        state.situation = Situation.PROMISE_BROKEN
        stage = machine.stage
        machine.send("promise_broken")
        if machine.stage != stage:
            await self._stage_changed(stage)

    async def _report_broken(self, promise_id: str, amount_minor: int, paid_minor: int) -> None:
        """A broken promise's consequences: a negative credit record and a failed-debit fee
        (none under forbearance, whose fees are paused). The count may escalate the stage."""
        machine, state = self._require_machine(), self._require_state()
        state.broken_promises += 1
        machine.facts.broken_promises = state.broken_promises
        fee = state.strategy.failed_debit_fee_minor.get(self._loan.currency, 0)
        if machine.situation == "forbearance":
            fee = 0
        await self._activity(
            SituationActivities.report_broken_promise,
            BrokenPromise(
                promise_id=promise_id,
                loan_id=self._loan.loan_id,
                borrower_id=self._loan.borrower.borrower_id,
                amount_minor=amount_minor,
                paid_minor=paid_minor,
                currency=self._loan.currency,
                fee_minor=fee,
                broken_count=state.broken_promises,
                at=self._now(),
            ),
            f"report broken promise #{state.broken_promises}",
        )

    async def _offer_plan(self, kind: str) -> None:
        """An instalment plan over the outstanding balance; each instalment is a promise."""
        state = self._require_state()
        strategy = state.strategy
        count = (
            strategy.forbearance_instalments
            if kind == Action.FORBEARANCE
            else strategy.arrangement_instalments
        )
        state.arrangements_made += 1
        today = clock.local(self._now(), self._zone).date()
        share, remainder = divmod(state.outstanding_minor, count)
        plan = Arrangement(kind=kind)
        for number in range(1, count + 1):
            plan.instalments.append(
                Instalment(
                    promise_id=f"{self._loan.loan_id}:plan:{state.arrangements_made}:{number}",
                    due_date=(
                        today + timedelta(days=strategy.arrangement_interval_days * number)
                    ).isoformat(),
                    amount_minor=share + (remainder if number == count else 0),
                )
            )
        for instalment in plan.instalments:
            await self._activity(
                SituationActivities.record_promise,
                PromiseRecord(
                    promise_id=instalment.promise_id,
                    loan_id=self._loan.loan_id,
                    amount_minor=instalment.amount_minor,
                    currency=self._loan.currency,
                    due_date=instalment.due_date,
                    made_at=self._now(),
                    source=kind,
                ),
                f"{kind} instalment due {instalment.due_date}",
            )
        state.arrangement = plan

    async def _miss_instalment(self, instalment: Instalment) -> None:
        """A missed instalment is a broken promise, and it ends the plan."""
        state = self._require_state()
        status = "partially_kept" if instalment.paid_minor > 0 else "broken"
        await self._activity(
            SituationActivities.settle_promise,
            PromiseSettlement(
                instalment.promise_id,
                self._loan.loan_id,
                status,
                instalment.paid_minor,
                self._now(),
            ),
            f"instalment {status.replace('_', ' ')}",
        )
        await self._report_broken(
            instalment.promise_id, instalment.amount_minor, instalment.paid_minor
        )
        await self._situation_event("instalment_missed", instalment.promise_id, self._now())
        state.arrangement = None

    async def _pay_instalments(self, amount_minor: int) -> None:
        """A payment goes to the plan's instalments in order; each one paid in full is kept."""
        state = self._require_state()
        plan = state.arrangement
        if plan is None:
            return
        for instalment in plan.instalments:
            if amount_minor <= 0:
                break
            owed = instalment.amount_minor - instalment.paid_minor
            if owed <= 0:
                continue
            paid = min(owed, amount_minor)
            instalment.paid_minor += paid
            amount_minor -= paid
            if instalment.paid_minor >= instalment.amount_minor:
                await self._activity(
                    SituationActivities.settle_promise,
                    PromiseSettlement(
                        instalment.promise_id,
                        self._loan.loan_id,
                        "kept",
                        instalment.paid_minor,
                        self._now(),
                    ),
                    "instalment kept",
                )

    async def _verify_death(self) -> None:
        """Ask the family for documents, and an institution for confirmation."""
        state = self._require_state()
        await self._serve_letter("death_documents_request", Target.ESTATE)
        result = await self._activity(
            VerificationActivities.verify_death,
            DeathCheck(
                check_key=f"{self._loan.loan_id}:death_check:{state.death_reported_at}",
                loan_id=self._loan.loan_id,
                borrower_id=self._loan.borrower.borrower_id,
                reported_by="contact_outcome",
                reported_at=state.death_reported_at or self._now(),
            ),
            "verify death with the registry",
        )
        if result == DeathCheckResult.VERIFIED:
            await self._situation_event("death_verified", "registry", self._now())
        elif result == DeathCheckResult.NOT_VERIFIED:
            if workflow.patched(REGISTRY_MISS_GOES_TO_REVIEW):
                # Registries lag: a missing record does not overrule a report by family. A
                # person decides (``review_decided``, death_verification); until then nothing
                # goes to the borrower. Keyed by the report: each one is verified anew.
                key = f"registry:{state.death_reported_at}"
                await self._situation_event("registry_not_verified", key, self._now())
            else:
                await self._situation_event("death_not_verified", "registry", self._now())
        # No record yet: the verification deadline hands the loan to a person.

    async def _serve_letter(
        self, kind: str, target: str, facts: dict[str, str] | None = None
    ) -> bool:
        """Serve a notice of ``kind`` once, if the planner allows a letter to ``target`` now.

        Returns whether it was served.
        """
        state = self._require_state()
        now = self._now()
        notice_key = f"{self._loan.loan_id}:{kind}"
        target_id = "estate" if target == Target.ESTATE else self._loan.borrower.borrower_id
        proposal = planner.Proposal(now, Channel.LETTER, target, target_id)
        if notice_key in state.notices:
            return False
        if not planner.check(self._profile, state.history, proposal, self._zone).allowed:
            return False
        record = await self._activity(
            NoticeActivities.serve_notice,
            NoticeRequest(
                notice_key=notice_key,
                loan_id=self._loan.loan_id,
                kind=kind,
                days_past_due=self._dpd(now),
                outstanding_minor=state.outstanding_minor,
                currency=self._loan.currency,
                issued_at=now,
                facts=facts or {},
            ),
            f"serve {kind.replace('_', ' ')} letter",
        )
        state.notices.append(record.notice_key)
        return True

    async def _serve_refusal_notice(self) -> None:
        """Wilful refusal: a notice that states, truthfully, the steps that will follow."""
        strategy = self._require_state().strategy
        legal_in_days = max(0, strategy.stages.legal - self._collection_dpd())
        await self._serve_letter(
            "refusal_notice",
            Target.BORROWER,
            {
                "legal_in_days": str(legal_in_days),
                "referral_after_days": str(strategy.referral_after_days),
            },
        )

    async def _record_payment(self, entry: PaymentEntry) -> str | None:
        """Write the payment to the ledger; returns why it was refused, if it was.

        The ledger refuses a payment id it already holds with other details (another amount or
        another loan). That is a fact about the payment, not a failure of the collection.
        """
        try:
            await self._activity(
                LedgerActivities.record_payment, entry, f"record payment {entry.payment.payment_id}"
            )
        except ActivityError as failure:
            cause = failure.cause
            if isinstance(cause, ApplicationError) and cause.type == PAYMENT_CONFLICT:
                return cause.message
            raise
        return None

    async def _stage_changed(self, from_stage: str) -> None:
        machine, state = self._require_machine(), self._require_state()
        now = self._now()
        state.stage = machine.stage
        state.stage_entered_at = now
        state.entered_stages.append(machine.stage)
        state.queued_messages = []
        await self._activity(
            LedgerActivities.record_stage_change,
            StageChange(
                loan_id=self._loan.loan_id,
                sequence=len(state.entered_stages) - 1,
                from_stage=from_stage,
                to_stage=machine.stage,
                days_past_due=self._dpd(now),
                outstanding_minor=state.outstanding_minor,
                at=now,
            ),
            f"stage {from_stage} → {machine.stage}",
        )
        await self._perform(machine.take_actions())
        self._publish()

    async def _perform(self, actions: list[str]) -> None:
        """Carry out what the machine asked for on entering a stage."""
        state = self._require_state()
        for action in actions:
            if action in STAGE_MESSAGES:
                state.queued_messages.append(STAGE_MESSAGES[action])
            elif action == Action.LEGAL_NOTICE:
                await self._serve_legal_notice()
            elif action == Action.VERIFY_DEATH:
                await self._verify_death()
            elif action == Action.ESTATE_INQUIRY:
                await self._serve_letter("estate_inquiry", Target.ESTATE)
            elif action in (Action.ARRANGEMENT, Action.FORBEARANCE):
                await self._offer_plan(action)

    async def _serve_legal_notice(self) -> None:
        state = self._require_state()
        facts = {"referral_after_days": str(state.strategy.referral_after_days)}
        if not await self._serve_letter("legal_notice", Target.BORROWER, facts):
            return
        state.attempt_count += 1
        planner.record_attempt(
            state.history,
            AttemptRecord(
                self._now(),
                Channel.LETTER,
                Target.BORROWER,
                self._loan.borrower.borrower_id,
                "letter",
                Outcome.SENT,
            ),
            self._slot_names(),
        )

    # --- outreach -------------------------------------------------------------------------

    async def _plan(self) -> datetime:
        """Choose the next outreach and return when to wake: contact, day boundary or stage end."""
        machine = self._require_machine()
        now = self._now()
        told, self._borrower_changed = self._borrower_changed, False
        self._budget_wait = None
        # While a promise, a dispute or a cease request stands, the stage calls for nothing.
        intent = None if machine.outreach_held else self._intent()
        budgeted = workflow.patched(BORROWER_CONTACT_BUDGET)
        if intent is None:
            self._next = None
        elif not budgeted:
            self._next = None
            planned = self._schedule(intent, now)
            if planned is not None:
                self._next = (intent, planned)
        else:
            held = self._next
            kept = held if held is not None and held[0] == intent and held[1].at > now else None
            # A contact still ahead keeps its place in the ledger, which the other loans plan
            # around; when one of them changes what it may do, it says so (``told``), and the
            # loan asks the ledger again whether the place still stands.
            if kept is None or told:
                self._next = await self._plan_within_budget(intent, now, kept)
        wake_at = self._next_day_boundary(now)
        if self._next is not None:
            wake_at = min(wake_at, self._next[1].at)
        elif self._budget_wait is not None and intent is not None:
            # Refused for now by the borrower's budget: look again when the rule lifts.
            wake_at = min(wake_at, max(self._budget_wait[0], now))
        for deadline in self._deadlines():
            wake_at = min(wake_at, max(deadline, now))
        return wake_at

    def _intent(self) -> outreach.Intent | None:
        state, machine = self._require_state(), self._require_machine()
        return outreach.next_intent(
            stage=machine.stage,
            strategy=state.strategy,
            profile=self._profile,
            history=state.history,
            queued_messages=state.queued_messages,
            nudges_in_streak=state.history.nudges_in_streak,
            borrower_id=self._loan.borrower.borrower_id,
            contact_ids=[c.contact_id for c in self._loan.contacts],
            contact_numbers={c.contact_id: budget.number_key(c.phone) for c in self._loan.contacts},
        )

    async def _plan_within_budget(
        self,
        intent: outreach.Intent,
        now: datetime,
        kept: tuple[outreach.Intent, planner.PlannedContact] | None = None,
    ) -> tuple[outreach.Intent, planner.PlannedContact] | None:
        """Plan the contact (or keep the ``kept`` plan), and hold its place in the borrower's
        budget in the ledger.

        The ledger knows what the borrower's other loans have done and hold; when it refuses
        the planned moment, the loan plans again with that knowledge, from the moment the rule
        lifts. No collection contact is planned before the first day past due.
        """
        state = self._require_state()
        if await self._ceased_across_loans():
            return None
        earliest = max(now, self._first_contact_moment())
        # The rules that pushed the plan past now, for the audit log and the Web UI.
        pushed_by: list[str] = []
        if earliest > now:
            pushed_by.append(f"{planner.Rule.NOT_YET_DUE} until {earliest.isoformat()}")
        for _ in range(MAX_PLANS_PER_WAKE):
            if kept is not None:  # still ahead: the caller keeps only such a plan
                planned = kept[1]
                kept = None
            else:
                fresh = self._schedule(intent, earliest)
                if fresh is None:
                    return None
                planned = replace(fresh, deferred_by=(*pushed_by, *fresh.deferred_by))
            result = await self._reserve(intent, planned.at, now)
            state.history.shared = result.shared
            if result.granted:
                return intent, planned
            if await self._ceased_across_loans() or result.not_before is None:
                return None
            earliest = max(earliest, result.not_before)
            refusal = planner.Decision(False, result.rule, result.not_before, result.across_loans)
            pushed_by.append(planner.describe(refusal))
            self._budget_wait = (earliest, planner.describe(refusal).split(" until ")[0])
        return None

    async def _reserve(
        self, intent: outreach.Intent, at: datetime, now: datetime
    ) -> ReservationResult:
        state = self._require_state()
        state.reservations += 1
        return await workflow.execute_local_activity_method(
            BudgetActivities.reserve_contact,
            self._reservation(intent, at, now, state.reservations),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
            summary=f"reserve {intent.channel} · borrower budget",
        )

    def _reservation(
        self,
        intent: outreach.Intent,
        at: datetime,
        now: datetime,
        number: int,
        *,
        at_contact: bool = False,
    ) -> ContactReservation:
        state = self._require_state()
        return ContactReservation(
            reservation_key=f"{self._loan.loan_id}:reservation:{number}",
            loan_id=self._loan.loan_id,
            borrower_id=self._loan.borrower.borrower_id,
            channel=intent.channel,
            target=intent.target,
            target_id=intent.target_id,
            number=self._number_of(intent.target, intent.target_id),
            at=at,
            expires_at=budget.reservation_lapses(at, state.clock.day_seconds),
            now=now,
            unanswered_streak=state.history.unanswered_streak,
            at_contact=at_contact,
            terms=BudgetTerms(
                jurisdiction=self._loan.jurisdiction,
                timezone=self._loan.borrower.timezone,
                max_calls_per_day=state.strategy.max_calls_per_day,
                min_gap_minutes=state.strategy.min_gap_minutes,
                cross_loan=state.history.cross_loan,
            ),
        )

    async def _ceased_across_loans(self) -> bool:
        """A cease request on another of the borrower's loans covers this one too (strategy's
        cross-loan policy): the loan takes the ceased situation, on the record."""
        history = self._require_state().history
        if history.cease_requested or not (
            history.cross_loan.cease and history.shared.cease_requested
        ):
            return False
        await self._situation_event("cease_requested", "borrower", self._now())
        return True

    async def _tell_siblings(self, reason: str) -> None:
        """Tell the borrower's other running loans that the shared budget changed, so that none
        keeps a plan the change forbids (the quiet period, a cap, a cease request)."""
        if not workflow.patched(TELL_SIBLINGS):
            return
        siblings = await workflow.execute_local_activity_method(
            BudgetActivities.open_siblings,
            SiblingsQuery(self._loan.borrower.borrower_id, self._loan.loan_id),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
            summary="the borrower's other loans",
        )
        change = BorrowerChange(reason, self._loan.loan_id, self._now())
        for loan_id in siblings:
            try:
                await workflow.get_external_workflow_handle(workflow_id_for(loan_id)).signal(
                    LoanCollection.borrower_changed, change
                )
            except FailureError:
                # Ended meanwhile, or never started here: it has no plan to change.
                workflow.logger.info("loan %s was not told: not running", loan_id)

    def _number_of(self, target: str, target_id: str) -> str:
        """The budget key of the number a contact reaches."""
        if target == Target.CONTACT:
            contact = next(c for c in self._loan.contacts if c.contact_id == target_id)
            return budget.number_key(contact.phone)
        return budget.number_key(self._loan.borrower.phone)

    def _first_contact_moment(self) -> datetime:
        """No collection contact before the first day past due, borrower-local."""
        return clock.day_starts(self._loan.due_date, 1, self._zone)

    def _schedule(self, intent: outreach.Intent, now: datetime) -> planner.PlannedContact | None:
        state = self._require_state()
        number = self._number_of(intent.target, intent.target_id)
        if intent.channel == Channel.CALL and intent.target == Target.BORROWER:
            return planner.plan_borrower_call(
                self._profile,
                state.strategy,
                state.history,
                intent.target_id,
                now,
                self._zone,
                workflow.random(),
                number=number,
            )
        proposal = planner.Proposal(
            now,
            intent.channel,
            intent.target,
            intent.target_id,
            number,
            self._loan.borrower.borrower_id,
        )
        return planner.plan_message(
            self._profile, state.strategy, state.history, proposal, self._zone, workflow.random()
        )

    async def _reach_out(self, intent: outreach.Intent, planned: planner.PlannedContact) -> None:
        """Make the planned contact, if the planner still allows it now (the timer may be late)."""
        state = self._require_state()
        now = self._now()
        budgeted = workflow.patched(BORROWER_CONTACT_BUDGET)
        self._next = None
        proposal = planner.Proposal(
            now,
            intent.channel,
            intent.target,
            intent.target_id,
            self._number_of(intent.target, intent.target_id),
            self._loan.borrower.borrower_id,
            at_contact=True,
        )
        decision = planner.check(
            self._profile,
            state.history,
            proposal,
            self._zone,
            state.strategy if budgeted else None,
        )
        if not decision.allowed:
            if workflow.patched(AUDIT_DENIED_CONTACTS):
                await self._audit_denial(intent, planner.describe(decision), now)
            return
        state.attempt_count += 1
        slot = planner.slot_of(now, state.strategy, self._zone)
        request = ContactRequest(
            idempotency_key=f"{self._loan.loan_id}:attempt:{state.attempt_count}",
            loan_id=self._loan.loan_id,
            borrower_id=self._loan.borrower.borrower_id,
            attempt_no=state.attempt_count,
            channel=intent.channel,
            target=intent.target,
            target_id=intent.target_id,
            slot=slot,
            purpose=intent.purpose,
            template=intent.template,
            stage=state.stage,
            at=now,
            at_local=clock.format_local(now, self._zone),
            timezone=self._loan.borrower.timezone,
            message=outreach.script(state.strategy, intent.template),
            outstanding_minor=state.outstanding_minor,
            currency=self._loan.currency,
            deferred_by=list(planned.deferred_by),
            reservation=(
                self._reservation(intent, now, now, state.reservations, at_contact=True)
                if budgeted
                else None
            ),
        )
        method = (
            ChannelActivities.place_call
            if intent.channel == Channel.CALL
            else ChannelActivities.send_sms
        )
        result = await self._activity(method, request, _attempt_summary(request))
        if result.deferred is not None:
            # The budget filled up since the plan (another loan's contact came first): nothing
            # was sent, and the attempt number is free for the next plan.
            state.attempt_count -= 1
            state.history.shared = result.deferred.shared
            refusal = planner.Decision(
                False,
                result.deferred.rule,
                result.deferred.not_before,
                result.deferred.across_loans,
            )
            await self._audit_denial(intent, planner.describe(refusal), now)
            return
        planner.record_attempt(
            state.history,
            AttemptRecord(
                now,
                intent.channel,
                intent.target,
                intent.target_id,
                slot,
                result.outcome,
                number=proposal.number if budgeted else "",
                borrower_id=self._loan.borrower.borrower_id if budgeted else "",
                loan_id=self._loan.loan_id if budgeted else "",
            ),
            self._slot_names(),
        )
        if budgeted and result.outcome == Outcome.ANSWERED and intent.target == Target.BORROWER:
            await self._tell_siblings("conversation")
        if intent.template in state.queued_messages:
            state.queued_messages.remove(intent.template)
        if intent.template == outreach.NUDGE_TEMPLATE:
            state.history.nudges_in_streak += 1
        state.last_outcome = result.outcome
        state.situation = _situation(state)

    async def _audit_denial(self, intent: outreach.Intent, rule: str, now: datetime) -> None:
        """Every decision of the gate is on record: this one refused the contact."""
        state = self._require_state()
        state.denials += 1
        await self._activity(
            SituationActivities.record_situation_event,
            SituationEvent(
                self._loan.loan_id,
                f"{self._loan.loan_id}:contact_denied:{state.denials}",
                "contact_denied",
                now,
                {
                    "channel": intent.channel,
                    "target": intent.target,
                    "purpose": intent.purpose,
                    "rule": rule,
                },
            ),
            f"{intent.channel} denied · {rule.split(' until ')[0]}",
        )

    async def _sleep_until(self, wake_at: datetime) -> None:
        """Sleep on one timer until ``wake_at`` (collection time) or until a payment arrives."""
        state = self._require_state()
        delay = clock.real_delay(state.clock, wake_at - self._now())
        if delay <= timedelta(0) or self._has_mail():
            return
        local_wake = clock.format_local(wake_at, self._zone)
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                self._has_mail,
                timeout=delay,
                timeout_summary=f"wait for {local_wake} borrower-local",
            )

    # --- reading the state ----------------------------------------------------------------

    def _now(self) -> datetime:
        return clock.collection_now(self._require_state().clock, workflow.now())

    def _dpd(self, at: datetime) -> int:
        return clock.days_past_due(self._loan.due_date, at, self._zone)

    def _paused(self) -> timedelta:
        """Collection time spent in disputes, including one still open."""
        state = self._require_state()
        paused = timedelta(seconds=state.paused_seconds)
        if state.paused_since is not None:
            paused += self._now() - state.paused_since
        return paused

    def _collection_dpd(self) -> int:
        """DPD less the days a dispute paused collection: what the stage thresholds read.

        The true DPD is still what status and search attributes show; a loan whose dispute is
        rejected resumes in the stage it was in, and its next boundary comes as many days later
        as the dispute lasted.
        """
        return self._dpd(self._now() - self._paused())

    def _days_in_stage(self) -> int:
        state = self._require_state()
        entered = state.stage_entered_at or state.clock.collection_origin
        return (self._now() - entered).days

    def _next_day_boundary(self, now: datetime) -> datetime:
        """The next local midnight, or the moment the legal stage's referral falls due."""
        state = self._require_state()
        boundary = clock.day_starts(self._loan.due_date, self._dpd(now) + 1, self._zone)
        if state.stage == Stage.LEGAL and state.stage_entered_at is not None:
            referral = state.stage_entered_at + timedelta(days=state.strategy.referral_after_days)
            # Once passed, the referral waits on a pause: the day boundary wakes the loan next.
            if referral > now:
                boundary = min(boundary, referral)
        return boundary

    def _slot_names(self) -> list[str]:
        return [s.name for s in self._require_state().strategy.slots]

    def _payment_problem(self, payment: PaymentReceived) -> str | None:
        if payment.amount_minor <= 0:
            return f"amount_minor must be positive, got {payment.amount_minor}"
        if payment.currency != self._loan.currency:
            return f"currency {payment.currency} does not match the loan's {self._loan.currency}"
        return None

    def _next_action(self) -> NextAction:
        if self._next is None:
            state = self._require_state()
            if state.hold is not None:
                return NextAction(
                    kind="on_hold", at_utc=None, at_local=None, detail=f"by {state.hold.operator}"
                )
            if self._budget_wait is not None and state.stage in Stage.OPEN:
                at, rule = self._budget_wait
                return NextAction(
                    kind="budget_wait",
                    at_utc=at,
                    at_local=clock.format_local(at, self._zone),
                    detail=f"deferred by {rule}",
                )
            kind = "none" if state.stage in (Stage.CURED, Stage.REFERRED) else "stage_review"
            return NextAction(kind=kind, at_utc=None, at_local=None)
        intent, planned = self._next
        kind = "contact" if intent.target == Target.CONTACT else intent.channel
        detail = f"{intent.purpose} · {planned.slot} slot"
        # The details name the borrower-level rule when it is what deferred the contact.
        across = [d for d in planned.deferred_by if planner.ACROSS_LOANS in d]
        if across:
            detail += f" · deferred by {across[0].split(' until ')[0]}"
        return NextAction(
            kind=kind,
            at_utc=planned.at,
            at_local=clock.format_local(planned.at, self._zone),
            detail=detail,
        )

    def _publish(self) -> None:
        """Keep search attributes and the UI's current details in step with the state."""
        state = self._require_state()
        now = self._now()
        next_action = self._next_action()
        outstanding = format_minor(state.outstanding_minor, self._loan.currency)
        last_outcome = state.last_outcome or "-"
        values: dict[SearchAttributeKey[Any], Any] = {
            sa.LOAN_ID: self._loan.loan_id,
            sa.COLLECTION_STAGE: state.stage,
            sa.DAYS_PAST_DUE: self._dpd(now),
            sa.OUTSTANDING_MINOR: state.outstanding_minor,
            sa.SITUATION: state.situation,
            sa.BROKEN_PROMISES: state.broken_promises,
            sa.NEXT_CONTACT_AT: next_action.at_utc,
        }
        if workflow.patched(SEARCH_ATTRIBUTES_ON_CHANGE):
            # Only what changed since the last upsert (or since the run began: continue-as-new
            # carries the attributes over), so most workflow tasks upsert nothing.
            values = {k: v for k, v in values.items() if self._published.get(k.name) != v}
            self._published.update({k.name: v for k, v in values.items()})
        updates: list[SearchAttributeUpdate[Any]] = [
            key.value_set(value) if value is not None else key.value_unset()
            for key, value in values.items()
        ]
        if updates:
            workflow.upsert_search_attributes(updates)
        workflow.set_current_details(
            "\n".join(
                [
                    loan_summary(self._loan),
                    f"**Stage** {state.stage} · **DPD** {self._dpd(now)}",
                    f"**Outstanding** {outstanding} {self._loan.currency}",
                    f"**Situation** {state.situation} · **Last outcome** {last_outcome}",
                    f"**Next** {next_action.kind} {next_action.detail}".rstrip()
                    + (
                        f" at {next_action.at_local} (UTC {next_action.at_utc:%Y-%m-%d %H:%M})"
                        if next_action.at_utc is not None
                        else ""
                    ),
                    *self._hold_details(),
                ]
            )
        )

    def _hold_details(self) -> list[str]:
        # The reason is an operator's free text and may name the borrower: it stays in the
        # (encrypted) payloads and the ledger, never in the details the UI shows in clear.
        hold = self._require_state().hold
        if hold is None:
            return []
        since = clock.format_local(hold.since, self._zone)
        return [f"**Paused** by {hold.operator} since {since} borrower-local"]

    def _summary(self) -> CollectionSummary:
        state = self._require_state()
        open_stages = [s for s in state.entered_stages if s in Stage.OPEN]
        return CollectionSummary(
            loan_id=self._loan.loan_id,
            final_stage=state.stage,
            resolved_in=open_stages[-1] if open_stages else Stage.EARLY,
            days_past_due=self._dpd(self._now()),
            outstanding_minor=state.outstanding_minor,
            recovered_minor=state.recovered_minor,
            currency=self._loan.currency,
            attempt_count=state.attempt_count,
            payments=len(state.applied_payment_ids),
            notices=list(state.notices),
            ended_at=self._now(),
            broken_promises=state.broken_promises,
            situation=state.situation,
        )

    async def _activity(
        self, method: Callable[[Any, ArgT], Awaitable[ResultT]], arg: ArgT, summary: str
    ) -> ResultT:
        return await workflow.execute_activity_method(
            method,
            arg,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
            summary=summary,
        )

    def _require_state(self) -> CollectionState:
        assert self._state is not None, "state is set before the first await"
        return self._state

    def _require_machine(self) -> CollectionMachine:
        assert self._machine is not None
        return self._machine


def loan_summary(loan: Loan) -> str:
    """What the Web UI shows for a collection at a glance: no PII, no exact balance.

    It is the static summary of the first run, and the first line of every run's current
    details: continue-as-new cannot carry a static summary to the next run.
    """
    band = amount_band(loan.outstanding_minor, loan.currency)
    return f"Loan {loan.loan_id} · {loan.product} · {band} · {loan.jurisdiction}"


def _attempt_summary(request: ContactRequest) -> str:
    who = "reference" if request.target == Target.CONTACT else "borrower"
    return f"{request.channel} #{request.attempt_no} · {who} · {request.slot} slot"


def _situation(state: CollectionState) -> str:
    """The situation as far as outreach alone can tell it, when no outcome has said more."""
    if state.situation not in OUTREACH_SITUATIONS:
        return state.situation
    if state.history.last_conversation_at is not None and state.history.unanswered_streak == 0:
        return "contacted"
    if state.history.unanswered_streak > 0:
        return "no_answer"
    return state.situation
