"""When an activity gives up: the loan waits for a person, with the reason on record.

Activities retry what may pass (a lost connection, a restarting database, a provider timing out)
within their limits (``context.GIVE_UP_AFTER``), and give up at once on what cannot (the ledger
refusing the data: ``activities.errors``). The main loop hands a failure here. The message being
applied, if any, is set aside for good (a payment's update is answered with the reason), the
collection is paused as an operator's hold would pause it, with ``overdue`` as the operator and
the failure as the reason, and the audit log says so. The loan then sleeps until a person
resumes it (``overdue resume``): it never retries in a loop, and nothing it did before is lost.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.collection import rules, view
from workflows.collection.context import MAX_REASON, Collection, reason_of
from workflows.collection.inbox import Inbox
from workflows.commands import SituationEvent
from workflows.types import OperatorHold

with workflow.unsafe.imports_passed_through():
    from activities.situations import SituationActivities


async def hold_for_a_person(
    c: Collection, inbox: Inbox, failure: ActivityError | ApplicationError
) -> None:
    """Set the failed message aside, pause the collection with the reason, and audit both."""
    state, machine = c.state, c.machine
    reason = reason_of(failure)
    set_aside = inbox.set_aside(reason, state.seen_signal_ids)
    if set_aside is not None:
        reason = f"{set_aside} not applied: {reason}"[:MAX_REASON]
    workflow.logger.warning("collection of %s held: %s", c.loan.loan_id, reason)
    now = c.now()
    if state.hold is None:
        was_paused = machine.collection_paused
        state.hold = OperatorHold(reason, rules.HELD_BY_THE_COLLECTION, now)
        rules.track_pause(state, was_paused=was_paused, paused_now=True, now=now)
    c.next = None  # what was planned is no longer going to happen
    state.holds += 1
    try:
        await c.write(
            SituationActivities.record_situation_event,
            SituationEvent(
                c.loan.loan_id,
                f"{c.key}:hold:{state.holds}",
                "collection_paused",
                now,
                {"reason": reason, "operator": rules.HELD_BY_THE_COLLECTION},
            ),
            f"collection paused: {reason}"[:MAX_REASON],
        )
    except (ActivityError, ApplicationError) as audit_failure:
        # The ledger itself is what failed: the hold, its reason and the search attributes
        # still tell operators, and resuming is audited once the ledger is back.
        workflow.logger.warning("hold of %s not audited: %s", c.loan.loan_id, audit_failure)
    view.changed(c)
