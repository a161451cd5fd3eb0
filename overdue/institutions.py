"""Simulated institutions: a death registry that answers deterministically."""

from __future__ import annotations

import hashlib

from workflows.commands import DeathCheck, DeathCheckResult


class SimulatedDeathRegistry:
    """Confirms the deaths of simulated ``deceased`` borrowers; others it does not, or not yet.

    The answer is fixed by the borrower id, so a retried check gets the same one.
    """

    async def check(self, request: DeathCheck) -> str:
        if request.borrower_id.startswith("deceased-"):
            return DeathCheckResult.VERIFIED
        draw = hashlib.sha256(request.borrower_id.encode()).digest()[0] / 256
        return DeathCheckResult.NO_RECORD if draw < 0.3 else DeathCheckResult.NOT_VERIFIED
