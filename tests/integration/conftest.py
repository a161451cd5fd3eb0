"""Fixtures of the integration tests: the production worker on the dev server, and the CLI."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.worker import Worker

from overdue.api import create_app
from overdue.config import Config
from overdue.stack import EmbeddedStack
from overdue.worker import build_worker
from tests.integration.support import (
    API_TOKEN,
    Cli,
    Loans,
    asgi_client,
    clients_of,
    terminate_collections,
)


@pytest.fixture(scope="module")
def loans() -> Loans:
    return Loans()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(stack: EmbeddedStack) -> Client:
    return await Client.connect(stack.temporal_address)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def worker(
    client: Client, pool: asyncpg.Pool, config: Config, loans: Loans
) -> AsyncIterator[Worker]:
    """The production worker, in this process, for as long as the module's CLI calls run."""
    async with build_worker(client, pool, config) as running:
        yield running
        await terminate_collections(client, loans.ids)


@pytest.fixture(scope="module")
def cli(worker: Worker, stack: EmbeddedStack, overdue_home: Path) -> Cli:
    env = {k: v for k, v in os.environ.items() if k not in ("OVERDUE_DEBUG", "TEMPORAL_NAMESPACE")}
    env.update(
        TEMPORAL_ADDRESS=stack.temporal_address,
        DATABASE_URL=stack.database_url,
        OVERDUE_HOME=str(overdue_home),
    )
    return Cli(env)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(
    client: Client, pool: asyncpg.Pool, worker: Worker
) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API in this process, on the module's worker and the ledger (``API_TOKEN``)."""
    async with asgi_client(create_app(clients_of(client), pool, API_TOKEN)) as http:
        yield http
