"""The priors of learning slots, read from the ledger: right-party answer rates by slot.

``load_slot_priors`` counts the borrower calls of the jurisdiction's portfolio in the last
``slots.PORTFOLIO_DAYS`` days by slot (answered by the borrower, or not: no answer, busy, wrong
party) and turns them into one Beta prior per slot (``workflows.slots.prior_for``, shrunk towards
a default rate where there are few calls). It also counts the borrower's own earlier calls, on
any of their loans, so that a borrower's second loan starts from what the first one learnt.

The workflow calls it as a local activity once per collection: its answer is recorded in the
history, so a replay uses the same priors whatever the ledger holds by then.
"""

from __future__ import annotations

import time
from datetime import timedelta

import asyncpg
from temporalio import activity

from workflows import slots
from workflows.commands import LoadSlotPriors
from workflows.vocabulary import Channel, Target

# A portfolio's rates move slowly: one count serves the loans that open within this long.
PORTFOLIO_CACHE_SECONDS = 600.0
SUCCESS = [str(o) for o in slots.SUCCESS]
KNOWN = [str(o) for o in (*slots.SUCCESS, *slots.FAILURE)]
PortfolioKey = tuple[str, str]  # jurisdiction, the day of as_of


class SlotActivities:
    """The ``load_slot_priors`` activity. Holds the pool and a short cache of portfolio rates."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._portfolio: dict[PortfolioKey, tuple[float, dict[str, tuple[int, int]]]] = {}

    @activity.defn(name="load_slot_priors")
    async def load_slot_priors(self, request: LoadSlotPriors) -> slots.SlotPriors:
        """The jurisdiction's priors for ``request.slots``, and the borrower's own tallies."""
        rates = await self._portfolio_rates(request)
        priors = [slots.prior_for(slot, *rates.get(slot, (0, 0))) for slot in request.slots]
        rows = await self._pool.fetch(
            "SELECT slot, count(*) FILTER (WHERE outcome = ANY($3::text[])) AS answered,"
            " count(*) AS calls FROM contact_attempts"
            " WHERE borrower_id = $1 AND channel = $4 AND target = $5"
            " AND outcome = ANY($2::text[]) AND at_utc <= $6 GROUP BY slot",
            request.borrower_id,
            KNOWN,
            SUCCESS,
            Channel.CALL.value,
            Target.BORROWER.value,
            request.as_of,
        )
        own = {row["slot"]: (int(row["answered"]), int(row["calls"])) for row in rows}
        wanted = set(request.slots)
        return slots.SlotPriors(
            jurisdiction=request.jurisdiction,
            slots=priors,
            answered={s: a for s, (a, _) in own.items() if s in wanted and a},
            unanswered={s: n - a for s, (a, n) in own.items() if s in wanted and n - a},
        )

    async def _portfolio_rates(self, request: LoadSlotPriors) -> dict[str, tuple[int, int]]:
        """Answered and known-outcome calls by slot in the jurisdiction's recent portfolio."""
        key = (request.jurisdiction, request.as_of.date().isoformat())
        cached = self._portfolio.get(key)
        if cached is not None and time.monotonic() - cached[0] < PORTFOLIO_CACHE_SECONDS:
            return cached[1]
        rows = await self._pool.fetch(
            "SELECT a.slot, count(*) FILTER (WHERE a.outcome = ANY($3::text[])) AS answered,"
            " count(*) AS calls FROM contact_attempts a JOIN loans l USING (loan_id)"
            " WHERE l.jurisdiction = $1 AND a.channel = $4 AND a.target = $5"
            " AND a.outcome = ANY($2::text[]) AND a.at_utc > $6 AND a.at_utc <= $7"
            " GROUP BY a.slot",
            request.jurisdiction,
            KNOWN,
            SUCCESS,
            Channel.CALL.value,
            Target.BORROWER.value,
            request.as_of - timedelta(days=slots.PORTFOLIO_DAYS),
            request.as_of,
        )
        rates = {row["slot"]: (int(row["answered"]), int(row["calls"])) for row in rows}
        self._portfolio = {key: (time.monotonic(), rates)}  # only the latest day is kept
        return rates
