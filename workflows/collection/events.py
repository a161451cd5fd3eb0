"""Events into the collection machine, and what the states they lead to call for.

Each step sends the machine an event, records it in the ledger, and carries out the actions the
new state asks for: a stage's message or legal notice, a death verification, an instalment plan.
Promises and plans live here too, since keeping or breaking one is an event of the machine.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

from workflows import clock
from workflows.collection import letters, patches, rules, view
from workflows.collection.context import Collection
from workflows.commands import (
    BrokenPromise,
    DeathCheck,
    DeathCheckResult,
    PromiseRecord,
    PromiseSettlement,
    SituationEvent,
    StageChange,
)
from workflows.machine import Action, Calendar
from workflows.types import (
    ActivePromise,
    CollectionState,
    ContactOutcome,
    Instalment,
    StageEntered,
)
from workflows.vocabulary import Situation, Stage, Target

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from activities.situations import SituationActivities
    from activities.verification import VerificationActivities


async def situation_event(c: Collection, event: str, key: str, now: datetime) -> None:
    """Send a situation event to the machine, and keep the planner's facts in step."""
    machine, state = c.machine, c.state
    if event == "cease_requested":
        # A cease request binds even when the machine stays put (during a dispute): the planner
        # refuses calls and messages from now on, and a rejected dispute ends in it.
        state.history.cease_requested = True
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
    if event in rules.LABEL_ON_RETURN:
        _return_to_normal(state, event)
    elif event not in _KEEP_A_REPORTED_LABEL:
        state.reported_label = None
    rules.track_pause(state, was_paused=was_paused, paused_now=machine.collection_paused, now=now)
    # What stood before no longer holds once the situation moves on.
    if machine.situation != "promised":
        state.promise = None
    if machine.situation not in ("arrangement", "forbearance"):
        state.arrangement = None
    await c.write(
        SituationActivities.record_situation_event,
        SituationEvent(c.loan.loan_id, f"{c.key}:{event}:{key}", event, now),
        event.replace("_", " "),
    )
    if machine.outreach_held:
        c.next = None  # what was planned is no longer going to happen
    if machine.stage != stage:
        await stage_changed(c, stage)
    else:
        await perform(c, machine.take_actions())
    if event == "dispute_rejected" and history.borrower_deceased:
        # A death reported while the dispute stood is verified once it is over.
        await situation_event(c, "death_reported", key, now)


# Histories before ``situation-from-machine`` showed a reported label through these events.
_KEEP_A_REPORTED_LABEL = frozenset(
    {
        "death_verified",
        "verification_overdue",
        "forbearance_approved",
        "estate_claim_filed",
        "estate_written_off",
    }
)


def _return_to_normal(state: CollectionState, event: str) -> None:
    """What the normal situation's label shows after an event that may return to it."""
    state.situation = rules.LABEL_ON_RETURN[event]
    state.reported_label = None


def report_label(c: Collection, label: Situation) -> None:
    """An outcome's refusal, or the situation code it reported.

    In the normal situation, a code that outreach can reveal (contacted, no answer, refusal, a
    broken promise) is what the label shows. A code that names another situation is shown by
    the machine once the fact that makes it is reported (a dispute, a hardship, a death); the
    code itself stays in the outcome's record in the ledger. Older histories showed any code.
    """
    state = c.state
    if c.machine.situation == "normal" and label in rules.OUTREACH_LABELS:
        state.situation = label
        state.reported_label = None
        return
    state.reported_label = None
    if rules.situation_label(state) != label and not c.patched(patches.SITUATION_FROM_MACHINE):
        state.reported_label = label


async def observe_days(c: Collection) -> None:
    """Let the machine see the calendar; a loan may cross more than one boundary at once."""
    machine = c.machine
    while not machine.is_closed:
        before = machine.stage
        if not machine.observe_day(Calendar(c.collection_dpd(), c.days_in_stage())):
            return
        await stage_changed(c, before)


async def stage_changed(c: Collection, from_stage: Stage) -> None:
    """Record the stage the machine moved to, and carry out what it calls for."""
    machine, state = c.machine, c.state
    now = c.now()
    state.stage_entered_at = now
    state.entered_stages.append(machine.stage)
    state.stages_entered.append(StageEntered(machine.stage, now))
    state.queued_messages = []
    change = StageChange(
        loan_id=c.loan.loan_id,
        sequence=len(state.entered_stages) - 1,
        from_stage=from_stage,
        to_stage=machine.stage,
        days_past_due=c.dpd(now),
        outstanding_minor=state.outstanding_minor,
        at=now,
        number=state.number,
    )
    summary = f"stage {from_stage} → {machine.stage}"
    if _stage_changes_as_activities(c):
        await c.activity(LedgerActivities.record_stage_change, change, summary)
    else:
        await c.write(LedgerActivities.record_stage_change, change, summary)
    await perform(c, machine.take_actions())
    view.changed(c)


def _stage_changes_as_activities(c: Collection) -> bool:
    """Whether this stage change is written by an activity rather than inside the task.

    The change's key (its ordinal) holds only if the workflow task that decided it is accepted;
    an activity's command is written with that task or not at all. Older lean histories wrote it
    as a local activity and replay so; histories before lean ones use activities anyway.
    """
    state = c.state
    if c.lean and not state.stage_changes_as_activities:
        state.stage_changes_as_activities = c.patched(patches.STAGE_CHANGES_AS_ACTIVITIES)
    return state.stage_changes_as_activities


async def perform(c: Collection, actions: list[Action]) -> None:
    """Carry out what the machine asked for on entering a state."""
    for action in actions:
        if action in rules.STAGE_MESSAGES:
            c.state.queued_messages.append(rules.STAGE_MESSAGES[action])
        elif action == Action.LEGAL_NOTICE:
            await letters.serve_legal_notice(c)
        elif action == Action.VERIFY_DEATH:
            await verify_death(c)
        elif action == Action.ESTATE_INQUIRY:
            await letters.serve_letter(c, "estate_inquiry", Target.ESTATE)
        elif action in (Action.ARRANGEMENT, Action.FORBEARANCE):
            await offer_plan(c, action)


async def verify_death(c: Collection) -> None:
    """Ask the family for documents, and an institution for confirmation."""
    state, loan = c.state, c.loan
    await letters.serve_letter(c, letters.DOCUMENTS_REQUEST, Target.ESTATE)
    result = await c.activity(
        VerificationActivities.verify_death,
        DeathCheck(
            check_key=f"{c.key}:death_check:{state.death_reported_at}",
            loan_id=loan.loan_id,
            borrower_id=loan.borrower.borrower_id,
            reported_by="contact_outcome",
            reported_at=state.death_reported_at or c.now(),
        ),
        "verify death with the registry",
    )
    if result == DeathCheckResult.VERIFIED:
        await situation_event(c, "death_verified", "registry", c.now())
    elif result == DeathCheckResult.NOT_VERIFIED:
        if c.patched(patches.REGISTRY_MISS_GOES_TO_REVIEW):
            # Registries lag: a missing record does not overrule a report by family. A person
            # decides (``review_decided``, death_verification); until then nothing goes to the
            # borrower. Keyed by the report: each one is verified anew.
            key = f"registry:{state.death_reported_at}"
            await situation_event(c, "registry_not_verified", key, c.now())
        else:
            await situation_event(c, "death_not_verified", "registry", c.now())
    # No record yet: the verification deadline hands the loan to a person.


async def make_promise(c: Collection, outcome: ContactOutcome, now: datetime) -> None:
    """A promise to pay: the loan waits on it until its date (and the grace days) pass."""
    state = c.state
    assert outcome.promise is not None
    state.promises_made += 1
    promise = ActivePromise(
        promise_id=f"{c.key}:promise:{state.promises_made}",
        amount_minor=min(outcome.promise.amount_minor, state.outstanding_minor),
        due_date=outcome.promise.due_date,
        made_at=now,
    )
    await _record_promise(
        c,
        promise.promise_id,
        promise.amount_minor,
        promise.due_date,
        outcome.source,
        f"promise to pay by {promise.due_date}",
    )
    state.promise = promise
    state.reported_label = None
    c.machine.send("promise_made")


async def _record_promise(
    c: Collection, promise_id: str, amount_minor: int, due_date: str, source: str, summary: str
) -> None:
    """Keep a promise (or a plan's instalment, which is one) in the ledger, made now."""
    await c.write(
        SituationActivities.record_promise,
        PromiseRecord(
            promise_id=promise_id,
            loan_id=c.loan.loan_id,
            amount_minor=amount_minor,
            currency=c.loan.currency,
            due_date=due_date,
            made_at=c.now(),
            source=source,
        ),
        summary,
    )


async def meet_deadlines(c: Collection) -> None:
    """Break a promise or an instalment left unpaid, hand an unverified death to a person, and
    serve the letters that waited for the first day past due. An operator's hold defers them:
    they are met once the loan is resumed."""
    state = c.state
    if state.hold is not None:
        return
    now = c.now()
    promise_deadline = rules.promise_deadline(c.loan, state, c.zone)
    if promise_deadline is not None and now >= promise_deadline:
        await settle_promise(c, kept=False)
    instalment = rules.next_instalment(state)
    if instalment is not None and now >= rules.broken_after(
        c.loan, state, c.zone, instalment.due_date
    ):
        await miss_instalment(c, instalment)
    verification = rules.verification_deadline(state, c.machine.situation)
    if verification is not None and now >= verification:
        await situation_event(c, "verification_overdue", "deadline", now)
    await letters.serve_waiting(c)


async def settle_promise(c: Collection, *, kept: bool) -> None:
    """End the standing promise: kept, or broken with its consequences (which may escalate)."""
    machine, state = c.machine, c.state
    promise = state.promise
    assert promise is not None
    status = "kept" if kept else ("partially_kept" if promise.paid_minor > 0 else "broken")
    await c.write(
        SituationActivities.settle_promise,
        PromiseSettlement(promise.promise_id, c.loan.loan_id, status, promise.paid_minor, c.now()),
        f"promise {status.replace('_', ' ')}",
    )
    state.promise = None
    if kept:
        _return_to_normal(state, "promise_kept")
        machine.send("promise_kept")
        return
    await report_broken(c, promise.promise_id, promise.amount_minor, promise.paid_minor)
    _return_to_normal(state, "promise_broken")
    stage = machine.stage
    machine.send("promise_broken")
    if machine.stage != stage:
        await stage_changed(c, stage)


async def report_broken(c: Collection, promise_id: str, amount_minor: int, paid_minor: int) -> None:
    """A broken promise's consequences: a negative credit record and a failed-debit fee
    (none under forbearance, whose fees are paused). The count may escalate the stage."""
    state, loan = c.state, c.loan
    state.broken_promises += 1
    fee = state.strategy.failed_debit_fee_minor.get(loan.currency, 0)
    if c.machine.situation == "forbearance":
        fee = 0
    # Collections with the loan book owe the fee they charge (``patches.LOAN_BOOK``).
    owed = state.total_outstanding_minor is not None and fee > 0
    if owed:
        state.fees_minor += fee
        state.outstanding_minor += fee
        state.total_outstanding_minor = (state.total_outstanding_minor or 0) + fee
    await c.activity(
        SituationActivities.report_broken_promise,
        BrokenPromise(
            promise_id=promise_id,
            loan_id=loan.loan_id,
            borrower_id=loan.borrower.borrower_id,
            amount_minor=amount_minor,
            paid_minor=paid_minor,
            currency=loan.currency,
            fee_minor=fee,
            broken_count=state.broken_promises,
            at=c.now(),
            outstanding_after=state.outstanding_minor if owed else None,
        ),
        f"report broken promise #{state.broken_promises}",
    )


async def offer_plan(c: Collection, kind: str) -> None:
    """An instalment plan over the outstanding balance; each instalment is a promise."""
    state = c.state
    state.arrangements_made += 1
    today = clock.local(c.now(), c.zone).date()
    plan = rules.instalment_plan(kind, c.key, state, today, state.arrangements_made)
    for instalment in plan.instalments:
        await _record_promise(
            c,
            instalment.promise_id,
            instalment.amount_minor,
            instalment.due_date,
            kind,
            f"{kind} instalment due {instalment.due_date}",
        )
    state.arrangement = plan


async def miss_instalment(c: Collection, instalment: Instalment) -> None:
    """A missed instalment is a broken promise, and it ends the plan."""
    status = "partially_kept" if instalment.paid_minor > 0 else "broken"
    await c.write(
        SituationActivities.settle_promise,
        PromiseSettlement(
            instalment.promise_id, c.loan.loan_id, status, instalment.paid_minor, c.now()
        ),
        f"instalment {status.replace('_', ' ')}",
    )
    await report_broken(c, instalment.promise_id, instalment.amount_minor, instalment.paid_minor)
    await situation_event(c, "instalment_missed", instalment.promise_id, c.now())
    c.state.arrangement = None


async def pay_instalments(c: Collection, amount_minor: int) -> None:
    """A payment goes to the plan's instalments in order; each one paid in full is kept."""
    plan = c.state.arrangement
    if plan is None:
        return
    for instalment in rules.pay_instalments(plan, amount_minor):
        await c.write(
            SituationActivities.settle_promise,
            PromiseSettlement(
                instalment.promise_id, c.loan.loan_id, "kept", instalment.paid_minor, c.now()
            ),
            "instalment kept",
        )
