"""The credit bureau: where a broken promise becomes a negative credit record.

This is the adapter seam. The activity that reports a broken promise (``report_broken_promise``
in ``activities/situations.py``) calls the bureau at most once per promise, and keeps the
bureau's answer in the ledger; the simulator (``overdue.simulator.SimulatedCreditBureau``) stands
in for a real bureau.
"""

from __future__ import annotations

from typing import Protocol

from workflows.commands import BrokenPromise


class CreditBureau(Protocol):
    """Files negative credit records.

    Implementations should make ``promise_id`` their vendor's idempotency key: the activity never
    calls twice for a promise once its record is in the ledger, but a crash between the bureau's
    answer and the ledger write makes it call again.
    """

    async def report_negative(self, report: BrokenPromise) -> str:
        """File a negative record for a broken promise and return the bureau's reference."""
        ...
