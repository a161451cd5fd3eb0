"""Verifying a reported death with an institution, behind an adapter."""

from __future__ import annotations

from typing import Protocol

import asyncpg
from temporalio import activity

from overdue.ledger import append_audit
from workflows.commands import DeathCheck


class DeathRegistry(Protocol):
    """An institution that confirms deaths (a civil registry, a hospital, an insurer)."""

    async def check(self, request: DeathCheck) -> str:
        """``verified``, ``not_verified`` or ``no_record`` (see ``DeathCheckResult``)."""
        ...


class VerificationActivities:
    """Holds the pool and the registry adapter."""

    def __init__(self, pool: asyncpg.Pool, registry: DeathRegistry) -> None:
        self._pool = pool
        self._registry = registry

    @activity.defn(name="verify_death")
    async def verify_death(self, request: DeathCheck) -> str:
        """Ask the registry once; a retry returns the recorded answer."""
        event_key = f"{request.check_key}:answer"
        recorded = await self._pool.fetchval(
            "SELECT details->>'result' FROM audit_log WHERE event_key = $1", event_key
        )
        if recorded is not None:
            return str(recorded)
        result = await self._registry.check(request)
        async with self._pool.acquire() as conn:
            await append_audit(
                conn,
                event_key=event_key,
                loan_id=request.loan_id,
                at=request.reported_at,
                action="death_verification",
                details={"result": result, "reported_by": request.reported_by},
            )
        return result
