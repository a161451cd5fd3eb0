"""``Collection``: one loan being collected, as every step of the workflow reads and changes it.

The workflow builds one once the loan is opened (or restored after continue-as-new) and hands it
to the steps in ``events``, ``contacts``, ``letters``, ``reports`` and ``view``. It holds the
loan, its carried state and machine, and the contact planned next.

It is also the steps' one port to Temporal: the clock, patches, randomness, activities, signals
to other loans and what operators see all go through its methods, never through ``workflow``
directly. So the steps are plain functions that a test can drive without a server, by
overriding these methods (``tests/unit/test_compliance_properties.py`` does), and what it drives
is the workflow's own code.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import budget, clock, outreach, planner, profiles
from workflows.collection import patches, rules
from workflows.machine import CollectionMachine
from workflows.types import CollectionState, Loan, collection_key
from workflows.vocabulary import Target

with workflow.unsafe.imports_passed_through():
    from zoneinfo import ZoneInfo

ArgT = TypeVar("ArgT")
ResultT = TypeVar("ResultT")
ACTIVITY_TIMEOUT = timedelta(seconds=30)
# Retried at most a minute apart. (A policy is built per call: modules under ``workflows/`` are
# shared by every workflow run in the process and keep no mutable objects.)
ACTIVITY_RETRY_INTERVAL = timedelta(minutes=1)
# How long an activity keeps retrying errors that may pass (a database restarting, a lost
# connection) before the loan stops waiting on it and a person looks (``failures``): a day
# outlasts any outage the team fixes on its own. Errors no retry can fix are not retried.
GIVE_UP_AFTER = timedelta(hours=24)
# A call or message retried later than this could reach the borrower at another moment than
# the one the planner allowed: the attempt counts as failed instead (``contacts.reach_out``).
OUTREACH_GIVES_UP_AFTER = timedelta(minutes=5)
MAX_REASON = 300  # characters of a failure's reason kept on the hold and in the audit log


def activity_retry() -> RetryPolicy:
    return RetryPolicy(maximum_interval=ACTIVITY_RETRY_INTERVAL)


def refusal_of(
    failure: ActivityError | ApplicationError, error_type: str
) -> ApplicationError | None:
    """The activity's own refusal of type ``error_type``, however the activity ran: a local
    activity raises its ``ApplicationError`` as it is, an activity wraps it in ``ActivityError``."""
    error = failure.cause if isinstance(failure, ActivityError) else failure
    if isinstance(error, ApplicationError) and error.type == error_type:
        return error
    return None


def reason_of(failure: ActivityError | ApplicationError) -> str:
    """One line for operators and the audit log: which activity failed, and its last error."""
    cause = failure.cause if isinstance(failure, ActivityError) else failure
    error = cause if isinstance(cause, ApplicationError) else failure
    kind = error.type if isinstance(error, ApplicationError) and error.type else "error"
    # A database's message may echo a stored value: no control character reaches the ledger.
    message = "".join(ch if ch.isprintable() else " " for ch in str(error.message))
    where = (
        f"{failure.activity_type} failed"
        if isinstance(failure, ActivityError)
        else "an activity failed"
    )
    return f"{where}: {kind}: {message}"[:MAX_REASON]


@dataclass
class PlannedOutreach:
    """The contact the loan will make next, and when the planner allowed it."""

    intent: outreach.Intent
    planned: planner.PlannedContact


@dataclass
class Collection:
    """One loan being collected. Only workflow code builds one (it reads ``workflow.now()``)."""

    loan: Loan
    zone: ZoneInfo
    profile: profiles.JurisdictionProfile
    state: CollectionState
    machine: CollectionMachine
    # The contact planned next: kept while it is still ahead and allowed.
    next: PlannedOutreach | None = None
    # When a plan the ledger refused may be tried again, and the rule that refused it.
    budget_wait: tuple[datetime, str] | None = None
    # The search attributes as last upserted (by this run, or as the run began with them).
    published: dict[str, Any] = field(default_factory=dict)
    # This history takes the lean shape (``patches.LEAN_HISTORY``), decided as each run starts.
    lean: bool = False

    def now(self) -> datetime:
        """Collection time: real workflow time, or the demo's compressed clock."""
        return clock.collection_now(self.state.clock, self.real_now())

    # --- the port to Temporal: a test driver overrides these ----------------------------------

    def real_now(self) -> datetime:
        return workflow.now()

    def patched(self, patch_id: str) -> bool:
        """Whether this history takes the change ``patch_id`` gates (see ``patches``)."""
        return patches.takes(self.state, patch_id, lean=self.lean)

    def random(self) -> random.Random:
        return workflow.random()

    async def signal(self, workflow_id: str, name: str, arg: Any) -> None:
        """Signal another loan's workflow; raises ``FailureError`` when it is not running."""
        await workflow.get_external_workflow_handle(workflow_id).signal(name, arg)

    def show(self, updates: Sequence[SearchAttributeUpdate[Any]], details: str) -> None:
        """Upsert search attributes (when there are updates) and set the UI's current details."""
        if updates:
            workflow.upsert_search_attributes(list(updates))
        workflow.set_current_details(details)

    @property
    def key(self) -> str:
        """What this collection's keys in the ledger start with (``types.collection_key``)."""
        return collection_key(self.loan.loan_id, self.state.number)

    def dpd(self, at: datetime) -> int:
        """True days past due at ``at``, as status and search attributes show them."""
        return clock.days_past_due(self.loan.due_date, at, self.zone)

    def collection_dpd(self) -> int:
        """DPD less the days collection was paused: what the stage thresholds read.

        A loan whose dispute is rejected resumes in the stage it was in, and its next boundary
        comes as many days later as the dispute lasted.
        """
        now = self.now()
        return self.dpd(now - rules.paused(self.state, now))

    def days_in_stage(self) -> int:
        entered = self.state.stage_entered_at or self.state.clock.collection_origin
        return (self.now() - entered).days

    def slot_names(self) -> list[str]:
        return [s.name for s in self.state.strategy.slots]

    def number_of(self, target: str, target_id: str) -> str:
        """The budget key of the number a contact reaches."""
        if target == Target.CONTACT:
            contact = next(c for c in self.loan.contacts if c.contact_id == target_id)
            return budget.number_key(contact.phone)
        return budget.number_key(self.loan.borrower.phone)

    async def activity(
        self,
        method: Callable[[Any, ArgT], Awaitable[ResultT]],
        arg: ArgT,
        summary: str,
        give_up_after: timedelta = GIVE_UP_AFTER,
    ) -> ResultT:
        """Run an activity method with the collection's timeout and retries."""
        return await workflow.execute_activity_method(
            method,
            arg,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            schedule_to_close_timeout=give_up_after,
            retry_policy=activity_retry(),
            summary=summary,
        )

    async def write(
        self, method: Callable[[Any, ArgT], Awaitable[ResultT]], arg: ArgT, summary: str
    ) -> ResultT:
        """A short, idempotent ledger write (the ledger's unique keys make a retry harmless): a
        local activity in lean histories, one marker in the workflow task that asked for it."""
        if self.lean:
            return await self.local_activity(method, arg, summary)
        return await self.activity(method, arg, summary)

    async def local_activity(
        self,
        method: Callable[[Any, ArgT], Awaitable[ResultT]],
        arg: ArgT,
        summary: str,
        give_up_after: timedelta = GIVE_UP_AFTER,
    ) -> ResultT:
        """Run a short ledger read or write as a local activity: one marker in the history."""
        return await workflow.execute_local_activity_method(
            method,
            arg,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            schedule_to_close_timeout=give_up_after,
            retry_policy=activity_retry(),
            summary=summary,
        )
