"""A throwaway embedded stack for a benchmark: the dev server and PostgreSQL in a temporary data
dir, on free ports, with a pool to the ledger; stopped, and its data dir removed, when the
benchmark is done."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from overdue import db
from overdue.config import Config
from overdue.stack import EmbeddedStack, free_port


@asynccontextmanager
async def throwaway_stack(
    *, pool_size: int = 10
) -> AsyncIterator[tuple[EmbeddedStack, asyncpg.Pool]]:
    home = Path(tempfile.mkdtemp(prefix="overdue-bench-"))
    stack = EmbeddedStack(Config(home=home), temporal_port=free_port(), ui_port=free_port())
    await stack.start()
    try:
        pool = await db.create_pool(stack.database_url, max_size=pool_size)
        try:
            yield stack, pool
        finally:
            await pool.close()
    finally:
        await stack.stop()
        # A run at 10,000 loans leaves hundreds of megabytes behind.
        shutil.rmtree(home, ignore_errors=True)
