"""`overdue up`: the embedded stack in the foreground, stopped by Ctrl-C, found again on restart."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from overdue.config import Config
from overdue.stack import EmbeddedStack
from tests.integration.support import OVERDUE, running_up

pytestmark = pytest.mark.integration


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TEMPORAL_ADDRESS", "DATABASE_URL")}
    env["OVERDUE_HOME"] = str(home)
    return env


async def _cli(home: Path, *args: str) -> tuple[int, dict]:
    process = await asyncio.create_subprocess_exec(
        OVERDUE,
        *args,
        "--json",
        env=_env(home),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert b"Traceback" not in stderr
    return process.returncode or 0, json.loads(stdout) if stdout.strip() else {}


def _servers_of(home: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(home) in cmdline and ("postgres" in cmdline or "start-dev" in cmdline):
            found.append(process)
    return found


async def test_up_starts_stops_and_resumes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    due = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    async with running_up(_env(home), start_timeout=60, stop_timeout=30) as lines:
        printed = "\n".join(lines)
        assert "Temporal Web UI  http://127.0.0.1:" in printed
        assert "PostgreSQL       postgresql://" in printed
        code, started = await _cli(
            home, "start", "--loan-id", "UP-1", "--borrower-id", "never_answers-UP-1", "--name", "Ann Lee",
            "--phone", "+15550100", "--timezone", "America/New_York", "--outstanding", "80.00",
            "--currency", "USD", "--due-date", due, "--jurisdiction", "us", "--day-seconds", "3600",
        )  # fmt: skip
        assert (code, started["started"]) == (0, True)
    assert not _servers_of(home), "Ctrl-C must stop the Temporal server and PostgreSQL"
    assert (home / "temporal.db").exists() and (home / "postgres" / "PG_VERSION").exists()

    async with running_up(_env(home), start_timeout=60, stop_timeout=30):
        code, status = await _cli(home, "status", "UP-1")
        assert code == 0
        assert status["workflow_status"] == "running"
        assert status["stage"] == "early"
        assert status["outstanding_minor"] == 8000
    assert not _servers_of(home)


async def test_the_dev_server_moves_aside_when_its_port_is_taken_as_it_starts(
    stack: EmbeddedStack, tmp_path: Path
) -> None:
    """A port that looks free (bound, not yet listening) is taken when the server binds it: the
    server exits, and the stack starts it again on other ports instead of reporting it ready."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))  # bound by another process, not listening yet
        taken = squatter.getsockname()[1]
        config = Config(home=tmp_path / "home", database_url=stack.database_url)
        moved = EmbeddedStack(config=config, temporal_port=taken)
        await moved.start()
        try:
            assert moved.temporal_port != taken
            client = await Client.connect(moved.temporal_address)
            await client.workflow_service.get_system_info(GetSystemInfoRequest())
        finally:
            await moved.stop()
