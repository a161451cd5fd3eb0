"""What every command module shares: the one ``app``, the consoles, the common options, the
error a user can fix, and running a command's coroutine against the configured services."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
import typer
from rich.console import Console
from temporalio.client import Client

from overdue import db
from overdue.config import Config
from overdue.connection import connect
from workflows import limits

app = typer.Typer(
    help="Collections orchestrator for overdue loans, on Temporal and PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Data dir (default: $OVERDUE_HOME or ./.overdue).")
]


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


def load_config(data_dir: Path | None = None) -> Config:
    return Config.from_env(home=data_dir)


def run_async(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def emit_json(data: Any) -> None:
    out.file.write(json.dumps(data, indent=2, default=str) + "\n")


@dataclass
class Services:
    client: Client
    pool: asyncpg.Pool | None


def ledger_config(data_dir: Path | None) -> Config:
    """The configuration of a command that needs the ledger database: refused at once without."""
    config = load_config(data_dir).with_running_stack()
    if not config.database_url:
        raise UserError("DATABASE_URL is not set and no embedded stack is running (`overdue up`)")
    return config


@asynccontextmanager
async def ledger_pool(config: Config) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool to the ledger database (Temporal may be down: it is not needed)."""
    try:
        pool = await db.create_pool(config.database_url or "", max_size=4)
    except (OSError, asyncpg.PostgresError) as problem:
        raise UserError(f"cannot reach the ledger database ({problem})") from None
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def services(config: Config, *, need_db: bool = False) -> AsyncIterator[Services]:
    """Connect to Temporal (and the ledger) as configured, or to the running embedded stack."""
    config = config.with_running_stack()
    try:
        client = await connect(config)
    except RuntimeError as problem:
        raise UserError(
            f"cannot reach Temporal at {config.temporal_address} ({problem}); "
            "start the stack with `overdue up` or set TEMPORAL_ADDRESS"
        ) from None
    pool = None
    if config.database_url:
        try:
            pool = await db.create_pool(config.database_url, max_size=4)
        except (OSError, asyncpg.PostgresError) as problem:
            if need_db:
                raise UserError(f"cannot reach the ledger database ({problem})") from None
    elif need_db:
        raise UserError("DATABASE_URL is not set and no embedded stack is running (`overdue up`)")
    try:
        yield Services(client, pool)
    finally:
        if pool is not None:
            await pool.close()


def stop_on_signals() -> asyncio.Event:
    """An event that Ctrl-C, SIGTERM or SIGHUP sets: long-running commands stop in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    return stop


def checked_id(name: str, value: str) -> str:
    """An id argument held to the id rule (``workflows.limits``) before anything is connected
    to, so that a malformed one is refused at once, naming ``name``."""
    try:
        return limits.check_id(value)
    except limits.LimitError as problem:
        raise UserError(f"{name}: {problem}") from None


def check_day_seconds(day_seconds: float | None) -> None:
    if day_seconds is not None and not 0.05 <= day_seconds <= 86400:
        raise UserError("day_seconds: must be between 0.05 and 86400")


def print_position(view: dict[str, Any]) -> None:
    """Where the loan stands: stage, balance, situation, a hold, and what comes next."""
    nxt = view.get("next_action") or {}
    out.print(
        f"[bold]{view['loan_id']}[/]  stage [bold]{view.get('stage')}[/]  DPD {view.get('days_past_due', '-')}"
    )
    owed = f"outstanding {view.get('outstanding')} {view.get('currency')}"
    if view.get("fees_minor"):
        owed += f" (fees {view['fees']})"
    if view.get("total_outstanding") is not None:
        owed += f"  total outstanding {view['total_outstanding']}"
    situation = f"situation {view.get('situation') or '-'}"
    if view.get("outreach"):
        situation += f" · outreach {view['outreach']}"
    out.print(f"{owed}  {situation}")
    hold = view.get("hold")
    if hold:
        out.print(f"paused by {hold['operator']} since {hold['since']}: {hold['reason']}")
    if nxt.get("at_utc"):
        out.print(
            f"next: {nxt['kind']} {nxt.get('detail', '')} at {nxt['at_local']} (UTC {nxt['at_utc']})"
        )
    else:
        out.print(f"next: {nxt.get('kind', 'none')}")
