"""The stack: ``up`` (embedded), and the processes of a deployment — ``worker``, ``api``,
``codec-server`` and the one-shot ``migrate``."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from rich.markup import escape
from temporalio.runtime import Runtime

from overdue import codec_server as codecs
from overdue import datadir, db
from overdue.api import ApiSettings, api_settings, run_api, stack_api_settings
from overdue.cli.common import (
    DataDirOption,
    JsonOption,
    UserError,
    app,
    emit_json,
    err,
    load_config,
    out,
    run_async,
    stop_on_signals,
)
from overdue.config import Config
from overdue.connection import connect
from overdue.metrics import MetricsUnavailable, worker_runtime
from overdue.scan import ScanSettingsError, ScanTime, ensure_schedule
from overdue.stack import EmbeddedStack
from overdue.supervisor import ComponentFailed, Supervisor, TaskComponent
from overdue.worker import run_worker
from workflows.scan import SCHEDULE_ID


@app.command()
def up(
    data_dir: DataDirOption = None,
    encrypt: Annotated[
        bool,
        typer.Option(
            "--encrypt",
            help="Encrypt payloads (key file in the data dir unless keys are configured) and"
            " serve a codec server for the Web UI.",
        ),
    ] = False,
) -> None:
    """Start the embedded stack (Temporal + UI, PostgreSQL) and a worker, until Ctrl-C.

    Each part is restarted if it dies; after five failures in a row `up` stops and exits 3.
    """
    try:
        run_async(_up(load_config(data_dir), encrypt=encrypt))
    except ComponentFailed as failed:
        err.print(f"[red]error:[/] {failed}", highlight=False)
        raise typer.Exit(3) from None


def _worker_metrics() -> tuple[Runtime | None, str | None]:
    """The worker's metrics runtime and URL; a taken address is the user's to fix."""
    try:
        return worker_runtime()
    except MetricsUnavailable as problem:
        raise UserError(str(problem)) from None


async def _up(config: Config, *, encrypt: bool = False) -> None:
    # Before anything starts: a metrics address that cannot be bound stops `up` at once.
    runtime, metrics = _worker_metrics()
    try:
        scan_time = ScanTime.from_env()
    except ScanSettingsError as problem:
        raise UserError(str(problem)) from None
    # Before anything writes in it: the data dir is private, and one left open is closed now.
    # What this process writes there later (notices, a key file) is created 0600 as well.
    os.umask(datadir.CHILD_UMASK)
    for path in datadir.prepare(config.home):
        err.print(f"[yellow]tightened[/] {escape(path)}: the data dir holds borrowers' data")
    codec = _stack_codec(config) if encrypt else None
    if codec is not None:
        config = codec.config
    if not (config.encryption_keys or config.encryption_key_file):
        err.print(CLEAR_PAYLOADS_WARNING, highlight=False)
    stack = EmbeddedStack(
        config,
        codec_endpoint=codec.endpoint if codec else None,
        ui_codec_endpoint=codec.ui_endpoint if codec else None,
    )
    supervisor = Supervisor(report=lambda line: err.print(line, highlight=False, markup=False))
    tasks: list[TaskComponent] = []
    stop = stop_on_signals()
    try:
        await stack.start()
        for server in stack.components():
            supervisor.add(server)
        running = stack.running_config
        out.print(f"[bold]overdue[/] data dir   {config.home}")
        out.print(f"Temporal         {stack.temporal_address} (namespace {config.namespace})")
        if stack.ui_url:
            out.print(f"Temporal Web UI  {stack.ui_url}")
        out.print(f"PostgreSQL       {stack.database_url}")
        if codec is not None:
            ui_url = stack.ui_url
            tasks.append(TaskComponent("codec-server", lambda: codec.serve(ui_url, stop)))
            keys = config.encryption_key_file or "OVERDUE_ENCRYPTION_KEYS"
            made = f", new key {codec.created_key}" if codec.created_key else ""
            out.print(
                f"Codec server     {codec.endpoint} (payloads encrypted; keys {keys}{made};"
                f" token in {codec.token_source})"
            )
        # The port is chosen just before it is bound: another `up` may have taken it meanwhile.
        api, token_at = _stack_api(config)
        tasks.append(
            TaskComponent("api", lambda: run_api(running, api, stop, health=supervisor.health))
        )
        out.print(f"HTTP API         {api.url} (docs {api.url}/docs; bearer token in {token_at})")
        out.print(f"Metrics          {metrics or 'off (OVERDUE_METRICS_ADDRESS=off)'}")
        await ensure_schedule(await connect(running), scan_time)
        out.print(f"Delinquency scan schedule {SCHEDULE_ID}, {scan_time}")
        tasks.append(TaskComponent("worker", lambda: run_worker(running, stop, runtime=runtime)))
        out.print("Worker           task queue 'collections' — press Ctrl-C to stop")
        for task in tasks:
            task.start()
            supervisor.add(task)
        await supervisor.run(stop)
    finally:
        out.print("stopping…")
        stop.set()
        await asyncio.gather(*(task.finish() for task in tasks))
        await stack.stop()


CLEAR_PAYLOADS_WARNING = (
    "warning: payloads (borrowers' names and phone numbers) are stored in clear in"
    " temporal.db; run `overdue up --encrypt` or set OVERDUE_ENCRYPTION_KEYS to encrypt them"
)


@app.command("codec-server")
def codec_server(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = codecs.DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = codecs.DEFAULT_PORT,
    origin: Annotated[
        list[str] | None,
        typer.Option(
            help="Web UI origin allowed by CORS; repeatable"
            " (default: $OVERDUE_CODEC_ORIGINS or the local UI on :8233)."
        ),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            help="A host name clients use for it, beside the address it listens on; repeatable"
            " (default: $OVERDUE_CODEC_HOSTS). Needed with --host 0.0.0.0.",
        ),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Serve /encode and /decode with the configured keys, for the Web UI and `temporal`.

    Every request needs the token in OVERDUE_CODEC_TOKEN (`Authorization: Bearer …`, or the
    path prefix /token/<token> for the Web UI); it does not start without one. Requests under
    a host name it does not serve are refused.
    """
    config = load_config(data_dir).with_running_stack()
    codec = codecs.codec_for(config)
    origins = [o.rstrip("/") for o in origin] if origin else codecs.origins_from_env()
    extra_hosts = allowed_host or codecs.hosts_from_env()
    try:
        token = codecs.check_token(config.codec_token)
        hosts = codecs.allowed_hosts(host, extra_hosts)
    except codecs.CodecSettingError as problem:
        raise UserError(str(problem)) from None

    async def serve() -> None:
        stop = stop_on_signals()
        err.print(
            f"codec server: http://{host}:{port} for {', '.join(origins)}"
            f" (bearer token required; host names {', '.join(sorted(hosts))})"
        )
        await codecs.run_codec_server(
            codec,
            host=host,
            port=port,
            origins=origins,
            stop=stop,
            token=token,
            extra_hosts=extra_hosts,
        )

    run_async(serve())


def _stack_codec(config: Config) -> codecs.StackCodec:
    """The codec server of `up --encrypt`; a bad token setting stops `up` at once."""
    try:
        return codecs.prepare_stack_codec(config)
    except codecs.CodecSettingError as problem:
        raise UserError(str(problem)) from None


def _stack_api(config: Config) -> tuple[ApiSettings, str]:
    """The API of `overdue up`, and where its token is; a bad setting stops `up` at once."""
    try:
        return stack_api_settings(config)
    except ValueError as problem:
        raise UserError(str(problem)) from None


@app.command("api")
def api_command(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: $OVERDUE_API_ADDRESS's).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: $OVERDUE_API_ADDRESS's, or 8000).")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Serve the HTTP API for payment services, and relay queued payments, until Ctrl-C.

    Requests need `Authorization: Bearer $OVERDUE_API_TOKEN`; without that token it does not
    start.
    """
    config = load_config(data_dir).with_running_stack()
    try:
        settings = api_settings(config, host=host, port=port)
    except ValueError as problem:
        raise UserError(str(problem)) from None
    if not config.database_url:
        raise UserError("DATABASE_URL is not set and no embedded stack is running (`overdue up`)")

    async def serve() -> None:
        stop = stop_on_signals()
        err.print(f"HTTP API: {settings.url} (docs {settings.url}/docs)")
        await run_api(config, settings, stop)

    run_async(serve())


@app.command()
def worker(data_dir: DataDirOption = None) -> None:
    """Run a worker alone against the configured services."""
    run_worker_command(data_dir)


def run_worker_command(data_dir: Path | None = None) -> None:
    config = load_config(data_dir).with_running_stack()
    if not config.database_url:
        raise UserError("DATABASE_URL is not set and no embedded stack is running (`overdue up`)")
    runtime, metrics = _worker_metrics()

    async def serve() -> None:
        stop = stop_on_signals()
        err.print(f"worker: Temporal {config.temporal_address}, task queue 'collections'")
        err.print(f"worker: metrics {metrics or 'off (OVERDUE_METRICS_ADDRESS=off)'}")
        await run_worker(config, stop, runtime=runtime)

    run_async(serve())


@app.command()
def migrate(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Apply the ledger's pending migrations to DATABASE_URL; safe to run on every deploy."""
    # The embedded stack migrates as it starts; an external database is migrated here, once per
    # deploy, before any worker or API replica uses it (the advisory lock also serialises runs).
    config = load_config(data_dir).with_running_stack()
    if not config.database_url:
        raise UserError("DATABASE_URL: not set, and no embedded stack is running")

    async def go() -> list[str]:
        assert config.database_url is not None
        try:
            pool = await db.create_pool(config.database_url, min_size=1, max_size=1)
        except (OSError, asyncpg.PostgresError) as problem:
            raise UserError(f"DATABASE_URL: cannot reach the ledger database ({problem})") from None
        try:
            return await db.migrate(pool)
        finally:
            await pool.close()

    applied = run_async(go())
    if as_json:
        emit_json({"applied": applied})
    else:
        out.print(f"applied {', '.join(applied)}" if applied else "the ledger is up to date")
