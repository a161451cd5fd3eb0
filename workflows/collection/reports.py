"""What others report, applied in order: payments, contact outcomes, decisions and holds.

The signal and update handlers put each report in the inbox; the main loop calls these steps,
which write it to the ledger and let the machine see what it means. Each report is applied once:
its id is kept in the state (``applied_payment_ids``, ``seen_signal_ids``) across runs.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import queue
from workflows.collection import book, contacts, events, letters, patches, people, rules, view
from workflows.collection.context import Collection, refusal_of
from workflows.collection.inbox import Inbox
from workflows.commands import (
    OUTCOME_CONFLICT,
    PAYMENT_CONFLICT,
    ComplaintCase,
    OutcomeRecord,
    PaymentEntry,
    RejectedPayment,
    SituationEvent,
)
from workflows.queue import CaseKind
from workflows.types import RECENT_REFUSALS, ContactOutcome, OperatorHold, RefusedMessage
from workflows.vocabulary import PHONE_CONVERSATIONS, HardshipTerm, Situation

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from activities.situations import SituationActivities


async def apply_all(c: Collection, inbox: Inbox) -> None:
    """Apply everything waiting, in order: changes of the loan book, payments, outcomes (then
    decisions and dispute resolutions), operators' holds, then their actions on cases."""
    await audit_refusals(c, inbox)
    await book.apply_loan_changes(c, inbox)
    await apply_payments(c, inbox)
    await apply_outcomes(c, inbox)
    await apply_hold_changes(c, inbox)
    await people.apply_actions(c, inbox)
    await audit_refusals(c, inbox)  # an action whose case closed meanwhile
    inbox.in_hand = None


async def audit_refusals(c: Collection, inbox: Inbox) -> None:
    """Keep each message the limits refused in the audit log: what was wrong, not the value."""
    while inbox.refused:
        c.state.refusals += 1
        await c.write(
            SituationActivities.record_situation_event,
            SituationEvent(
                c.loan.loan_id,
                f"{c.key}:refused:{c.state.refusals}",
                "message_refused",
                c.now(),
                {"problem": inbox.refused[0]},
            ),
            "message refused",
        )
        message, _, problem = inbox.refused.pop(0).partition(": ")
        recent = c.state.recent_refusals
        recent.append(RefusedMessage(message=message, problem=problem, at=c.now()))
        del recent[:-RECENT_REFUSALS]


async def apply_payments(c: Collection, inbox: Inbox) -> None:
    """Write each waiting payment to the ledger and let the machine see the new balance."""
    machine, state = c.machine, c.state
    while inbox.payments:
        # Peek, and pop only once the ledger write is done: a duplicate signal that arrives
        # while it is in flight must still find this payment id in the inbox (the signal
        # handler's de-duplication looks there), or it would be applied a second time.
        pending = inbox.payments[0]
        payment = pending.payment
        inbox.in_hand = payment.payment_id
        rejection = pending.rejection
        before = state.outstanding_minor
        after = max(0, before - payment.amount_minor)
        if rejection is None:
            rejection = await _record_payment(
                c,
                PaymentEntry(
                    loan_id=c.loan.loan_id,
                    payment=payment,
                    outstanding_before=before,
                    outstanding_after=after,
                    overpaid_minor=max(0, payment.amount_minor - before),
                    stage=state.stage,
                ),
            )
        if rejection is not None:
            await c.write(
                LedgerActivities.record_rejected_payment,
                RejectedPayment(c.loan.loan_id, payment, rejection),
                f"reject payment {payment.payment_id}",
            )
            inbox.rejections[payment.payment_id] = rejection
            inbox.payments.pop(0)
            continue
        inbox.payments.pop(0)
        state.applied_payment_ids.append(payment.payment_id)
        state.outstanding_minor = after
        if state.total_outstanding_minor is not None:
            state.total_outstanding_minor = max(
                0, state.total_outstanding_minor - payment.amount_minor
            )
        if not pending.in_book:
            # Taken off the core's figures until the loan book lists it (``book``).
            state.payments_not_in_book[payment.payment_id] = payment.amount_minor
        state.recovered_minor += before - after
        if machine.is_closed:
            continue
        # What the payment meets first: a standing promise, or the plan's instalments.
        if state.promise is not None:
            state.promise.paid_minor += before - after
            if state.promise.paid_minor >= state.promise.amount_minor:
                await events.settle_promise(c, kept=True)
        elif state.arrangement is not None:
            await events.pay_instalments(c, before - after)
        stage = machine.stage
        if machine.observe_payment():
            await events.stage_changed(c, stage)
        view.changed(c)


async def _record_payment(c: Collection, entry: PaymentEntry) -> str | None:
    """Write the payment to the ledger; returns why it was refused, if it was.

    The ledger refuses a payment id it already holds with other details (another amount or
    another loan). That is a fact about the payment, not a failure of the collection.
    """
    try:
        await c.write(
            LedgerActivities.record_payment, entry, f"record payment {entry.payment.payment_id}"
        )
    except (ActivityError, ApplicationError) as failure:
        conflict = refusal_of(failure, PAYMENT_CONFLICT)
        if conflict is None:
            raise
        return conflict.message
    return None


async def apply_outcomes(c: Collection, inbox: Inbox) -> None:
    """Record each reported outcome, then let the machine see what it revealed; then the
    decisions people took and the disputes resolved."""
    machine, state = c.machine, c.state
    while inbox.outcomes and not machine.is_closed:
        outcome = inbox.outcomes[0]
        inbox.in_hand = outcome.outcome_id
        now = c.now()
        conversation = _is_reported_conversation(c, outcome)
        if not await _record_outcome(c, outcome, conversation=conversation):
            inbox.outcomes.pop(0)
            continue
        if conversation:
            contacts.count_conversation(c, min(outcome.at, now))
            await contacts.tell_siblings(c, "conversation")
        if outcome.complaint is not None:
            await _open_complaint(c, outcome, now)
        if outcome.cease:
            # Recorded before the dispute, so that a cease request outlives a dispute.
            await events.situation_event(c, "cease_requested", outcome.outcome_id, now)
            await contacts.tell_siblings(c, "cease_requested")
        if outcome.dispute:
            await events.situation_event(c, "dispute_opened", outcome.outcome_id, now)
        if outcome.promise is not None and machine.accepts("promise_made"):
            await events.make_promise(c, outcome, now)
        if outcome.refusal:
            events.report_label(c, Situation.REFUSAL)
            # Nothing reaches a borrower reported dead, even by the report that says so (a
            # relative refusing on the estate's behalf): the estate has letters of its own.
            if not (c.lean and outcome.death_reported_by is not None):
                await letters.serve_refusal_notice(c)
        if outcome.death_reported_by is not None:
            await events.situation_event(c, "death_reported", outcome.outcome_id, now)
        elif outcome.hardship is not None:
            event = (
                "short_term_hardship"
                if outcome.hardship.term == HardshipTerm.SHORT
                else "long_term_hardship"
            )
            await events.situation_event(c, event, outcome.outcome_id, now)
        if outcome.situation is not None:
            events.report_label(c, outcome.situation)
        state.seen_signal_ids.append(outcome.outcome_id)
        inbox.outcomes.pop(0)
        view.changed(c)
    while inbox.decisions and not machine.is_closed:
        decision = inbox.decisions[0]
        inbox.in_hand = decision.decision_id
        decided = rules.REVIEW_EVENTS.get((decision.review, decision.outcome))
        if decided is not None:
            await events.situation_event(c, decided, decision.decision_id, c.now())
        state.seen_signal_ids.append(decision.decision_id)
        inbox.decisions.pop(0)
        view.changed(c)
    while inbox.resolutions and not machine.is_closed:
        resolution = inbox.resolutions[0]
        inbox.in_hand = resolution.resolution_id
        if machine.situation == "disputed":
            event = "dispute_closed" if resolution.upheld else "dispute_rejected"
            await events.situation_event(c, event, resolution.resolution_id, c.now())
        state.seen_signal_ids.append(resolution.resolution_id)
        inbox.resolutions.pop(0)
        view.changed(c)


def _is_reported_conversation(c: Collection, outcome: ContactOutcome) -> bool:
    """A right-party phone conversation that no dialer attempt of ours has counted already (a
    collector's own call, an inbound call): it counts for every conversation rule."""
    return (
        outcome.right_party
        and outcome.channel in PHONE_CONVERSATIONS
        and outcome.attempt_key is None
        and c.patched(patches.REPORTED_CONVERSATIONS_COUNT)
    )


async def _record_outcome(c: Collection, outcome: ContactOutcome, *, conversation: bool) -> bool:
    """Keep the outcome in the ledger. False when the ledger holds its id for another loan: the
    report is refused there (and audited), and the collection goes on without it."""
    try:
        await c.write(
            SituationActivities.record_contact_outcome,
            OutcomeRecord(c.loan.loan_id, outcome, c.state.stage, conversation),
            f"record outcome {outcome.outcome_id} from {outcome.source}",
        )
    except (ActivityError, ApplicationError) as failure:
        conflict = refusal_of(failure, OUTCOME_CONFLICT)
        if conflict is None:
            raise
        workflow.logger.warning("outcome %s refused: %s", outcome.outcome_id, conflict.message)
        return False
    return True


async def _open_complaint(c: Collection, outcome: ContactOutcome, now: datetime) -> None:
    """A complaint is its own case, routed by category, apart from the repayment."""
    category = outcome.complaint or ""
    case_id = f"{c.key}:complaint:{outcome.outcome_id}"
    route = c.state.strategy.complaint_routes.get(category, "customer_relations")
    await c.write(
        SituationActivities.open_complaint_case,
        ComplaintCase(
            case_id=case_id,
            loan_id=c.loan.loan_id,
            category=category,
            route=route,
            opened_at=now,
            note=outcome.note,
        ),
        f"open complaint case · {category}",
    )
    c.state.complaint_cases.append(case_id)
    await people.open_case(
        c, CaseKind.COMPLAINT, queue.COMPLAINT_ASKED, now, case_id=case_id, team=route
    )


async def apply_hold_changes(c: Collection, inbox: Inbox) -> None:
    """Pause or resume as operators asked; each change is kept in the audit log."""
    machine, state = c.machine, c.state
    while inbox.hold_changes and not machine.is_closed:
        change = inbox.hold_changes[0]
        inbox.in_hand = change.request.request_id
        request, now = change.request, c.now()
        if change.pause != (state.hold is not None):
            was_paused = machine.collection_paused
            state.hold = (
                OperatorHold(request.reason or "not given", request.operator, now)
                if change.pause
                else None
            )
            rules.track_pause(
                state, was_paused=was_paused, paused_now=machine.collection_paused, now=now
            )
            if change.pause:
                c.next = None  # what was planned is no longer going to happen
            state.holds += 1
            action = "collection_paused" if change.pause else "collection_resumed"
            await c.write(
                SituationActivities.record_situation_event,
                SituationEvent(
                    c.loan.loan_id,
                    f"{c.key}:hold:{state.holds}",
                    action,
                    now,
                    {"reason": request.reason, "operator": request.operator},
                ),
                f"{action.replace('_', ' ')} by {request.operator}",
            )
        if request.request_id:
            state.seen_signal_ids.append(request.request_id)
        inbox.hold_changes.pop(0)
        view.changed(c)
