"""One signal to every running loan a visibility query matches, through the server's batch
operations: what ``signal``, ``pause --query`` and ``resume --query`` share (their options,
the count, the confirmation, the progress and the report). It registers no command."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from overdue import bulk, listing
from overdue.cli.common import (
    UserError,
    checked_id,
    emit_json,
    err,
    load_config,
    out,
    run_async,
    services,
)

QueryOption = Annotated[
    str | None,
    typer.Option(
        "--query",
        help="A visibility query, e.g. 'LoanId STARTS_WITH \"L-10\"' or 'CollectionStage = \"late\"'.",
    ),
]
YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (required off a terminal).")
]
ConfirmAboveOption = Annotated[
    int | None,
    typer.Option(
        "--confirm-above",
        min=0,
        help=f"Ask for confirmation above this many loans (default ${bulk.CONFIRM_ENV} or "
        f"{bulk.DEFAULT_CONFIRM_ABOVE}).",
    ),
]
JobIdOption = Annotated[
    str | None,
    typer.Option("--job-id", help="The batch job's id: a retry with the same id starts nothing."),
]


# --- bulk signals ---------------------------------------------------------------------------


def bulk_signal(
    *,
    signal: str,
    message: Any,
    query: str,
    operator: str,
    reason: str,
    job_id: str,
    yes: bool,
    confirm_above: int | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Send ``message`` as ``signal`` to every running collection ``query`` matches, as one
    batch job of the server, after counting and (above the threshold) confirmation."""
    try:
        threshold = bulk.confirm_threshold(confirm_above, dict(os.environ))
    except bulk.BulkError as problem:
        raise UserError(str(problem)) from None
    full_query = listing.collection_query(query, running_only=True)

    async def count() -> int:
        async with services(load_config(data_dir), need_db=True) as s:
            return await bulk.count_matching(s.client, full_query)

    try:
        matched = run_async(count())
    except bulk.BulkError as problem:
        raise UserError(str(problem)) from None
    if matched == 0:
        _report_nothing(signal, full_query, as_json)
        return
    _confirm(signal, matched, threshold, full_query, yes=yes)

    async def go() -> bulk.JobProgress:
        async with services(load_config(data_dir), need_db=True) as s:
            assert s.pool is not None
            await bulk.record_job(
                s.pool,
                job_id=job_id,
                signal=signal,
                query=full_query,
                operator=operator,
                reason=reason,
                message=message,
                matched=matched,
            )
            try:
                await bulk.start_signal_job(
                    s.client,
                    job_id=job_id,
                    query=full_query,
                    signal=signal,
                    message=message,
                    reason=f"{signal} by {operator}: {reason}"
                    if reason
                    else f"{signal} by {operator}",
                )
            except BaseException:
                # The row says the job never ran, rather than "running" for ever.
                await bulk.record_not_started(s.pool, job_id)
                raise
            with _progress(signal, matched) as show:
                final = await bulk.follow_job(s.client, job_id, show)
            await bulk.record_outcome(s.pool, final)
            return final

    try:
        final = run_async(go())
    except bulk.BulkError as problem:
        raise UserError(str(problem)) from None
    result = {
        "job_id": final.job_id,
        "signal": signal,
        "query": full_query,
        "state": final.state,
        "matched": final.total,
        "succeeded": final.succeeded,
        "failed": final.failed,
    }
    if as_json:
        emit_json(result)
    else:
        out.print(
            f"{signal}: job {final.job_id} {final.state}: {final.total} matched,"
            f" {final.succeeded} signalled, {final.failed} failed",
            highlight=False,
        )
    if final.state != "completed" or final.failed:
        raise typer.Exit(1)


def _report_nothing(signal: str, full_query: str, as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "job_id": None,
                "signal": signal,
                "query": full_query,
                "state": "not_started",
                "matched": 0,
                "succeeded": 0,
                "failed": 0,
            }
        )
    else:
        err.print(f"no running collection matches {full_query}; nothing sent", highlight=False)


def _confirm(signal: str, matched: int, threshold: int, full_query: str, *, yes: bool) -> None:
    """Above the threshold, ask on a terminal; off a terminal only ``--yes`` goes on."""
    if yes or matched <= threshold:
        return
    if not sys.stdin.isatty():
        raise UserError(
            f"--yes: {matched} loans match (more than {threshold});"
            " confirm with --yes when not on a terminal"
        )
    err.print(f"{matched} running collections match {full_query}", highlight=False)
    if not typer.confirm(f"Send {signal} to {matched} loans?", err=True):
        err.print("nothing sent")
        raise typer.Exit(1)


class _progress:
    """A progress bar on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, signal: str, matched: int) -> None:
        self.bar: Progress | None = None
        if err.is_terminal:
            self.bar = Progress(
                TextColumn(f"{signal}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed"),
                console=err,
                transient=True,
            )
            self.task = self.bar.add_task(signal, total=matched, failed=0)

    def __enter__(self) -> Any:
        if self.bar is not None:
            self.bar.start()
        return self.show

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def show(self, progress: bulk.JobProgress) -> None:
        if self.bar is not None:
            self.bar.update(
                self.task,
                total=progress.total or None,
                completed=progress.succeeded + progress.failed,
                failed=progress.failed,
            )


def job_id_or_new(given: str | None, signal: str) -> str:
    """The job id given (held to the id rule, naming ``--job-id``), or a new one."""
    return checked_id("--job-id", given) if given else bulk.new_job_id(signal)
