"""For engineers changing workflow code: ``replay`` histories with the current code, and
``history export`` to grow the replay corpus."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from temporalio.service import RPCError, RPCStatusCode

from overdue.cli.common import (
    DataDirOption,
    JsonOption,
    UserError,
    app,
    emit_json,
    load_config,
    out,
    run_async,
    services,
)
from overdue.codec import data_converter

T = TypeVar("T")


SANDBOX_MODES = ("off", "worker", "strict")  # overdue.replay.Sandbox, named here for the help


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"must be one of {', '.join(choices)}")
        return value

    return check


@app.command()
def replay(
    files: Annotated[list[Path] | None, typer.Argument(help="History JSON files.")] = None,
    workflow_id: Annotated[
        str | None, typer.Option(help="Replay every run of this workflow.")
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(
            help="Replay every run a visibility query matches, e.g. 'CollectionStage=\"late\"'."
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            help="Worker processes, each replaying its share on one replay worker; 0: one per"
            " CPU. Pays for large sets: starting them costs about a second."
        ),
    ] = 1,
    sandbox: Annotated[
        str,
        typer.Option(
            callback=_one_of(SANDBOX_MODES),
            help="off: check the command sequence only (fastest; the default). worker: in the"
            " worker's sandbox. strict: every workflow module imported afresh for each history,"
            " so that any non-deterministic call is caught (slowest).",
        ),
    ] = "off",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replay workflow histories with the current code; exits 1 on any non-determinism."""
    import functools
    import os

    from overdue.replay import (
        HistoryReplayer,
        Replayable,
        ReplayResult,
        Sandbox,
        Shippable,
        file_histories,
        replay_in_processes,
        server_histories,
        workflow_query,
    )

    if not files and not workflow_id and not query:
        raise UserError("give history files, --workflow-id or --query")
    if jobs < 0:
        raise UserError(f"jobs: must be 0 or more, got {jobs}")
    jobs = jobs or os.cpu_count() or 1
    missing = [str(f) for f in files or [] if not f.is_file()]
    if missing:
        raise UserError(f"files: no such file {missing[0]}")
    _core_logs_to_stderr()

    async def go() -> list[ReplayResult]:
        # Exports of an encrypted deployment need the keys: the configured ones decode them, as
        # the client's converter decodes what the server holds.
        config = load_config(data_dir).with_running_stack()
        if not workflow_id and not query:
            if jobs > 1:
                return await replay_in_processes(
                    list(files or []),
                    jobs=jobs,
                    converter=functools.partial(data_converter, config),
                    sandbox=Sandbox(sandbox),
                )
            return await HistoryReplayer(
                data_converter(config), sandbox=Sandbox(sandbox)
            ).replay_files(files or [])
        async with services(load_config(data_dir)) as s:
            client = s.client

            async def every_history() -> AsyncIterator[Replayable]:
                for item in file_histories(files or []):
                    yield item
                if workflow_id:
                    async for item in server_histories(client, workflow_query(workflow_id)):
                        yield item
                if query:
                    async for item in _visible_each(server_histories(client, query)):
                        yield item

            if jobs > 1:  # fetched here, replayed by the worker processes

                async def shipped() -> AsyncIterator[Shippable]:
                    async for item in every_history():
                        yield item

                return await replay_in_processes(
                    shipped(),
                    jobs=jobs,
                    converter=functools.partial(data_converter, config),
                    sandbox=Sandbox(sandbox),
                )
            # All on one replay worker.
            return await HistoryReplayer(
                client.data_converter, sandbox=Sandbox(sandbox)
            ).replay_all(every_history())

    results = run_async(go())
    failed = [r for r in results if not r.ok]
    if as_json:
        emit_json(
            {
                "replayed": len(results),
                "failed": len(failed),
                "results": [asdict(r) | {"ok": r.ok} for r in results],
            }
        )
    else:
        for r in results:
            run = f" run {r.run_id}" if r.run_id else ""
            if r.ok:
                out.print(f"ok   {r.workflow_id}{run} ({r.source})", highlight=False)
                continue
            at = (
                f" first diverging event {r.diverging.event_id} ({r.diverging.event_type})"
                if r.diverging
                else ""
            )
            out.print(f"FAIL {r.workflow_id}{run} ({r.source}){at}: {r.error}", highlight=False)
        out.print(f"{len(results)} replayed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


async def _visible(listing: Awaitable[T], query: str) -> T:
    """Await a visibility listing, turning a malformed query into one line naming it."""
    try:
        return await listing
    except RPCError as error:
        if error.status == RPCStatusCode.INVALID_ARGUMENT:
            raise UserError(f"query: {error.message}") from None
        raise


async def _visible_each(listing: AsyncIterator[T]) -> AsyncIterator[T]:
    """Iterate a visibility listing, turning a malformed query into one line naming it."""
    try:
        async for item in listing:
            yield item
    except RPCError as error:
        if error.status == RPCStatusCode.INVALID_ARGUMENT:
            raise UserError(f"query: {error.message}") from None
        raise


def _core_logs_to_stderr() -> None:
    """The SDK core's log lines to stderr, for every client and replayer of this command: on
    stdout they would break the one JSON document of ``--json``."""
    import logging

    from temporalio.runtime import Runtime

    from overdue.replay import CORE_LOGGER, core_logs_to_python

    if not CORE_LOGGER.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("temporal core %(levelname)s: %(message)s"))
        CORE_LOGGER.addHandler(handler)
        CORE_LOGGER.propagate = False
    Runtime.set_default(core_logs_to_python(), error_if_already_set=False)


history_app = typer.Typer(
    help="Workflow histories, for the replay test corpus.", no_args_is_help=True
)
app.add_typer(history_app, name="history")


@history_app.command("export")
def history_export(
    workflow_id: Annotated[str | None, typer.Option(help="Every run of this workflow.")] = None,
    query: Annotated[
        str | None, typer.Option(help="Every run this visibility query matches.")
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder to write <workflow id>@<run id>.json files in.")
    ] = Path("tests/replay/histories"),
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write histories as JSON files (the Temporal CLI's form) for `overdue replay` and the corpus."""
    from overdue.replay import export_histories, quoted

    if bool(workflow_id) == bool(query):
        raise UserError("give either --workflow-id or --query")
    _core_logs_to_stderr()
    wanted = query or f"WorkflowId = {quoted(workflow_id or '')}"

    async def go() -> list[Path]:
        async with services(load_config(data_dir)) as s:
            return await _visible(export_histories(s.client, wanted, out_dir), wanted)

    written = run_async(go())
    if not written:
        raise UserError(f"query: no workflow matches {wanted}")
    if as_json:
        emit_json({"written": [str(p) for p in written]})
    else:
        for path in written:
            out.print(str(path), highlight=False)
        out.print(f"{len(written)} histories written to {out_dir}")
