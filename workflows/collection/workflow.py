"""``LoanCollection``: one durable workflow per overdue loan.

The workflow owns no business rule of its own. The collection machine decides the stage and the
situation, the outreach module what to do next, the contact planner when it is allowed, and
activities carry it out. This module holds only the handlers, the main loop and continue-as-new:
the loop applies what was received (``reports``), meets deadlines and day boundaries
(``events``), plans and makes the next contact (``contacts``), publishes what operators see
(``view``), and sleeps on one timer at a time until the next of these or a message.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import clock, limits, profiles, queue
from workflows.collection import (
    contacts,
    events,
    failures,
    patches,
    people,
    reports,
    rules,
    view,
)
from workflows.collection.context import (
    ACTIVITY_TIMEOUT,
    GIVE_UP_AFTER,
    Collection,
    activity_retry,
)
from workflows.collection.inbox import Inbox
from workflows.collection.incoming import (
    NO_INPUT,
    REQUIRED_IN_PAUSE,
    CaseActionIn,
    DecisionIn,
    HoldIn,
    LoanChangeIn,
    OutcomeIn,
    PaymentIn,
    ResolutionIn,
    decode,
)
from workflows.commands import LoadStrategy, OpenLoan, SegmentFacts
from workflows.machine import CollectionMachine
from workflows.money import band_of
from workflows.queue import CaseAction
from workflows.types import (
    BorrowerChange,
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
    LoanChanged,
    PaymentReceived,
    PaymentResult,
    ReviewDecision,
    StageEntered,
)
from workflows.vocabulary import Stage

M = TypeVar("M")

with workflow.unsafe.imports_passed_through():
    from zoneinfo import ZoneInfo

    from activities.ledger import LedgerActivities
    from activities.strategy import StrategyActivities


@workflow.defn(name="LoanCollection")
class LoanCollection:
    """Collects one overdue loan, from its first day past due to cure or legal referral."""

    @workflow.init
    def __init__(self, input: CollectionInput) -> None:
        self._loan = input.loan
        self._zone = ZoneInfo(input.loan.borrower.timezone)
        self._state: CollectionState | None = input.state
        self._inbox = Inbox.carried_in(input.state)
        # Set once the loan is opened, or restored from the state an earlier run handed over.
        self._collection: Collection | None = None

    @workflow.run
    async def run(self, input: CollectionInput) -> CollectionSummary:
        restored = self._state is not None
        # Decided first thing: a collection opening on this code takes every gate at once, and
        # its later runs find that in the state. Lean is decided once per run otherwise, so that
        # every run of a newer history takes it.
        gates = self._state.gates_at_open if self._state is not None else None
        if gates is None:
            gates = workflow.patched(patches.GATES_AT_OPEN)
        lean = gates or workflow.patched(patches.LEAN_HISTORY)
        state = (
            self._state
            if self._state is not None
            else await self._open(input, lean=lean, gates_at_open=gates)
        )
        self._state = state
        # Restored as it was, without entry actions: they ran before continue-as-new.
        machine = CollectionMachine(state, restore=restored)
        c = self._collection = Collection(
            loan=self._loan,
            zone=self._zone,
            profile=profiles.profile_for(self._loan.jurisdiction),
            state=state,
            machine=machine,
            published={
                pair.key.name: pair.value for pair in workflow.info().typed_search_attributes
            },
            lean=lean,
        )
        if not state.console and c.patched(patches.CONSOLE_ATTRIBUTES):
            # Asked as each run begins until one takes it: the SDK keeps a patch's answer for
            # the whole run, so a running loan takes it at its next run.
            state.console = True
        Inbox.taken_over(state)
        stage_at_start = machine.stage
        await events.perform(c, machine.take_actions())
        view.changed(c)

        while True:
            try:
                if await self._step(c, input, stage_at_start):
                    break
            except (ActivityError, ApplicationError) as failure:
                # An activity gave up (its limits, or an error no retry can fix): a person
                # looks, and the loan waits for them instead of failing or looping.
                await failures.hold_for_a_person(c, self._inbox, failure)

        # Payments that arrive while the loan closes are still recorded (as overpayments), and
        # every update waiting on one gets its answer before the workflow completes. A pause or
        # resume has nothing left to act on.
        self._inbox.hold_changes.clear()
        while self._inbox.payments or not workflow.all_handlers_finished():
            await reports.apply_payments(c, self._inbox)
            await workflow.wait_condition(
                lambda: bool(self._inbox.payments) or workflow.all_handlers_finished()
            )
        c.next = None
        view.publish(c, ending=f"closed: {c.state.stage}")
        return view.summary(c)

    async def _step(self, c: Collection, input: CollectionInput, stage_at_start: Stage) -> bool:
        """One turn of the main loop: apply what was received, meet deadlines and the calendar,
        then plan, sleep until the next moment or message, and act if the moment came.

        Returns whether the loan closed. A turn that hands over to a new run does not return.
        """
        machine = c.machine
        await reports.apply_all(c, self._inbox)
        await events.meet_deadlines(c)
        if not machine.is_closed:
            await events.observe_days(c)
        await people.keep(c)
        if machine.is_closed:
            return True
        if machine.stage != stage_at_start:
            await self._continue_as_new(c, input)
            return False  # only reached when a waiting payment closed the loan instead
        told, self._inbox.borrower_changed = self._inbox.borrower_changed, False
        wake_at = await contacts.plan(c, told=told)
        view.publish(c)
        await self._sleep_until(c, wake_at)
        if self._inbox.has_mail():
            return False
        if c.next is not None and c.now() >= c.next.planned.at:
            await contacts.reach_out(c, c.next)
        if workflow.info().is_continue_as_new_suggested():
            await self._continue_as_new(c, input)
        return False

    # --- signals, updates and the query ----------------------------------------------------

    @workflow.signal
    def payment_received(self, payment: PaymentIn = NO_INPUT) -> None:
        """A payment service reports money in. Idempotent by ``payment_id``."""
        decoded = self._decoded("payment_received", payment, PaymentReceived)
        if decoded is None:
            return
        if self._refused("payment_received", limits.payment_problem(decoded, positive=False)):
            return
        problem = rules.payment_problem(decoded, self._loan.currency)
        if not self._inbox.take_payment(decoded, self._applied_payment_ids(), problem):
            workflow.logger.info("payment %s already applied; ignored", decoded.payment_id)

    @workflow.signal
    def contact_outcome(self, outcome: OutcomeIn = NO_INPUT) -> None:
        """A collector, a dialer, an agent desk or the simulator reports what a contact revealed.

        Idempotent by ``outcome_id``.
        """
        decoded = self._decoded("contact_outcome", outcome, ContactOutcome)
        if decoded is None:
            return
        if self._refused("contact_outcome", limits.outcome_problem(decoded)):
            return
        if self._inbox.first_sight(decoded.outcome_id, self._seen()):
            self._inbox.outcomes.append(decoded)

    @workflow.signal
    def dispute_resolved(self, resolution: ResolutionIn = NO_INPUT) -> None:
        """The decision on a dispute of the debt. Idempotent by ``resolution_id``."""
        decoded = self._decoded("dispute_resolved", resolution, DisputeResolution)
        if decoded is None:
            return
        if self._refused("dispute_resolved", limits.resolution_problem(decoded)):
            return
        if self._inbox.first_sight(decoded.resolution_id, self._seen()):
            self._inbox.resolutions.append(decoded)

    @workflow.signal
    def review_decided(self, decision: DecisionIn = NO_INPUT) -> None:
        """A person's decision on a death verification, a hardship review or an estate.

        Idempotent by ``decision_id``. A decision the loan is not waiting for is recorded in the
        history and otherwise ignored.
        """
        decoded = self._decoded("review_decided", decision, ReviewDecision)
        if decoded is None:
            return
        if self._refused("review_decided", limits.decision_problem(decoded)):
            return
        if self._inbox.first_sight(decoded.decision_id, self._seen()):
            self._inbox.decisions.append(decoded)

    @workflow.signal
    def loan_changed(self, change: LoanChangeIn = NO_INPUT) -> None:
        """The loan book holds a newer version of the loan: an instalment fell due, the core
        system corrected the balance, or the borrower paid through it. Idempotent by version."""
        decoded = self._decoded("loan_changed", change, LoanChanged)
        if decoded is None:
            return
        if self._refused("loan_changed", limits.loan_change_problem(decoded)):
            return
        waiting = [c.version for c in self._inbox.loan_changes]
        known = self._state.book_version if self._state is not None else 0
        if decoded.version > max([known, *waiting]):
            self._inbox.loan_changes.append(decoded)

    @workflow.signal
    def borrower_changed(self, change: BorrowerChange) -> None:
        """Another loan of the borrower had a conversation or took a cease request: the plan
        this loan holds may no longer be allowed. It asks the ledger again at once."""
        workflow.logger.info("borrower budget changed by %s: %s", change.by_loan, change.reason)
        self._inbox.borrower_changed = True

    @workflow.signal
    def pause(self, request: HoldIn = NO_INPUT) -> None:
        """An operator pauses the collection: no outreach and no escalation until resumed.

        A pause must say why and who (``reason`` and ``operator``), whatever its source.
        Payments, outcomes and decisions are still taken. Pausing a paused loan changes nothing.
        """
        decoded = self._decoded("pause", request, HoldRequest, required=REQUIRED_IN_PAUSE)
        if decoded is None:
            return
        if self._refused("pause", limits.hold_problem(decoded, pause=True)):
            return
        self._inbox.queue_hold_change(HoldChange(pause=True, request=decoded), self._seen())

    @workflow.signal
    def resume(self, request: HoldIn = NO_INPUT) -> None:
        """An operator resumes a paused collection where it was. Resuming a running one changes
        nothing."""
        decoded = self._decoded("resume", request, HoldRequest)
        if decoded is None:
            return
        if self._refused("resume", limits.hold_problem(decoded, pause=False)):
            return
        self._inbox.queue_hold_change(HoldChange(pause=False, request=decoded), self._seen())

    @workflow.update
    async def pause_collection(self, request: HoldIn) -> CollectionStatus:
        """Pause, as the ``pause`` signal does, and answer with the state once paused."""
        decoded = decode(request, HoldRequest, required=REQUIRED_IN_PAUSE).message
        assert decoded is not None  # the validator refused any other
        return await self._change_hold(HoldChange(pause=True, request=decoded))

    @pause_collection.validator
    def _validate_pause(self, request: HoldIn) -> None:
        # Refused before anything is written to history: a pause must say why and who, what
        # goes to the audit log must fit it (``workflows.limits``), and a loan already paused
        # is told so instead of seeming paused anew.
        self._validate_hold(request, pause=True)

    @workflow.update
    async def resume_collection(self, request: HoldIn) -> CollectionStatus:
        """Resume, as the ``resume`` signal does, and answer with the state once resumed."""
        decoded = decode(request, HoldRequest).message
        assert decoded is not None  # the validator refused any other
        return await self._change_hold(HoldChange(pause=False, request=decoded))

    @resume_collection.validator
    def _validate_resume(self, request: HoldIn) -> None:
        self._validate_hold(request, pause=False)

    def _validate_hold(self, request: HoldIn, *, pause: bool) -> None:
        decoded = decode(request, HoldRequest, required=REQUIRED_IN_PAUSE if pause else ())
        problem = decoded.problem
        if problem is None and decoded.message is not None:
            problem = limits.hold_problem(decoded.message, pause=pause)
            if problem is None:
                problem = self._hold_unchanged(decoded.message, pause=pause)
        if problem is not None:
            raise ValueError(problem)

    def _hold_unchanged(self, request: HoldRequest, *, pause: bool) -> str | None:
        """Why a pause would change nothing (the loan is paused already), or None.

        A retry of a request already received (its ``request_id``) is answered as the first
        was, not refused; so is a resume of a running loan, which a script may send to be sure.
        """
        if not pause:
            return None
        waiting = self._inbox.hold_changes
        if request.request_id and request.request_id in {
            *self._seen(),
            *(c.request.request_id for c in waiting),
        }:
            return None
        if waiting:
            if not waiting[-1].pause:
                return None
            return "loan: a pause is already waiting to be applied; this one changes nothing"
        hold = self._state.hold if self._state is not None else None
        if hold is None:
            return None
        since = hold.since.isoformat(timespec="seconds")
        return (
            f"loan: already paused by {hold.operator} since {since} ({hold.reason});"
            " this pause changes nothing"
        )

    async def _change_hold(self, change: HoldChange) -> CollectionStatus:
        await workflow.wait_condition(lambda: self._state is not None)
        if self._inbox.queue_hold_change(change, self._seen()):
            # Done once the main loop has taken it, or when the loan closed first.
            await workflow.wait_condition(
                lambda: all(c is not change for c in self._inbox.hold_changes)
            )
        return self.status()

    @workflow.signal
    def case_action(self, action: CaseActionIn = NO_INPUT) -> None:
        """An operator assigns a case or resolves a complaint. Idempotent by ``action_id``."""
        decoded = self._decoded("case_action", action, CaseAction)
        if decoded is None or self._refused("case_action", self._case_action_problem(decoded)):
            return
        if self._inbox.first_sight(decoded.action_id, self._seen()):
            self._inbox.case_actions.append(decoded)

    @workflow.update
    async def take_case_action(self, action: CaseActionIn) -> CollectionStatus:
        """Act on a case, as the ``case_action`` signal does, and answer with the state after."""
        decoded = decode(action, CaseAction).message
        assert decoded is not None  # the validator refused any other
        await workflow.wait_condition(lambda: self._state is not None)
        if self._inbox.first_sight(decoded.action_id, self._seen()):
            self._inbox.case_actions.append(decoded)
            await workflow.wait_condition(
                lambda: all(a is not decoded for a in self._inbox.case_actions)
            )
        return self.status()

    @take_case_action.validator
    def _validate_case_action(self, action: CaseActionIn) -> None:
        decoded = decode(action, CaseAction)
        problem = decoded.problem
        if problem is None and decoded.message is not None:
            problem = self._case_action_problem(decoded.message)
        if problem is not None:
            raise ValueError(problem)

    def _case_action_problem(self, action: CaseAction) -> str | None:
        cases = self._state.cases if self._state is not None else None
        return limits.case_action_problem(action) or queue.action_problem(
            action, cases.open if cases is not None else []
        )

    @workflow.update
    async def apply_payment(self, payment: PaymentIn) -> PaymentResult:
        """Apply a payment and answer with the new balance. Idempotent by ``payment_id``.

        The validator refuses a malformed payment before anything is written to history; a
        duplicate is not an error, it answers with ``applied=False, duplicate=True``.
        """
        decoded = decode(payment, PaymentReceived).message
        assert decoded is not None  # the validator refused any other
        payment = decoded
        await workflow.wait_condition(lambda: self._state is not None)
        state = self._state
        assert state is not None
        payment_id = payment.payment_id
        duplicate = payment_id in state.applied_payment_ids
        self._inbox.take_payment(payment, state.applied_payment_ids)
        await workflow.wait_condition(
            lambda: payment_id in state.applied_payment_ids or payment_id in self._inbox.rejections
        )
        return PaymentResult(
            payment_id=payment_id,
            applied=not duplicate and payment_id in state.applied_payment_ids,
            duplicate=duplicate,
            rejection=self._inbox.rejections.get(payment_id),
            outstanding_minor=state.outstanding_minor,
            currency=self._loan.currency,
            stage=state.stage,
        )

    @apply_payment.validator
    def _validate_payment(self, payment: PaymentIn) -> None:
        # Every field there and of its type, the limits every edge applies (ids, 64-bit
        # amounts, dates), then the loan's own rule.
        decoded = decode(payment, PaymentReceived)
        problem = decoded.problem
        if problem is None and decoded.message is not None:
            problem = limits.payment_problem(decoded.message) or rules.payment_problem(
                decoded.message, self._loan.currency
            )
        if problem is not None:
            raise ValueError(problem)

    @workflow.query
    def status(self) -> CollectionStatus:
        """Where the loan stands, without PII."""
        if self._collection is None:
            # A query can come before the loan is opened (after two activities): ``overdue pay``
            # or ``status`` right after ``start``. Answer from the input instead.
            return view.opening_status(self._loan, self._zone, workflow.now())
        return view.status(self._collection)

    def _decoded(
        self, signal: str, raw: object, kind: type[M], *, required: tuple[str, ...] = ()
    ) -> M | None:
        """The message a signal carries, or None when it was refused (and will be audited) or
        dropped, as the SDK dropped it in histories from before ``malformed-signals-refused``.
        """
        decoded = decode(raw, kind, required=required)
        if decoded.problem is None:
            return decoded.message
        if patches.takes(self._state, patches.MALFORMED_SIGNALS_REFUSED):
            workflow.logger.warning("%s refused: %s", signal, decoded.problem)
            self._inbox.refused.append(f"{signal}: {decoded.problem}")
            return None
        # An older history: the typed handler got what the SDK could convert, defaults and all.
        if decoded.message is None:
            workflow.logger.warning("%s dropped: %s", signal, decoded.problem)
        return decoded.message

    def _refused(self, signal: str, problem: str | None) -> bool:
        """Refuse a signal outside the limits whole, and have the loop audit it.

        Signals come from sources that may skip the edge's checks (a dialer, the Web UI's signal
        form); applied, a NUL or an out-of-range amount would only fail in the ledger later.
        """
        if problem is None or not patches.takes(self._state, patches.SIGNALS_WITHIN_LIMITS):
            return False
        workflow.logger.warning("%s refused: %s", signal, problem)
        self._inbox.refused.append(f"{signal}: {problem}")
        return True

    def _seen(self) -> list[str]:
        return self._state.seen_signal_ids if self._state is not None else []

    def _applied_payment_ids(self) -> list[str]:
        return self._state.applied_payment_ids if self._state is not None else []

    # --- the loop's steps ------------------------------------------------------------------

    async def _open(
        self, input: CollectionInput, *, lean: bool, gates_at_open: bool
    ) -> CollectionState:
        """Load the strategy and open the loan in the ledger: the state of the first run.

        Both are short reads and writes: local activities in lean histories.
        """
        run = workflow.execute_local_activity_method if lean else workflow.execute_activity_method
        strategy = await run(
            StrategyActivities.load_strategy,
            LoadStrategy(
                loan=SegmentFacts(
                    loan_id=input.loan.loan_id,
                    jurisdiction=input.loan.jurisdiction,
                    product=input.loan.product,
                    amount_band=band_of(input.loan.outstanding_minor, input.loan.currency),
                    risk_score=input.loan.risk_score,
                )
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            schedule_to_close_timeout=GIVE_UP_AFTER,
            retry_policy=activity_retry(),
            summary="load collection strategy",
        )
        now = workflow.now()
        await run(
            LedgerActivities.open_loan,
            OpenLoan(
                loan=input.loan,
                opened_at=now,
                number=input.number,
                workflow_id=workflow.info().workflow_id,
                run_id=workflow.info().run_id,
                strategy=strategy.name,
                strategy_version=strategy.version,
                strategy_segment=strategy.segment,
                strategy_champion=strategy.champion,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            schedule_to_close_timeout=GIVE_UP_AFTER,
            retry_policy=activity_retry(),
            summary="open loan in ledger",
        )
        origin = input.clock_origin or now
        anchor = ClockAnchor(
            real_origin=origin, collection_origin=origin, day_seconds=input.day_seconds
        )
        opened_at, now = now, clock.collection_now(anchor, now)
        loan = input.loan
        book = gates_at_open or workflow.patched(patches.LOAN_BOOK)
        return CollectionState(
            strategy=strategy,
            clock=anchor,
            stage=Stage.EARLY,
            outstanding_minor=input.loan.outstanding_minor,
            history=ContactHistory(cross_loan=strategy.cross_loan),
            stage_entered_at=now,
            entered_stages=[Stage.EARLY],
            stages_entered=[StageEntered(Stage.EARLY, now)],
            opened_at=opened_at,
            number=input.number,
            total_outstanding_minor=(
                (loan.total_outstanding_minor or loan.outstanding_minor) if book else None
            ),
            gates_at_open=gates_at_open,
        )

    async def _continue_as_new(self, c: Collection, input: CollectionInput) -> None:
        """Hand the whole state to a new run. Returns only if the loan closed meanwhile."""
        inbox = self._inbox
        if c.patched(patches.APPLY_PAYMENTS_BEFORE_CONTINUE_AS_NEW):
            # An update waiting on a payment must be answered by this run: apply what is in the
            # inbox and let every handler finish before handing over to the next run.
            while inbox.payments or not workflow.all_handlers_finished():
                await reports.apply_payments(c, inbox)
                await reports.apply_hold_changes(c, inbox)
                await workflow.wait_condition(
                    lambda: (
                        bool(inbox.payments or inbox.hold_changes)
                        or workflow.all_handlers_finished()
                    )
                )
            if c.machine.is_closed:
                return  # a waiting payment cured the loan: it ends in this run
        if c.state.console:
            # This run's plan will never be carried out: its list entry and details must not
            # show one (the next run publishes its own).
            c.next, c.budget_wait = None, None
            view.publish(c, ending="continued as new")
        inbox.carry_out(c.state)
        workflow.continue_as_new(
            CollectionInput(loan=input.loan, day_seconds=input.day_seconds, state=c.state)
        )

    async def _sleep_until(self, c: Collection, wake_at: datetime | None) -> None:
        """Sleep on one timer until ``wake_at`` (collection time) or until a message arrives;
        without a moment, until a message arrives."""
        if self._inbox.has_mail():
            return
        if wake_at is None:
            await workflow.wait_condition(self._inbox.has_mail)
            return
        delay = clock.real_delay(c.state.clock, wake_at - c.now())
        if delay <= timedelta(0):
            return
        local_wake = clock.format_local(wake_at, c.zone)
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                self._inbox.has_mail,
                timeout=delay,
                timeout_summary=f"wait for {local_wake} borrower-local",
            )
