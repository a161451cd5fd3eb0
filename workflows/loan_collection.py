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
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import clock, outreach, planner
from workflows import search_attributes as sa
from workflows.commands import (
    PAYMENT_CONFLICT,
    ContactRequest,
    LoadStrategy,
    NoticeRequest,
    OpenLoan,
    PaymentEntry,
    RejectedPayment,
    StageChange,
)
from workflows.machine import Action, CollectionMachine, LoanFacts
from workflows.money import format_minor
from workflows.types import (
    AttemptRecord,
    Channel,
    ClockAnchor,
    CollectionInput,
    CollectionState,
    CollectionStatus,
    CollectionSummary,
    ContactHistory,
    NextAction,
    Outcome,
    PaymentReceived,
    PaymentResult,
    PendingPayment,
    Stage,
    Target,
)

with workflow.unsafe.imports_passed_through():
    from zoneinfo import ZoneInfo

    from activities.channels import ChannelActivities
    from activities.ledger import LedgerActivities
    from activities.notices import NoticeActivities
    from activities.strategy import StrategyActivities

# Patch ids: each gates a change of the command sequence that running histories must not see.
APPLY_PAYMENTS_BEFORE_CONTINUE_AS_NEW = "apply-payments-before-continue-as-new"
ArgT = TypeVar("ArgT")
ResultT = TypeVar("ResultT")
ACTIVITY_TIMEOUT = timedelta(seconds=30)
ACTIVITY_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))
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
        self._rejections: dict[str, str] = {}  # payment id -> why it was not applied

    @workflow.run
    async def run(self, input: CollectionInput) -> CollectionSummary:
        if self._state is None:
            self._state = await self._open(input)
            machine = self._build_machine(self._state.stage)
        else:
            machine = self._build_machine(self._state.stage)
            # Entry actions of the restored stage ran before continue-as-new.
            machine.take_actions()
        self._machine = machine
        self._state.pending_payments = []
        stage_at_start = machine.stage
        await self._perform(machine.take_actions())
        self._publish()

        while True:
            await self._apply_payments()
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
            if self._inbox:
                continue
            if self._next is not None and self._now() >= self._next[1].at:
                await self._reach_out(*self._next)
            if workflow.info().is_continue_as_new_suggested():
                await self._continue_as_new(input)
                continue

        # Payments that arrive while the loan closes are still recorded (as overpayments), and
        # every update waiting on one gets its answer before the workflow completes.
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
        return CollectionState(
            strategy=strategy,
            clock=ClockAnchor(
                real_origin=now, collection_origin=now, day_seconds=input.day_seconds
            ),
            stage=Stage.EARLY,
            outstanding_minor=input.loan.outstanding_minor,
            history=ContactHistory(),
            stage_entered_at=now,
            entered_stages=[Stage.EARLY],
        )

    def _build_machine(self, stage: str) -> CollectionMachine:
        state = self._require_state()
        return CollectionMachine(
            bands=state.strategy.stages,
            facts=LoanFacts(
                days_past_due=self._dpd(self._now()),
                outstanding_minor=state.outstanding_minor,
                days_in_stage=self._days_in_stage(),
            ),
            referral_after_days=state.strategy.referral_after_days,
            stage=stage,
        )

    async def _continue_as_new(self, input: CollectionInput) -> None:
        """Hand the whole state to a new run. Returns only if the loan closed meanwhile."""
        state = self._require_state()
        if workflow.patched(APPLY_PAYMENTS_BEFORE_CONTINUE_AS_NEW):
            # An update waiting on a payment must be answered by this run: apply what is in
            # the inbox and let every handler finish before handing over to the next run.
            while self._inbox or not workflow.all_handlers_finished():
                await self._apply_payments()
                await workflow.wait_condition(
                    lambda: bool(self._inbox) or workflow.all_handlers_finished()
                )
            if self._require_machine().is_closed:
                return  # a waiting payment cured the loan: it ends in this run
        state.pending_payments = list(self._inbox)
        workflow.continue_as_new(
            CollectionInput(loan=input.loan, day_seconds=input.day_seconds, state=state)
        )

    # --- events into the machine ----------------------------------------------------------

    async def _observe_days(self) -> None:
        """Let the machine see the calendar; a loan may cross more than one boundary at once."""
        machine = self._require_machine()
        while not machine.is_closed:
            machine.facts.days_past_due = self._dpd(self._now())
            machine.facts.days_in_stage = self._days_in_stage()
            before = machine.stage
            machine.day_passed()
            if machine.stage == before:
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
            machine.facts.outstanding_minor = after
            stage = machine.stage
            machine.payment_applied()
            if machine.stage != stage:
                await self._stage_changed(stage)
            self._publish()

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

    async def _serve_legal_notice(self) -> None:
        state = self._require_state()
        now = self._now()
        notice_key = f"{self._loan.loan_id}:legal_notice"
        record = await self._activity(
            NoticeActivities.serve_notice,
            NoticeRequest(
                notice_key=notice_key,
                loan_id=self._loan.loan_id,
                kind="legal_notice",
                days_past_due=self._dpd(now),
                outstanding_minor=state.outstanding_minor,
                currency=self._loan.currency,
                issued_at=now,
                facts={"referral_after_days": str(state.strategy.referral_after_days)},
            ),
            "serve legal notice letter",
        )
        state.notices.append(record.notice_key)
        state.attempt_count += 1
        planner.record_attempt(
            state.history,
            AttemptRecord(
                now,
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
        state, machine = self._require_state(), self._require_machine()
        now = self._now()
        self._next = None
        intent = outreach.next_intent(
            stage=machine.stage,
            strategy=state.strategy,
            profile=self._profile,
            history=state.history,
            queued_messages=state.queued_messages,
            nudges_in_streak=state.history.nudges_in_streak,
            borrower_id=self._loan.borrower.borrower_id,
            contact_ids=[c.contact_id for c in self._loan.contacts],
        )
        if intent is not None:
            planned = self._schedule(intent, now)
            if planned is not None:
                self._next = (intent, planned)
        wake_at = self._next_day_boundary(now)
        if self._next is not None:
            wake_at = min(wake_at, self._next[1].at)
        return wake_at

    def _schedule(self, intent: outreach.Intent, now: datetime) -> planner.PlannedContact | None:
        state = self._require_state()
        if intent.channel == Channel.CALL and intent.target == Target.BORROWER:
            return planner.plan_borrower_call(
                self._profile,
                state.strategy,
                state.history,
                intent.target_id,
                now,
                self._zone,
                workflow.random(),
            )
        proposal = planner.Proposal(now, intent.channel, intent.target, intent.target_id)
        return planner.plan_message(
            self._profile, state.strategy, state.history, proposal, self._zone, workflow.random()
        )

    async def _reach_out(self, intent: outreach.Intent, planned: planner.PlannedContact) -> None:
        """Make the planned contact, if the planner still allows it now (the timer may be late)."""
        state = self._require_state()
        now = self._now()
        proposal = planner.Proposal(now, intent.channel, intent.target, intent.target_id)
        if not planner.check(self._profile, state.history, proposal, self._zone).allowed:
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
            message=state.strategy.messages.get(intent.template, ""),
            outstanding_minor=state.outstanding_minor,
            currency=self._loan.currency,
        )
        method = (
            ChannelActivities.place_call
            if intent.channel == Channel.CALL
            else ChannelActivities.send_sms
        )
        result = await self._activity(method, request, _attempt_summary(request))
        planner.record_attempt(
            state.history,
            AttemptRecord(
                now, intent.channel, intent.target, intent.target_id, slot, result.outcome
            ),
            self._slot_names(),
        )
        if intent.template in state.queued_messages:
            state.queued_messages.remove(intent.template)
        if intent.template == outreach.NUDGE_TEMPLATE:
            state.history.nudges_in_streak += 1
        state.last_outcome = result.outcome
        state.situation = _situation(state)

    async def _sleep_until(self, wake_at: datetime) -> None:
        """Sleep on one timer until ``wake_at`` (collection time) or until a payment arrives."""
        state = self._require_state()
        delay = clock.real_delay(state.clock, wake_at - self._now())
        if delay <= timedelta(0) or self._inbox:
            return
        local_wake = clock.format_local(wake_at, self._zone)
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: bool(self._inbox),
                timeout=delay,
                timeout_summary=f"wait for {local_wake} borrower-local",
            )

    # --- reading the state ----------------------------------------------------------------

    def _now(self) -> datetime:
        return clock.collection_now(self._require_state().clock, workflow.now())

    def _dpd(self, at: datetime) -> int:
        return clock.days_past_due(self._loan.due_date, at, self._zone)

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
            boundary = min(boundary, max(referral, now))
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
            kind = "none" if state.stage in (Stage.CURED, Stage.REFERRED) else "stage_review"
            return NextAction(kind=kind, at_utc=None, at_local=None)
        intent, planned = self._next
        kind = "contact" if intent.target == Target.CONTACT else intent.channel
        return NextAction(
            kind=kind,
            at_utc=planned.at,
            at_local=clock.format_local(planned.at, self._zone),
            detail=f"{intent.purpose} · {planned.slot} slot",
        )

    def _publish(self) -> None:
        """Keep search attributes and the UI's current details in step with the state."""
        state = self._require_state()
        now = self._now()
        next_action = self._next_action()
        outstanding = format_minor(state.outstanding_minor, self._loan.currency)
        last_outcome = state.last_outcome or "-"
        updates: list[SearchAttributeUpdate[Any]] = [
            sa.LOAN_ID.value_set(self._loan.loan_id),
            sa.COLLECTION_STAGE.value_set(state.stage),
            sa.DAYS_PAST_DUE.value_set(self._dpd(now)),
            sa.OUTSTANDING_MINOR.value_set(state.outstanding_minor),
            sa.SITUATION.value_set(state.situation),
            sa.BROKEN_PROMISES.value_set(0),
            sa.NEXT_CONTACT_AT.value_set(next_action.at_utc)
            if next_action.at_utc is not None
            else sa.NEXT_CONTACT_AT.value_unset(),
        ]
        workflow.upsert_search_attributes(updates)
        workflow.set_current_details(
            "\n".join(
                [
                    f"**Stage** {state.stage} · **DPD** {self._dpd(now)}",
                    f"**Outstanding** {outstanding} {self._loan.currency}",
                    f"**Situation** {state.situation} · **Last outcome** {last_outcome}",
                    f"**Next** {next_action.kind} {next_action.detail}".rstrip()
                    + (
                        f" at {next_action.at_local} (UTC {next_action.at_utc:%Y-%m-%d %H:%M})"
                        if next_action.at_utc is not None
                        else ""
                    ),
                ]
            )
        )

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


def _attempt_summary(request: ContactRequest) -> str:
    who = "reference" if request.target == Target.CONTACT else "borrower"
    return f"{request.channel} #{request.attempt_no} · {who} · {request.slot} slot"


def _situation(state: CollectionState) -> str:
    """The situation as far as outreach alone can tell it (promises and disputes come later)."""
    if state.history.last_conversation_at is not None and state.history.unanswered_streak == 0:
        return "contacted"
    if state.history.unanswered_streak > 0:
        return "no_answer"
    return state.situation
