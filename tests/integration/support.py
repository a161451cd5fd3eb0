"""Running the CLI as an operator does, and the loans the integration tests start."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from workflows.types import workflow_id_for

OVERDUE = str(Path(sys.executable).parent / "overdue")
RUN = uuid.uuid4().hex[:8]  # the dev server's state outlives no session, but be unique anyway
HISTORIES = sorted((Path(__file__).parents[1] / "replay" / "histories").glob("*.json"))
QUIET_DAY_SECONDS = "600"  # a collection day lasts 10 real minutes: nothing moves in a test
BUSY_DAY_SECONDS = "30"  # a collection day lasts 30 real seconds: outreach happens within seconds
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


def start_args(
    loan_id: str,
    *,
    timezone: str = "America/New_York",
    outstanding: str = "500.00",
    currency: str = "USD",
    due_date: str | None = None,
    jurisdiction: str = "us",
    day_seconds: str = QUIET_DAY_SECONDS,
) -> list[str]:
    return [
        "start",
        "--loan-id",
        loan_id,
        "--borrower-id",
        f"never_answers-{loan_id}",
        "--name",
        "Ann Lee",
        "--phone",
        "+15550001000",
        "--timezone",
        timezone,
        "--outstanding",
        outstanding,
        "--principal",
        "1000.00",
        "--currency",
        currency,
        "--due-date",
        due_date or yesterday(timezone),
        "--jurisdiction",
        jurisdiction,
        "--contact",
        f"{loan_id}-c1|Bo Chen|+15550002000|sibling",
        "--contact",
        f"{loan_id}-c2|Cy Diaz|+15550003000|workplace",
        "--day-seconds",
        day_seconds,
        "--json",
    ]


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 10, what: str = "condition"
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
