"""Record the committed workflow histories that ``test_replay.py`` replays.

Run from the project root, for every story or the ones named::

    python -m tests.replay.record_histories [story ...]

It starts a throwaway embedded PostgreSQL (in a temporary data dir) and the Java time-skipping
server, runs each story's loan with the production worker (see ``STORIES``: a cured loan, a
referred one, promises, disputes, a cease request, a death, a death the registry does not
confirm, hardship, an operator's hold, an evening-only borrower whose call slots learn), and
writes every run of each continue-as-new chain to
``tests/replay/histories/<story>-run<N>.json``.

Add a story when the workflow gains a path (a new signal, update or situation), so that the
corpus covers it from then on. Re-record only when a workflow change is *meant* to be incompatible with the old histories (and
version the workflow, so that running loans keep replaying). Otherwise the old files are the proof
that a change is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from overdue import db
from overdue.config import Config
from overdue.stack import EmbeddedStack, installed_binary, register_search_attributes
from overdue.worker import build_worker
from workflows import clock
from workflows.collection import LoanCollection, rules
from workflows.queue import CaseAction, PersonCase
from workflows.types import (
    TASK_QUEUE,
    Borrower,
    CollectionInput,
    CollectionStatus,
    Contact,
    ContactOutcome,
    DisputeResolution,
    Hardship,
    HoldRequest,
    Loan,
    LoanChanged,
    PaymentReceived,
    Promise,
    ReviewDecision,
    workflow_id_for,
)
from workflows.vocabulary import Review, Stage

HISTORIES = Path(__file__).parent / "histories"


def loan(
    loan_id: str, due_date: str, persona: str = "never_answers", borrower: str | None = None
) -> Loan:
    """A loan of its own borrower, or of ``borrower`` (a name shared by a story's loans)."""
    person = borrower or loan_id
    return Loan(
        loan_id=loan_id,
        # ``never_answers-`` picks the simulated persona that neither answers nor pays, so the
        # only payments and outcomes are the ones signalled here.
        borrower=Borrower(f"{persona}-{person}", "Ann Lee", phone(person), "America/New_York"),
        product="personal",
        principal_minor=100_000,
        outstanding_minor=50_000,
        currency="USD",
        due_date=due_date,
        jurisdiction="us",
        contacts=[
            Contact(f"{loan_id}-c1", "Bo Chen", phone(f"{person}-c1"), "sibling"),
            Contact(f"{loan_id}-c2", "Cy Diaz", phone(f"{person}-c2"), "workplace"),
        ],
    )


def phone(person: str) -> str:
    """A number of each person's own, the same at every recording: stories share one clock, and
    budgets are per number."""
    digits = int(hashlib.sha256(person.encode()).hexdigest(), 16) % 10**7
    return f"+1555{digits:07d}"


async def start(env: WorkflowEnvironment, subject: Loan) -> WorkflowHandle[LoanCollection, object]:
    return await env.client.start_workflow(
        LoanCollection.run,
        CollectionInput(loan=subject),
        id=workflow_id_for(subject.loan_id),
        task_queue=TASK_QUEUE,
        execution_timeout=timedelta(days=60),
    )


async def status_when(
    handle: WorkflowHandle[LoanCollection, object], wanted: str
) -> CollectionStatus:
    """Poll (in real time; the workflow clock stands still) until the loan is in ``wanted``."""
    for _ in range(400):
        try:
            status = await handle.query(LoanCollection.status)
            if status.stage == wanted:
                return status
        except Exception:  # a fresh run answers queries once its first task is done
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{handle.id} never reached {wanted}")


async def wait_applied(handle: WorkflowHandle[LoanCollection, object], payment_id: str) -> None:
    for _ in range(400):
        if payment_id in (await handle.query(LoanCollection.status)).applied_payment_ids:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"payment {payment_id} was never applied")


async def due_yesterday(env: WorkflowEnvironment) -> str:
    return ((await env.get_current_time()) - timedelta(days=1)).date().isoformat()


async def cured(env: WorkflowEnvironment) -> WorkflowHandle[LoanCollection, object]:
    due_date = await due_yesterday(env)
    subject = loan("L-replay-cured", due_date)
    handle = await start(env, subject)
    await status_when(handle, Stage.EARLY)
    middle = clock.day_starts(due_date, 6, ZoneInfo(subject.borrower.timezone)) + timedelta(
        hours=10
    )
    await env.sleep(middle - await env.get_current_time())
    follow = env.client.get_workflow_handle_for(LoanCollection.run, handle.id)
    await status_when(follow, Stage.MIDDLE)
    for payment_id, amount in (("pay-partial", 20_000), ("pay-full", 30_000)):
        paid_at = await env.get_current_time()
        await follow.signal(
            LoanCollection.payment_received,
            PaymentReceived(payment_id, amount, "USD", paid_at, source="replay-recording"),
        )
        await wait_applied(follow, payment_id)
    await handle.result()
    return handle


async def referred(env: WorkflowEnvironment) -> WorkflowHandle[LoanCollection, object]:
    handle = await start(env, loan("L-replay-referred", await due_yesterday(env)))
    await handle.result()
    return handle


# --- situations: one loan per situation and exit ------------------------------------------


Handle = WorkflowHandle[LoanCollection, object]


async def tell(env: WorkflowEnvironment, handle: Handle, key: str, **facts: object) -> None:
    """Report a contact outcome, as a collector would."""
    at = await env.get_current_time()
    outcome = ContactOutcome(
        outcome_id=f"{handle.id}:{key}", source="collector:replay", at=at, **facts
    )  # type: ignore[arg-type]
    await handle.signal(LoanCollection.contact_outcome, outcome)


async def decide(
    env: WorkflowEnvironment, handle: Handle, key: str, review: str, said: str
) -> None:
    at = await env.get_current_time()
    await handle.signal(
        LoanCollection.review_decided,
        ReviewDecision(f"{handle.id}:{key}", review, said, "ops:replay", at),
    )


async def pay_all(env: WorkflowEnvironment, handle: Handle, payment_id: str) -> None:
    """Pay what is left, and wait for the collection to end."""
    left = (await handle.query(LoanCollection.status)).outstanding_minor
    at = await env.get_current_time()
    await handle.signal(
        LoanCollection.payment_received,
        PaymentReceived(f"{handle.id}:{payment_id}", left, "USD", at, source="replay-recording"),
    )
    await handle.result()


async def situation_when(handle: Handle, wanted: str) -> CollectionStatus:
    """Poll until the loan shows ``wanted``: a machine state (``promised``) or a label of the
    older vocabulary (``promise``, ``contacted``), which the stories were written in."""
    for _ in range(400):
        with contextlib.suppress(Exception):
            status = await handle.query(LoanCollection.status)
            label = rules.REGION_LABELS.get(status.situation, status.outreach)
            if wanted in (status.situation, label):
                return status
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{handle.id} never reached situation {wanted}")


async def skip_to_dpd(env: WorkflowEnvironment, subject: Loan, dpd: int) -> None:
    moment = clock.day_starts(subject.due_date, dpd, ZoneInfo(subject.borrower.timezone))
    now = await env.get_current_time()
    if moment + timedelta(hours=1) > now:
        await env.sleep(moment + timedelta(hours=1) - now)


async def promises(env: WorkflowEnvironment) -> Handle:
    """A promise kept, two broken (the second escalates), then payment in full."""
    due = await due_yesterday(env)
    subject = loan("L-replay-promises", due)
    handle = await start(env, subject)
    await status_when(handle, Stage.EARLY)
    day = date.fromisoformat(due)
    await tell(env, handle, "o-1", promise=Promise(10_000, (day + timedelta(days=2)).isoformat()))
    await situation_when(handle, "promise")
    at = await env.get_current_time()
    await handle.signal(
        LoanCollection.payment_received,
        PaymentReceived(f"{handle.id}:p-0", 10_000, "USD", at, "replay"),
    )
    await situation_when(handle, "contacted")
    await tell(env, handle, "o-2", promise=Promise(10_000, (day + timedelta(days=2)).isoformat()))
    await skip_to_dpd(env, subject, 5)
    follow = env.client.get_workflow_handle_for(LoanCollection.run, handle.id)
    await situation_when(follow, "promise_broken")
    await tell(env, follow, "o-3", promise=Promise(10_000, (day + timedelta(days=5)).isoformat()))
    await skip_to_dpd(env, subject, 8)
    follow = env.client.get_workflow_handle_for(LoanCollection.run, handle.id)
    await status_when(follow, Stage.LATE)
    await pay_all(env, follow, "p-2")
    return handle


async def dispute_upheld(env: WorkflowEnvironment) -> Handle:
    handle = await start(env, loan("L-replay-dispute-upheld", await due_yesterday(env)))
    await status_when(handle, Stage.EARLY)
    await tell(env, handle, "o-1", dispute=True)
    await situation_when(handle, "dispute")
    at = await env.get_current_time()
    await handle.signal(
        LoanCollection.dispute_resolved, DisputeResolution(f"{handle.id}:r-1", True, at)
    )
    await handle.result()
    return handle


async def dispute_rejected(env: WorkflowEnvironment) -> Handle:
    subject = loan("L-replay-dispute-rejected", await due_yesterday(env))
    handle = await start(env, subject)
    await status_when(handle, Stage.EARLY)
    await tell(env, handle, "o-1", dispute=True, complaint="sale")
    await situation_when(handle, "dispute")
    await skip_to_dpd(env, subject, 4)
    at = await env.get_current_time()
    await handle.signal(
        LoanCollection.dispute_resolved, DisputeResolution(f"{handle.id}:r-1", False, at)
    )
    await situation_when(handle, "contacted")
    await tell(env, handle, "o-2", refusal=True)
    await situation_when(handle, "refusal")
    await pay_all(env, handle, "p-1")
    return handle


async def ceased(env: WorkflowEnvironment) -> Handle:
    handle = await start(env, loan("L-replay-ceased", await due_yesterday(env)))
    await status_when(handle, Stage.EARLY)
    await tell(env, handle, "o-1", cease=True)
    await handle.result()
    return handle


async def deceased(env: WorkflowEnvironment) -> Handle:
    subject = loan("L-replay-deceased", await due_yesterday(env), persona="deceased")
    handle = await start(env, subject)
    await status_when(handle, Stage.EARLY)
    await tell(env, handle, "o-1", death_reported_by="relative")
    await situation_when(handle, "deceased")
    for _ in range(400):  # the registry confirms, and the estate is written to
        if "estate_inquiry" in " ".join((await handle.query(LoanCollection.status)).notices):
            break
        await asyncio.sleep(0.05)
    await decide(env, handle, "d-1", Review.ESTATE, "written_off")
    await handle.result()
    return handle


async def registry_miss(env: WorkflowEnvironment) -> Handle:
    """A relative reports the death and the registry has no such death ("not verified"): the
    loan waits for a person, who finds it not verified; collection resumes, and the borrower
    pays. (Before the patch ``registry-miss-goes-to-review`` the registry's answer resumed
    collection at once, and the person's decision came when nothing waited for it.)
    """
    # The simulated registry answers "not verified" for this borrower id (it is fixed by the id).
    subject = loan("L-replay-registry-miss", await due_yesterday(env))
    handle = await start(env, subject)
    await status_when(handle, Stage.EARLY)
    await tell(env, handle, "o-1", death_reported_by="relative")
    await skip_to_dpd(env, subject, 3)  # time stands still while the registry is asked
    follow = env.client.get_workflow_handle_for(LoanCollection.run, handle.id)
    await decide(env, follow, "d-1", Review.DEATH_VERIFICATION, "not_verified")
    await skip_to_dpd(env, subject, 4)  # collection has resumed: calls again
    await pay_all(env, follow, "p-1")
    return handle


async def borrower_budget(env: WorkflowEnvironment) -> Handle:
    """Two loans of one borrower on one phone share its contact budget: their calls keep the
    strategy's gap and daily limit between them, and an inbound call about the second loan
    quiets the first for 7 days. Then the first loan is paid off; the second is left running.
    """
    due_date = await due_yesterday(env)
    subject = loan("L-replay-budget-1", due_date, borrower="B-replay-budget")
    sibling = loan("L-replay-budget-2", due_date, borrower="B-replay-budget")
    handle = await start(env, subject)
    other = await start(env, sibling)
    await status_when(handle, Stage.EARLY)
    await skip_to_dpd(env, subject, 3)
    await tell(env, other, "o-1", channel="inbound_call", note="called in about the card")
    await skip_to_dpd(env, subject, 7)
    follow = env.client.get_workflow_handle_for(LoanCollection.run, handle.id)
    await status_when(follow, Stage.MIDDLE)
    await pay_all(env, follow, "p-1")
    await env.client.get_workflow_handle(other.id).terminate(reason="the story is told")
    return handle


async def hardship(env: WorkflowEnvironment) -> Handle:
    """Short-term hardship: a plan, its first instalment missed; then long-term: forbearance."""
    subject = loan("L-replay-hardship", await due_yesterday(env))
    handle = await start(env, subject)
    await status_when(handle, Stage.EARLY)
    await tell(env, handle, "o-1", hardship=Hardship("short", "lost a shift"))
    await situation_when(handle, "hardship")
    await skip_to_dpd(env, subject, 11)
    follow = env.client.get_workflow_handle_for(LoanCollection.run, handle.id)
    await situation_when(follow, "promise_broken")
    await tell(env, follow, "o-2", hardship=Hardship("long", "long-term illness"))
    await situation_when(follow, "hardship")
    await decide(env, follow, "d-1", Review.HARDSHIP, "approved")
    for _ in range(400):
        if (await follow.query(LoanCollection.status)).arrangement is not None:
            break
        await asyncio.sleep(0.05)
    await pay_all(env, follow, "p-1")
    return handle


async def operator_hold(env: WorkflowEnvironment) -> Handle:
    """Paused by the update (a payment taken on hold), resumed by the signal, then paid."""
    subject = loan("L-replay-operator-hold", await due_yesterday(env))
    handle = await start(env, subject)
    await status_when(handle, Stage.EARLY)
    await handle.execute_update(
        LoanCollection.pause_collection,
        HoldRequest(reason="fraud check", operator="ops:replay", request_id=f"{handle.id}:h-1"),
    )
    await skip_to_dpd(env, subject, 11)
    at = await env.get_current_time()
    await handle.signal(
        LoanCollection.payment_received,
        PaymentReceived(f"{handle.id}:p-0", 1_000, "USD", at, source="replay-recording"),
    )
    await wait_applied(handle, f"{handle.id}:p-0")
    await handle.signal(LoanCollection.resume, HoldRequest(operator="ops:replay"))
    for _ in range(400):
        if (await handle.query(LoanCollection.status)).hold is None:
            break
        await asyncio.sleep(0.05)
    await pay_all(env, handle, "p-1")
    return handle


async def loan_book(env: WorkflowEnvironment) -> Handle:
    """A loan of the loan book: a broken promise's fee owed, an instalment falling due with a
    payment at a branch, the book saying the instalments are paid, then the fee paid."""
    due = await due_yesterday(env)
    subject = replace(loan("L-replay-loan-book", due), total_outstanding_minor=150_000)
    handle = await start(env, subject)
    await status_when(handle, Stage.EARLY)
    day = date.fromisoformat(due)
    await tell(env, handle, "o-1", promise=Promise(10_000, (day + timedelta(days=2)).isoformat()))
    await situation_when(handle, "promise")
    await skip_to_dpd(env, subject, 5)
    follow = env.client.get_workflow_handle_for(LoanCollection.run, handle.id)
    await situation_when(follow, "promise_broken")
    at = await env.get_current_time()
    branch = PaymentReceived(f"{handle.id}:br-1", 20_000, "USD", at, "core")
    await follow.signal(
        LoanCollection.loan_changed,
        LoanChanged(2, 80_000, 130_000, due, payments=[branch]),
    )
    await wait_applied(follow, branch.payment_id)
    later = (day + timedelta(days=30)).isoformat()
    await follow.signal(LoanCollection.loan_changed, LoanChanged(3, 0, 50_000, later))
    for _ in range(400):
        if (await follow.query(LoanCollection.status)).total_outstanding_minor == 51_500:
            break
        await asyncio.sleep(0.05)
    await pay_all(env, follow, "p-fee")
    return handle


async def learning_slots(env: WorkflowEnvironment) -> Handle:
    """Learning slots: a borrower who answers only in the evening (``night_owl``) and cannot
    pay, in ``cn`` (no quiet period after a conversation); the slot priors read as the first
    call is planned, the posterior carried into the middle stage's run, then payment in full."""
    due = await due_yesterday(env)
    plain = loan("L-replay-learning-slots", due, persona="night_owl")
    subject = replace(
        plain,
        jurisdiction="cn",
        currency="CNY",
        borrower=replace(plain.borrower, timezone="Asia/Shanghai"),
    )
    handle = await start(env, subject)
    await status_when(handle, Stage.EARLY)
    await skip_to_dpd(env, subject, 8)
    follow = env.client.get_workflow_handle_for(LoanCollection.run, handle.id)
    await status_when(follow, Stage.MIDDLE)
    left = (await follow.query(LoanCollection.status)).outstanding_minor
    at = await env.get_current_time()
    await follow.signal(
        LoanCollection.payment_received,
        PaymentReceived(f"{handle.id}:p-1", left, "CNY", at, source="replay-recording"),
    )
    await handle.result()
    return handle


async def cases_when(handle: Handle, wanted: Callable[[list[PersonCase]], bool]) -> None:
    for _ in range(400):
        with contextlib.suppress(Exception):
            if wanted((await handle.query(LoanCollection.status)).cases):
                return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{handle.id}'s cases never came to the state wanted")


async def work_queue(env: WorkflowEnvironment) -> Handle:
    """The work queue: a dispute and a complaint open two cases; the dispute's is assigned,
    escalated past its deadline and closed by the rejection; the complaint is resolved by hand."""
    subject = loan("L-replay-work-queue", await due_yesterday(env))
    handle = await start(env, subject)
    await status_when(handle, Stage.EARLY)
    await tell(env, handle, "o-1", dispute=True, complaint="sale")
    await cases_when(handle, lambda cases: len(cases) == 2)
    dispute, complaint = sorted(
        (await handle.query(LoanCollection.status)).cases, key=lambda c: c.kind != "dispute"
    )
    await handle.signal(
        LoanCollection.case_action,
        CaseAction(f"{handle.id}:a-1", dispute.case_id, "ops:lead", assign_to="ops:ann"),
    )
    await cases_when(handle, lambda cases: any(c.assignee == "ops:ann" for c in cases))
    await skip_to_dpd(env, subject, 10)
    await cases_when(handle, lambda cases: any(c.escalated_at is not None for c in cases))
    at = await env.get_current_time()
    await handle.signal(
        LoanCollection.dispute_resolved, DisputeResolution(f"{handle.id}:r-1", False, at)
    )
    await cases_when(handle, lambda cases: len(cases) == 1)
    await handle.signal(
        LoanCollection.case_action,
        CaseAction(f"{handle.id}:a-2", complaint.case_id, "ops:bo", resolve_with="upheld"),
    )
    await cases_when(handle, lambda cases: not cases)
    await pay_all(env, handle, "p-1")


async def console(env: WorkflowEnvironment) -> Handle:
    """The console attributes (``console-attributes``): a promise (``Situation`` promised), its
    breaking (``Outreach`` promise_broken), a hold (``OnHold``), every stage to the legal notice
    (``LegalNoticeAt``), each run unsetting ``NextContactAt`` as it continues as new; then paid."""
    due = await due_yesterday(env)
    subject = loan("L-replay-console", due)
    handle = await start(env, subject)
    await status_when(handle, Stage.EARLY)
    day = date.fromisoformat(due)
    await tell(env, handle, "o-1", promise=Promise(10_000, (day + timedelta(days=2)).isoformat()))
    await situation_when(handle, "promised")
    await skip_to_dpd(env, subject, 5)
    await situation_when(handle, "promise_broken")
    await handle.execute_update(
        LoanCollection.pause_collection,
        HoldRequest(reason="fraud check", operator="ops:replay", request_id=f"{handle.id}:h-1"),
    )
    await handle.execute_update(
        LoanCollection.resume_collection,
        HoldRequest(operator="ops:replay", request_id=f"{handle.id}:h-2"),
    )
    await skip_to_dpd(env, subject, 30)
    follow = env.client.get_workflow_handle_for(LoanCollection.run, handle.id)
    await status_when(follow, Stage.LEGAL)
    for _ in range(400):
        if (await follow.query(LoanCollection.status)).served_notices:
            break
        await asyncio.sleep(0.05)
    await pay_all(env, follow, "p-1")
    return handle


async def stage_changes(env: WorkflowEnvironment) -> Handle:
    """Stage changes written by an activity (``stage-changes-as-activities``): the first run asks
    the patch as the loan enters middle, the next carries the answer into late, where a payment
    in full cures the loan, the closing change written the same way."""
    subject = loan("L-replay-stage-changes", await due_yesterday(env))
    handle = await start(env, subject)
    await status_when(handle, Stage.EARLY)
    await skip_to_dpd(env, subject, 6)
    follow = env.client.get_workflow_handle_for(LoanCollection.run, handle.id)
    await status_when(follow, Stage.MIDDLE)
    await skip_to_dpd(env, subject, 19)
    await status_when(follow, Stage.LATE)
    await pay_all(env, follow, "p-1")
    return handle


STORIES = {
    "cured": cured,
    "referred": referred,
    "promises": promises,
    "dispute-upheld": dispute_upheld,
    "dispute-rejected": dispute_rejected,
    "ceased": ceased,
    "deceased": deceased,
    "registry-miss": registry_miss,
    "hardship": hardship,
    "operator-hold": operator_hold,
    "borrower-budget": borrower_budget,
    "loan-book": loan_book,
    "learning-slots": learning_slots,
    "work-queue": work_queue,
    "console": console,
    "stage-changes": stage_changes,
}


async def save_chain(
    client: Client, name: str, handle: WorkflowHandle[LoanCollection, object]
) -> list[Path]:
    """Write every run of the continue-as-new chain, first to last, one file per run."""
    assert handle.first_execution_run_id is not None
    run_id: str | None = handle.first_execution_run_id
    written = []
    while run_id:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        path = HISTORIES / f"{name}-run{len(written) + 1}.json"
        path.write_text(history.to_json() + "\n")
        written.append(path)
        last = history.events[-1]
        run_id = None
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return written


async def record(names: list[str]) -> list[Path]:
    HISTORIES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="overdue-replay-") as home:
        # Only PostgreSQL is embedded: a Temporal address is given, so no dev server starts.
        stack = EmbeddedStack(config=Config(home=Path(home), temporal_address="time-skipping"))
        await stack.start()
        try:
            env = await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=installed_binary("temporal-test-server")
            )
            try:
                await register_search_attributes(env.client, "default")
                pool = await db.create_pool(stack.database_url)
                try:
                    config = Config(home=Path(home), database_url=stack.database_url)
                    async with build_worker(env.client, pool, config):
                        stories = {name: await STORIES[name](env) for name in names}
                        # Replace this script's own stories; histories kept from earlier
                        # versions of the workflow (other names) stay, and keep being replayed.
                        for name in stories:
                            for old in HISTORIES.glob(f"{name}-run*.json"):
                                old.unlink()
                        return [
                            path
                            for name, handle in stories.items()
                            for path in await save_chain(env.client, name, handle)
                        ]
                finally:
                    await pool.close()
            finally:
                await env.shutdown()
        finally:
            await stack.stop()


def main() -> None:
    code = 0
    try:
        names = sys.argv[1:] or list(STORIES)
        unknown = [n for n in names if n not in STORIES]
        if unknown:
            raise SystemExit(f"unknown stories {unknown}; known: {', '.join(STORIES)}")
        for path in asyncio.run(record(names)):
            print(
                f"{path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}"
                f"  {path.stat().st_size // 1024} KiB"
            )
    except Exception:  # report, then leave without the SDK's exit-time crash
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal SDK can abort at interpreter exit (sdk-python#300): leave without it.
    os._exit(code)


if __name__ == "__main__":
    main()
