"""`overdue up`: the embedded stack in the foreground, stopped by Ctrl-C, found again on restart;
never on a server that is not its own, its servers restarted when they die, its data private."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psutil
import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
)

from overdue import stack as stack_module
from overdue.config import Config
from overdue.stack import EmbeddedStack, StackError, listening_ports
from tests.integration.support import (
    DEADLINE,
    OVERDUE,
    eventually,
    read_lines,
    running_up,
    workflow_exists,
)
from workflows.scan import SCAN_WORKFLOW_TYPE, SCHEDULE_ID
from workflows.types import TASK_QUEUE

pytestmark = pytest.mark.integration


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TEMPORAL_ADDRESS", "DATABASE_URL")}
    env["OVERDUE_HOME"] = str(home)
    env["OVERDUE_METRICS_ADDRESS"] = "off"
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


# --- never someone else's server ------------------------------------------------------------


async def test_a_port_taken_between_the_check_and_the_bind_is_never_used(
    stack: EmbeddedStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported race: the ports chosen free are taken, before our server binds them, by
    another Temporal server that answers for the same namespace. Our server exits with
    "address already in use"; the stack must not take the other one for it, and moves aside."""
    stranger = stack  # the session's dev server, on its own ports
    chosen = iter([stranger.temporal_port, stranger.ui_port])
    monkeypatch.setattr(stack_module, "port_or_free", lambda _port: next(chosen))
    config = Config(home=tmp_path / "home", database_url=stack.database_url)
    moved = EmbeddedStack(config=config)
    await moved.start()
    try:
        assert moved.temporal_port != stranger.temporal_port
        assert moved.ui_port != stranger.ui_port
        assert moved._temporal is not None
        ours = listening_ports(moved._temporal.pid)
        assert {moved.temporal_port, moved.ui_port} <= ours
        assert stranger.temporal_port not in ours
        assert "address already in use" in (config.home / "temporal.log").read_text()
        recorded = json.loads(config.stack_file.read_text())
        assert recorded["temporal_address"] == f"127.0.0.1:{moved.temporal_port}"
    finally:
        await moved.stop()


async def test_when_every_port_chosen_is_taken_the_stack_fails_clearly(
    stack: EmbeddedStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack_module, "port_or_free", lambda _port: stack.temporal_port)
    monkeypatch.setattr(stack_module, "free_port", lambda: stack.temporal_port)
    home = tmp_path / "home"
    failed = EmbeddedStack(config=Config(home=home, database_url=stack.database_url))
    with pytest.raises(StackError, match=r"did not start in 3 tries.*address already in use"):
        await failed.start()
    assert not _servers_of(home), "no server of ours may be left running"
    assert not (home / "stack.json").exists()


# --- the daily delinquency scan ------------------------------------------------------------


async def _temporal_client(lines: list[str]) -> Client:
    """A client of the Temporal `up` printed it runs: its address and namespace."""
    [(address, namespace)] = [
        (m[1], m[2])
        for line in lines
        if (m := re.match(r"Temporal +(\S+) \(namespace (\S+)\)", line))
    ]
    return await Client.connect(address, namespace=namespace)


async def test_up_makes_the_scan_schedule_and_triggering_it_runs_a_scan(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # Half a day away, in a zone of its own: the schedule does not fire by itself in the test.
    hour = (datetime.now(ZoneInfo("Asia/Tokyo")) + timedelta(hours=12)).hour
    env = {**_env(home), "OVERDUE_SCAN_AT": f"{hour:02d}:30", "OVERDUE_SCAN_TIMEZONE": "Asia/Tokyo"}
    late = (datetime.now(UTC) - timedelta(days=5)).date().isoformat()
    book = tmp_path / "book.jsonl"
    loan = {
        "loan_id": "UP-SCAN-1", "borrower_id": "never_answers-UP-SCAN-1", "borrower_name": "Ann Lee",
        "phone": "+12025550142", "timezone": "America/New_York", "product": "personal",
        "principal": "900.00", "currency": "USD", "jurisdiction": "us",
        "schedule": [{"due_date": late, "amount_due": "300.00"}],
    }  # fmt: skip
    book.write_text(json.dumps(loan) + "\n")
    async with running_up(env, start_timeout=90, stop_timeout=60) as lines:
        assert (
            f"Delinquency scan schedule {SCHEDULE_ID}, daily at {hour:02d}:30 Asia/Tokyo" in lines
        )
        code, synced = await _cli(home, "loans", "sync", str(book))
        assert (code, synced["added"]) == (0, 1), synced
        client = await _temporal_client(lines)

        schedule = client.get_schedule_handle(SCHEDULE_ID)
        described = await schedule.describe()
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert (action.workflow, action.task_queue) == (SCAN_WORKFLOW_TYPE, TASK_QUEUE)
        [calendar] = described.schedule.spec.calendars
        assert (calendar.hour[0].start, calendar.minute[0].start) == (hour, 30)
        assert described.schedule.spec.time_zone_name == "Asia/Tokyo"
        assert not described.schedule.state.paused
        assert described.info.num_actions == 0

        # As the Web UI's "Trigger" does: the schedule starts a scan now.
        await schedule.trigger()

        async def started() -> ScheduleActionExecutionStartWorkflow | None:
            recent = (await schedule.describe()).info.recent_actions
            run = recent[0].action if recent else None
            return run if isinstance(run, ScheduleActionExecutionStartWorkflow) else None

        run = await eventually(started, what="the schedule's scan started")
        assert run.workflow_id.startswith("delinquency-scan-"), run
        scan = client.get_workflow_handle(run.workflow_id, run_id=run.first_execution_run_id)
        # The scan's result, following its runs (it continues-as-new after each page).
        totals = await asyncio.wait_for(scan.result(), DEADLINE)
        assert (totals["examined"], totals["delinquent"], totals["started"]) == (1, 1, 1), totals
        assert await workflow_exists(client, "UP-SCAN-1")
    assert not _servers_of(home)


# --- supervision ----------------------------------------------------------------------------


def _api(lines: list[str], home: Path) -> httpx.AsyncClient:
    (url,) = [m.group(1) for line in lines if (m := re.match(r"HTTP API +(\S+)", line))]
    token = (home / "api-token").read_text().strip()
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"})


async def _answer(api: httpx.AsyncClient) -> httpx.Response | None:
    """``/healthz``'s answer, or None while the API is not listening yet."""
    with contextlib.suppress(httpx.ConnectError):
        return await api.get("/healthz")
    return None


def _temporal_of(home: Path) -> psutil.Process:
    (server,) = [p for p in _servers_of(home) if "start-dev" in " ".join(p.cmdline())]
    return server


async def test_a_killed_temporal_server_is_reported_restarted_and_health_tells_the_truth(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    async with running_up(_env(home), start_timeout=90, stop_timeout=60) as lines:
        async with _api(lines, home) as api:
            healthy = await eventually(lambda: _answer(api), what="the API answering")
            assert healthy.status_code == 200, healthy.text
            components = healthy.json()["components"]
            assert {"database", "postgres", "temporal", "api", "worker"} <= set(components)
            assert all(part["status"] == "up" for part in components.values())
            killed = _temporal_of(home)
            assert components["temporal"]["pid"] == killed.pid

            killed.kill()

            async def reported_down() -> dict | None:
                answer = await api.get("/healthz")
                temporal = answer.json()["components"]["temporal"]
                if temporal["status"] != "up":
                    assert answer.status_code == 503
                    assert answer.json()["status"] == "down"
                    return temporal
                return None

            down = await eventually(reported_down, timeout=30, what="temporal reported down")
            assert down["status"] in ("down", "restarting"), down

            async def restarted() -> dict | None:
                answer = await api.get("/healthz")
                temporal = answer.json()["components"]["temporal"]
                return answer.json() if temporal["restarts"] == 1 and answer.is_success else None

            after = await eventually(restarted, timeout=90, what="temporal restarted")
            temporal = after["components"]["temporal"]
            assert temporal["pid"] != killed.pid
            assert temporal["last_exit"] == "killed by signal 9"
            assert temporal["pid"] == _temporal_of(home).pid
        printed = "\n".join(lines)
        assert re.search(r"temporal stopped after \d+ s: killed by signal 9; last lines", printed)
        assert "temporal: restarted (pid " in printed

        # The restarted server is the one the worker and the CLI use: a loan starts and runs.
        due = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
        code, started = await _cli(
            home, "start", "--loan-id", "UP-2", "--borrower-id", "never_answers-UP-2", "--name", "Ann Lee",
            "--phone", "+15550102", "--timezone", "America/New_York", "--outstanding", "80.00",
            "--currency", "USD", "--due-date", due, "--jurisdiction", "us", "--day-seconds", "3600",
        )  # fmt: skip
        assert (code, started["started"]) == (0, True)
    assert not _servers_of(home)


async def test_a_killed_postgresql_is_restarted_and_the_ledger_answers_again(
    tmp_path: Path,
) -> None:
    """PostgreSQL is a daemon of pg_ctl's, not our child: its death is seen by polling its
    postmaster, and it is started again on the same socket and data."""
    home = tmp_path / "home"
    async with running_up(_env(home), start_timeout=90, stop_timeout=60) as lines:
        async with _api(lines, home) as api:
            healthy = await eventually(lambda: _answer(api), what="the API answering")
            assert healthy.status_code == 200, healthy.text
            postmaster = psutil.Process(healthy.json()["components"]["postgres"]["pid"])
            assert str(home / "postgres") in " ".join(postmaster.cmdline())

            postmaster.kill()

            async def restarted() -> dict | None:
                answer = await _answer(api)
                if answer is None or not answer.is_success:
                    return None
                postgres = answer.json()["components"]["postgres"]
                return postgres if postgres["restarts"] >= 1 else None

            postgres = await eventually(restarted, timeout=120, what="PostgreSQL restarted")
            assert postgres["pid"] != postmaster.pid
            # A first restart may find the dead postmaster not yet reaped, and fail: retried.
            assert postgres["last_exit"] in (
                "exit code unknown (not our child)",
                "restart failed: PostgreSQL is not running after pg_ctl start",
            )
        assert any(line.startswith("postgres stopped after") for line in lines), lines
        code, _ = await _cli(home, "status", "NO-SUCH-LOAN")
        assert code == 2  # answered: the loan is unknown, the ledger and Temporal are there
    assert not _servers_of(home)


async def test_up_exits_3_when_temporal_cannot_be_restarted(tmp_path: Path) -> None:
    """Its port taken by another process once it died, the server cannot start again: `up`
    says so at each try, gives up after five failures in a row, stops the rest, exits 3."""
    home = tmp_path / "home"
    process = await asyncio.create_subprocess_exec(
        OVERDUE,
        "up",
        env=_env(home),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[str] = []
    reading = asyncio.create_task(read_lines(process.stdout, lines))
    try:
        await eventually(
            lambda: _true(any(line.startswith("Worker") for line in lines) or reading.done()),
            timeout=90,
            what="`overdue up` running",
        )
        assert not reading.done(), lines
        address = json.loads((home / "stack.json").read_text())["temporal_address"]
        port = int(address.rsplit(":", 1)[1])
        with socket.socket() as squatter:
            _temporal_of(home).kill()
            await eventually(lambda: _true(_bound(squatter, port)), timeout=10, what="the port")
            squatter.listen()
            async with asyncio.timeout(120):
                await reading
                await process.wait()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            await process.wait()
    printed = "\n".join(lines)
    assert process.returncode == 3, printed
    assert "temporal: restart failed:" in printed
    assert "address already in use" in printed
    assert "error: temporal failed 5 times in a row" in printed
    assert "Traceback" not in printed
    assert not _servers_of(home), "giving up stops PostgreSQL and the rest"
    assert not (home / "stack.json").exists()


async def _true(value: bool) -> bool:
    return value


def _bound(holder: socket.socket, port: int) -> bool:
    with contextlib.suppress(OSError):  # still held by the dying server
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        return True
    return False


# --- data at rest ---------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_data_dir_and_every_file_in_it_are_its_owners_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)  # as an older version left it
    (home / "temporal.log").write_text("from an older run\n")
    (home / "temporal.log").chmod(0o644)
    async with running_up(_env(home), start_timeout=90, stop_timeout=60) as lines:
        printed = "\n".join(lines)
        assert f"tightened {home} (was 0755" in printed
        assert f"tightened {home / 'temporal.log'} (was 0644, now 0600)" in printed
        # Payloads are in clear by default, and `up` says so on stderr in one line.
        assert any(
            line.startswith("warning: payloads") and "--encrypt" in line for line in lines
        ), printed

        # As root, PostgreSQL runs as its own user, which keeps root's group: 0710, group root.
        expected = 0o710 if os.geteuid() == 0 else 0o700
        assert _mode(home) == expected
        if os.geteuid() == 0:
            assert home.stat().st_gid == 0
        assert _mode(home / "postgres") == 0o700
        assert _mode(home / "postgres" / "log") == 0o600
        files = [p for p in home.iterdir() if p.is_file()]
        assert {"temporal.db", "temporal.log", "stack.json", "api-token"} <= {p.name for p in files}
        loose = {p.name: oct(_mode(p)) for p in files if _mode(p) != 0o600}
        assert not loose, loose
    # A second run finds nothing to tighten.
    async with running_up(_env(home), start_timeout=90, stop_timeout=60) as lines:
        assert not any(line.startswith("tightened") for line in lines), lines
