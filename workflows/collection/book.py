"""What the lender's core system says of the loan: the loan book's changes, applied.

The delinquency scan tells a running collection (signal ``loan_changed``) when the loan book
holds a newer version of its loan: another instalment fell due, the core corrected the balance,
or the borrower paid through the core (at a branch, by direct debit). The core is the source of
truth for what falls due; the collection adds what it charged itself (failed-debit fees) and
takes off the payments it applied that the core has not counted yet:

    owed = the core's amount overdue + fees - payments the book does not list yet

The payments a change lists go through the collection's one payment path (``reports``), keyed by
payment id: one that also came through the API or a bank file is recorded once, and is no longer
taken off once the book lists it, since the core's figures count it. The amount owed is first
raised by the payments still to apply, and each one then lowers it, so no payment on the way
makes the loan look paid when the core says it is not. Nothing here closes the loan: when what
is owed reaches zero, the machine cures it, as after any payment.
"""

from __future__ import annotations

from temporalio import workflow

from workflows import clock
from workflows.collection import events, view
from workflows.collection.context import Collection
from workflows.collection.inbox import Inbox, loan_change_id
from workflows.commands import LoanChangeEntry
from workflows.types import LoanChanged, PendingPayment

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities


async def apply_loan_changes(c: Collection, inbox: Inbox) -> None:
    """Take in each change of the loan book, in order; the payments it lists wait in the inbox
    for ``reports.apply_payments``, which runs next."""
    while inbox.loan_changes:
        change = inbox.loan_changes[0]
        inbox.in_hand = loan_change_id(change)
        if change.version > c.state.book_version and not c.machine.is_closed:
            to_apply = await _take_in(c, inbox, change)
            stage = c.machine.stage
            # With payments to apply, the payment path sees whether they cleared the balance.
            if not to_apply and c.machine.observe_payment():
                await events.stage_changed(c, stage)
        inbox.loan_changes.pop(0)


async def _take_in(c: Collection, inbox: Inbox, change: LoanChanged) -> int:
    """Take the change's figures; returns the amount of its payments left to apply."""
    state, loan = c.state, c.loan
    before = state.outstanding_minor
    to_apply = 0
    for payment in change.payments:
        # Listed by the book: the core's figures count it from now on.
        state.payments_not_in_book.pop(payment.payment_id, None)
        if payment.payment_id in state.applied_payment_ids:
            continue
        if state.opened_at is not None and payment.paid_at < state.opened_at:
            continue  # before the collection: the borrower's history, not a recovery
        waiting = next(
            (p for p in inbox.payments if p.payment.payment_id == payment.payment_id), None
        )
        if waiting is None:
            inbox.payments.append(PendingPayment(payment, in_book=True))
        else:
            waiting.in_book = True  # it came from another source first: applied once
        to_apply += payment.amount_minor
    not_listed = sum(state.payments_not_in_book.values())
    state.outstanding_minor = (
        max(0, change.overdue_minor + state.fees_minor - not_listed) + to_apply
    )
    state.total_outstanding_minor = (
        max(0, change.outstanding_minor + state.fees_minor - not_listed) + to_apply
    )
    state.book_version = change.version
    # Days past due count from the oldest unpaid instalment, once it is past due.
    oldest = change.oldest_unpaid_due
    if oldest is not None and clock.days_past_due(oldest, c.now(), c.zone) >= 1:
        loan.due_date = oldest
    await c.write(
        LedgerActivities.record_loan_change,
        LoanChangeEntry(
            loan_id=loan.loan_id,
            version=change.version,
            at=c.now(),
            overdue_minor=change.overdue_minor,
            outstanding_before=before,
            # What it will be once the listed payments are applied (each recorded on its own).
            outstanding_after=max(0, state.outstanding_minor - to_apply),
            due_date=loan.due_date,
            payment_ids=[p.payment_id for p in change.payments],
        ),
        f"loan book version {change.version}",
    )
    view.changed(c)
    return to_apply
