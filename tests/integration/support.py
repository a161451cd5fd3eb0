"""Running the CLI and `overdue up` as an operator does; the loans the integration tests start."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import httpx
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from overdue.client import start_collection
from tests.phones import unique_phone
from workflows.types import Borrower, Contact, Loan, workflow_id_for

OVERDUE = str(Path(sys.executable).parent / "overdue")
RUN = uuid.uuid4().hex[:8]  # the dev server's state outlives no session, but be unique anyway
HISTORIES = sorted((Path(__file__).parents[1] / "replay" / "histories").glob("*.json"))
QUIET_DAY_SECONDS = "600"  # a collection day lasts 10 real minutes: nothing moves in a test
BUSY_DAY_SECONDS = "10"  # a collection day lasts 10 real seconds: outreach happens within seconds
# Zones spread round the clock (no gap over 3 hours), to find one where it is daytime now.
DAYTIME_CANDIDATES = (
    "Pacific/Honolulu",
    "America/Los_Angeles",
    "America/New_York",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
)
# How long a test waits, in real time, for a state it expects: generous, for loaded machines. A
# wait returns as soon as the state is there; only a test that fails waits this long.
DEADLINE = 60.0
T = TypeVar("T")


# --- running the CLI ------------------------------------------------------------------------


@dataclass
class CliResult:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.stdout.strip(), f"no JSON on stdout: {self}"
        return json.loads(self.stdout)

    def assert_user_error(self, field_name: str) -> str:
        """Exit code 2, one line on stderr that names the field, nothing else."""
        lines = self.stderr.strip().splitlines()
        assert self.code == 2, self
        assert "Traceback" not in self.stderr + self.stdout, self
        assert len(lines) == 1, self
        assert f"{field_name}:" in lines[0], self
        assert self.stdout == "", self
        return lines[0]


@dataclass
class Cli:
    env: dict[str, str]

    async def __call__(self, *args: str, timeout: float = 60) -> CliResult:
        process = await asyncio.create_subprocess_exec(
            OVERDUE,
            *args,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError(
                f"overdue {' '.join(args)} did not finish in {timeout} s"
            ) from None
        assert process.returncode is not None
        return CliResult(args, process.returncode, out.decode(), err.decode())


@asynccontextmanager
async def running_up(
    env: dict[str, str],
    *flags: str,
    start_timeout: float = 90,
    stop_timeout: float = 60,
) -> AsyncIterator[list[str]]:
    """Run `overdue up` until it reports its worker, yielding what it printed so far; the list
    grows with what it prints after.

    On exit it is stopped as Ctrl-C stops it, and must exit cleanly.
    """
    command = " ".join(("overdue", "up", *flags))
    process = await asyncio.create_subprocess_exec(
        OVERDUE,
        "up",
        *flags,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[str] = []
    reading = asyncio.create_task(read_lines(process.stdout, lines))
    try:
        async with asyncio.timeout(start_timeout):
            while not lines or not lines[-1].startswith("Worker"):
                assert not reading.done(), f"`{command}` ended early: {lines}"
                await asyncio.sleep(0.05)
        yield lines
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(stop_timeout):
            await reading
            await process.wait()
    assert process.returncode == 0, lines


async def read_lines(stream: asyncio.StreamReader, lines: list[str]) -> None:
    """Append each line of ``stream`` to ``lines`` until it ends."""
    while line := await stream.readline():
        lines.append(line.decode().strip())


# --- the HTTP API in process ---------------------------------------------------------------

API_TOKEN = "test-token-" + uuid.uuid4().hex
API_AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def asgi_client(app: FastAPI) -> httpx.AsyncClient:
    """An HTTP client of the API app in this process: no server, no port."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


def clients_of(client: Client) -> Callable[[], Awaitable[Client]]:
    """What the API and the outbox ask for a Temporal client: always ``client``."""

    async def provide() -> Client:
        return client

    return provide


# --- loans ----------------------------------------------------------------------------------


def daytime_zone() -> str:
    """A zone where the borrower-local time is now well inside the 08:00-21:00 contact window."""
    now = datetime.now(UTC)

    def distance_from_one_pm(name: str) -> float:
        local = now.astimezone(ZoneInfo(name))
        return abs(local.hour + local.minute / 60 - 13)

    best = min(DAYTIME_CANDIDATES, key=distance_from_one_pm)
    assert distance_from_one_pm(best) <= 3, "no candidate zone is in daytime"
    return best


def yesterday(zone: str) -> str:
    """The borrower's yesterday: one day past due, so the loan starts (and stays) early."""
    return (datetime.now(ZoneInfo(zone)).date() - timedelta(days=1)).isoformat()


@dataclass
class Loans:
    """Unique loan ids for this module; their collections are terminated when it ends."""

    ids: list[str] = field(default_factory=list)

    def new_id(self, label: str) -> str:
        loan_id = f"it-{RUN}-{label}"
        self.ids.append(loan_id)
        return loan_id


def fresh_references() -> tuple[tuple[str, str, str], ...]:
    """Two references of a borrower, (name, phone, relation) each, on numbers of their own."""
    return (("Bo Chen", unique_phone(), "sibling"), ("Cy Diaz", unique_phone(), "workplace"))


@dataclass(frozen=True)
class PersonalDetails:
    """A borrower's name and phone and their references': what reaches Temporal only in payloads.

    Distinctive values, so that finding one anywhere else can only mean it leaked.
    """

    name: str
    phone: str
    references: tuple[tuple[str, str, str], ...]  # (name, phone, relation) each

    def pii(self) -> list[str]:
        return [
            self.name,
            self.phone,
            *(name for name, _, _ in self.references),
            *(phone for _, phone, _ in self.references),
        ]


def start_args(
    loan_id: str,
    *,
    persona: str = "never_answers",
    name: str = "Ann Lee",
    phone: str | None = None,
    references: Sequence[tuple[str, str, str]] | None = None,
    timezone: str = "America/New_York",
    outstanding: str = "500.00",
    principal: str = "1000.00",
    currency: str = "USD",
    due_date: str | None = None,
    jurisdiction: str = "us",
    day_seconds: str = QUIET_DAY_SECONDS,
) -> list[str]:
    """The arguments of `overdue start` for a loan; its references get ids ``<loan_id>-c<n>``."""
    args = [
        "start",
        "--loan-id",
        loan_id,
        "--borrower-id",
        f"{persona}-{loan_id}",
        "--name",
        name,
        "--phone",
        phone or unique_phone(),
        "--timezone",
        timezone,
        "--outstanding",
        outstanding,
        "--principal",
        principal,
        "--currency",
        currency,
        "--due-date",
        due_date or yesterday(timezone),
        "--jurisdiction",
        jurisdiction,
    ]
    for index, (ref_name, ref_phone, relation) in enumerate(references or fresh_references(), 1):
        args += ["--contact", f"{loan_id}-c{index}|{ref_name}|{ref_phone}|{relation}"]
    return [*args, "--day-seconds", day_seconds, "--json"]


def past_due_loan(
    loan_id: str,
    *,
    persona: str = "never_answers",
    name: str = "Ann Lee",
    phone: str | None = None,
    zone: str = "America/New_York",
    principal_minor: int = 100_000,
    outstanding_minor: int = 50_000,
    currency: str = "USD",
    contacts: Sequence[Contact] = (),
) -> Loan:
    """A personal loan under US rules, due on the borrower's yesterday; the persona leads the
    simulated borrower (``never_answers``: the simulator never pays, so every payment is ours)."""
    return Loan(
        loan_id=loan_id,
        borrower=Borrower(f"{persona}-{loan_id}", name, phone or unique_phone(), zone),
        product="personal",
        principal_minor=principal_minor,
        outstanding_minor=outstanding_minor,
        currency=currency,
        due_date=yesterday(zone),
        jurisdiction="us",
        contacts=list(contacts),
    )


async def start_until_opened(
    client: Client, pool: asyncpg.Pool, loan: Loan, *, day_seconds: float = float(QUIET_DAY_SECONDS)
) -> str:
    """Start the loan's collection (by default on a quiet clock: nothing moves on its own during
    a test) and wait until the ledger has opened the loan; returns its id."""
    assert await start_collection(client, loan, day_seconds=day_seconds) == "started"

    async def opened() -> bool:
        return bool(await pool.fetchval("SELECT 1 FROM loans WHERE loan_id = $1", loan.loan_id))

    await eventually(opened, what=f"{loan.loan_id} opened in the ledger")
    return loan.loan_id


async def terminate_collections(client: Client, loan_ids: Iterable[str]) -> None:
    """End what the tests left running of these loans' collections."""
    for loan_id in loan_ids:
        with contextlib.suppress(RPCError):  # never started, or already closed
            await client.get_workflow_handle(workflow_id_for(loan_id)).terminate(
                reason="integration tests finished"
            )


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = DEADLINE, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something truthy, for at most ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: T | None = None
    while True:
        last = await probe()
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached in {timeout} s (last: {last!r})")
        await asyncio.sleep(0.25)


async def workflow_exists(client: Client, loan_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id_for(loan_id)).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


def day(days_from_today: int) -> str:
    """The ISO date ``days_from_today`` from today (UTC)."""
    return (datetime.now(UTC).date() + timedelta(days=days_from_today)).isoformat()


def book_line(
    loan_id: str,
    schedule: list[tuple[int, str, str]],
    *,
    version: int = 1,
    payments: list[tuple[str, str, str]] | None = None,
) -> dict[str, Any]:
    """A loan of the loan book as the core system syncs it (a JSON Lines line): a borrower who
    never answers, ``schedule`` as (days from today, amount due, amount paid), ``payments`` as
    (payment id, amount, paid at)."""
    line: dict[str, Any] = {
        "loan_id": loan_id,
        "version": version,
        "borrower_id": f"never_answers-{loan_id}",
        "borrower_name": "Ann Lee",
        "phone": "+12025550142",
        "timezone": "America/New_York",
        "product": "personal",
        "principal": "900.00",
        "currency": "USD",
        "jurisdiction": "us",
        "schedule": [
            {"due_date": day(days), "amount_due": due, "amount_paid": paid}
            for days, due, paid in schedule
        ],
    }
    if payments:
        line["payments"] = [
            {"payment_id": pid, "amount": amount, "paid_at": at} for pid, amount, at in payments
        ]
    return line
