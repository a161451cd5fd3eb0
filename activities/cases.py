"""Work-queue activities: a loan's cases as its collection opens, assigns, escalates and
closes them (``workflows.collection.people``).

Each change is one transaction: the case's row and its audit entry, keyed by the change, so a
retried write changes nothing.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from overdue import cases
from workflows.commands import CaseChange


class CaseActivities:
    """The work queue's writes. Holds the pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name="record_case_change")
    async def record_case_change(self, change: CaseChange) -> None:
        """Keep the case as the change leaves it, and the change in the audit log, once."""
        async with self._pool.acquire() as conn, conn.transaction():
            await cases.record_change(conn, change)
