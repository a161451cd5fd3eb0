"""What people report and decide about a loan: conversation outcomes, dispute resolutions,
review decisions, and pausing or resuming its collection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from temporalio.client import Client

from activities.situations import outcome_facts
from overdue import client as ops
from overdue.cli.batch import (
    ConfirmAboveOption,
    JobIdOption,
    QueryOption,
    YesOption,
    bulk_signal,
    job_id_or_new,
)
from overdue.cli.common import (
    DataDirOption,
    JsonOption,
    UserError,
    app,
    checked_id,
    emit_json,
    load_config,
    out,
    print_position,
    run_async,
    services,
)
from overdue.outcomes import (
    DEFAULT_SOURCE,
    HARDSHIP_TERMS,
    SITUATION_CODES,
    check_outcome_fields,
    decision_from_fields,
    outcome_from_fields,
    resolution_from_fields,
)
from workflows import limits
from workflows.types import HoldRequest
from workflows.vocabulary import CONVERSATION_CHANNELS, ComplaintCategory

T = TypeVar("T")


@app.command()
def outcome(
    loan_id: Annotated[str, typer.Argument(help="Loan id.")],
    outcome_id: Annotated[str, typer.Option(help="The outcome's unique id (idempotency key).")],
    source: Annotated[str, typer.Option(help="Who reports, as kind:name.")] = DEFAULT_SOURCE,
    no_answer: Annotated[
        bool,
        typer.Option("--no-answer", help="Not a right-party conversation: not the borrower."),
    ] = False,
    situation: Annotated[
        str | None, typer.Option(help=f"Situation code: {', '.join(SITUATION_CODES)}.")
    ] = None,
    promise_amount: Annotated[
        str | None, typer.Option(help="Amount promised, in major units (12.50).")
    ] = None,
    promise_date: Annotated[
        str | None, typer.Option(help="Date promised, YYYY-MM-DD, borrower-local.")
    ] = None,
    complaint: Annotated[
        str | None, typer.Option(help=f"Complaint category: {', '.join(ComplaintCategory.ALL)}.")
    ] = None,
    dispute: Annotated[
        bool, typer.Option("--dispute", help="The borrower disputes the debt itself.")
    ] = False,
    hardship: Annotated[
        str | None, typer.Option(help=f"Hardship term: {' or '.join(HARDSHIP_TERMS)}.")
    ] = None,
    hardship_reason: Annotated[
        str | None, typer.Option(help="Why the borrower cannot pay.")
    ] = None,
    deceased_reported_by: Annotated[
        str | None, typer.Option(help="The borrower is reported dead, by this person.")
    ] = None,
    cease: Annotated[
        bool, typer.Option("--cease", help="The borrower asks that collection contact stop.")
    ] = False,
    refusal: Annotated[
        bool, typer.Option("--refusal", help="The borrower wilfully refuses to pay.")
    ] = False,
    note: Annotated[str | None, typer.Option(help="Free text.")] = None,
    channel: Annotated[
        str,
        typer.Option(
            help=f"How the conversation was held: {', '.join(CONVERSATION_CHANNELS)}."
            " A right-party one by phone counts for the borrower's conversation rules."
        ),
    ] = "call",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report what a conversation revealed: signals `contact_outcome`, idempotent by outcome id."""
    # The signal cannot refuse anything, so the outcome is checked against the running
    # collection first: the promise in the loan's currency, dated no earlier than the borrower's
    # today in collection time. The outcome takes the collection time as its own, so that
    # rules counted from a conversation (the us quiet period) hold under a compressed clock too.
    # What needs no loan is checked first, before connecting to anything.
    checked_id("loan_id", loan_id)
    fields: dict[str, Any] = {
        "outcome_id": outcome_id,
        "source": source,
        "situation": situation,
        "promise_amount": promise_amount,
        "promise_date": promise_date,
        "complaint": complaint,
        "hardship": hardship,
        "hardship_reason": hardship_reason,
        "deceased_reported_by": deceased_reported_by,
        "note": note,
        "channel": channel,
    }
    check_outcome_fields(**fields)

    async def go() -> dict[str, Any]:
        async with services(load_config(data_dir)) as s:
            loan = await ops.loan_view(s.client, loan_id)
            reported = outcome_from_fields(
                loan,
                right_party=not no_answer,
                dispute=dispute,
                cease=cease,
                refusal=refusal,
                **fields,
            )
            await ops.send_outcome(s.client, loan_id, reported, pool=s.pool)
        return {
            "loan_id": loan_id,
            "outcome_id": reported.outcome_id,
            "source": reported.source,
            "channel": reported.channel,
            "at": reported.at.astimezone(UTC).isoformat(),
            "right_party": reported.right_party,
            "facts": outcome_facts(reported),
            "signalled": True,
        }

    result = run_async(go())
    if as_json:
        emit_json(result)
    else:
        out.print(f"outcome {result['outcome_id']} sent to collection-{loan_id}")


def _signal_at_collection_time(
    data_dir: Path | None,
    loan_id: str,
    build: Callable[[datetime], T],
    send: Callable[[Client, str, T], Awaitable[object]],
) -> T:
    """Build a message stamped with the loan's collection time, check it, and signal it.

    It is built once first at the wall clock's time, before connecting to anything: a malformed
    message is refused at once, naming the field.
    """
    checked_id("loan_id", loan_id)
    build(datetime.now(UTC))

    async def go() -> T:
        async with services(load_config(data_dir)) as s:
            loan = await ops.loan_view(s.client, loan_id)
            message = build(loan.collection_time)
            await send(s.client, loan_id, message)
        return message

    return run_async(go())


@app.command("dispute-resolved")
def dispute_resolved(
    loan_id: Annotated[str, typer.Argument(help="Loan id.")],
    resolution_id: Annotated[
        str, typer.Option(help="The resolution's unique id (idempotency key).")
    ],
    upheld: Annotated[
        bool, typer.Option("--upheld", help="The dispute is upheld: the loan closes.")
    ] = False,
    rejected: Annotated[
        bool, typer.Option("--rejected", help="The dispute is rejected: collection resumes.")
    ] = False,
    note: Annotated[str | None, typer.Option(help="Free text.")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report the outcome of a dispute of the debt: signals `dispute_resolved`."""

    resolution = _signal_at_collection_time(
        data_dir,
        loan_id,
        lambda at: resolution_from_fields(
            resolution_id=resolution_id, upheld=upheld, rejected=rejected, at=at, note=note
        ),
        ops.resolve_dispute,
    )
    result = {
        "loan_id": loan_id,
        "resolution_id": resolution.resolution_id,
        "upheld": resolution.upheld,
        "at": resolution.at.astimezone(UTC).isoformat(),
        "signalled": True,
    }
    if as_json:
        emit_json(result)
    else:
        verdict = "upheld" if result["upheld"] else "rejected"
        out.print(f"dispute {verdict} ({result['resolution_id']}) sent to collection-{loan_id}")


@app.command()
def decide(
    loan_id: Annotated[str, typer.Argument(help="Loan id.")],
    review: Annotated[str, typer.Option(help="death_verification, hardship or estate.")],
    outcome: Annotated[
        str,
        typer.Option(help="verified|not_verified; approved|rejected; estate_claim|written_off."),
    ],
    decision_id: Annotated[str, typer.Option(help="The decision's unique id.")],
    by: Annotated[str, typer.Option(help="Who decided, e.g. ops:ann.")] = "ops:cli",
    note: Annotated[str | None, typer.Option(help="Free text.")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report a person's decision on a review: signals `review_decided`."""

    decision = _signal_at_collection_time(
        data_dir,
        loan_id,
        lambda at: decision_from_fields(
            decision_id=decision_id, review=review, outcome=outcome, by=by, at=at, note=note
        ),
        ops.send_decision,
    )
    result = {
        "loan_id": loan_id,
        "decision_id": decision.decision_id,
        "review": decision.review,
        "outcome": decision.outcome,
        "signalled": True,
    }
    if as_json:
        emit_json(result)
    else:
        out.print(f"{result['review']}: {result['outcome']} sent to collection-{loan_id}")


def _hold_command(
    loan_id: str | None,
    request: HoldRequest,
    data_dir: Path | None,
    as_json: bool,
    *,
    pause: bool,
    bulk: BulkOptions,
) -> None:
    if loan_id is not None and bulk.query is not None:
        raise UserError("--query: give either LOAN_ID or --query, not both")
    if loan_id is None and bulk.query is None:
        raise UserError("loan_id: give a LOAN_ID, or --query for every loan it matches")
    problem = limits.hold_problem(request, pause=pause)
    if problem is not None:
        raise UserError(problem)
    if bulk.query is not None:
        # One job id serves as every message's request id: a retried job changes nothing.
        job_id = job_id_or_new(bulk.job_id, "pause" if pause else "resume")
        request = replace(request, request_id=request.request_id or job_id)
        bulk_signal(
            signal="pause" if pause else "resume",
            message=request,
            query=bulk.query,
            operator=request.operator,
            reason=request.reason,
            job_id=job_id,
            yes=bulk.yes,
            confirm_above=bulk.confirm_above,
            data_dir=data_dir,
            as_json=as_json,
        )
        return
    assert loan_id is not None
    checked_id("loan_id", loan_id)
    change = ops.pause_collection if pause else ops.resume_collection

    async def go() -> dict[str, Any]:
        async with services(load_config(data_dir)) as s:
            return ops.status_view(await change(s.client, loan_id, request))

    view = run_async(go())
    if as_json:
        emit_json(view)
    else:
        print_position(view)


@dataclass(frozen=True)
class BulkOptions:
    """``--query`` and what goes with it, for pause and resume."""

    query: str | None
    job_id: str | None
    yes: bool
    confirm_above: int | None


LoanIdArgument = Annotated[
    str | None, typer.Argument(help="Loan id (or --query for many loans).", show_default=False)
]


@app.command()
def pause(
    loan_id: LoanIdArgument = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
    by: Annotated[str, typer.Option(help="Who pauses, e.g. ops:ann.")] = "ops:cli",
    request_id: Annotated[str, typer.Option(help="An id that makes a retry harmless.")] = "",
    query: QueryOption = None,
    job_id: JobIdOption = None,
    yes: YesOption = False,
    confirm_above: ConfirmAboveOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pause one loan, or every running loan --query matches: no outreach and no escalation
    until resumed. One loan: prints the new state; a query: a batch job, with its counts."""
    request = HoldRequest(reason=reason, operator=by, request_id=request_id)
    options = BulkOptions(query, job_id, yes, confirm_above)
    _hold_command(loan_id, request, data_dir, as_json, pause=True, bulk=options)


@app.command()
def resume(
    loan_id: LoanIdArgument = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
    by: Annotated[str, typer.Option(help="Who resumes, e.g. ops:ann.")] = "ops:cli",
    request_id: Annotated[str, typer.Option(help="An id that makes a retry harmless.")] = "",
    query: QueryOption = None,
    job_id: JobIdOption = None,
    yes: YesOption = False,
    confirm_above: ConfirmAboveOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resume a paused loan where it was, or every running loan --query matches."""
    request = HoldRequest(reason=reason, operator=by, request_id=request_id)
    options = BulkOptions(query, job_id, yes, confirm_above)
    _hold_command(loan_id, request, data_dir, as_json, pause=False, bulk=options)
