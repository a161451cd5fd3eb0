"""The demo: a simulated portfolio collected end to end in compressed time.

Every loan is a real ``LoanCollection`` workflow on the real Temporal server, writing to the real
ledger; only the borrowers and the back office are simulated. ``day_seconds`` sets how many real
seconds a collection day lasts; it is workflow input, so each run replays deterministically.

The simulated back office (``BackOffice``) stands in for the people who decide disputes, hardship
reviews and estates, and for the bank that passes on borrowers' standing-order instalments. It
finds what waits by asking each running loan's ``status``, and answers through the same signals
a person or a payment service would use.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from overdue.borrowers import default_strategy
from overdue.client import (
    UnknownLoan,
    loan_status,
    resolve_dispute,
    send_decision,
    start_collection,
)
from overdue.outcomes import OutcomeInvalid
from overdue.simulator import PERSONA_WEIGHTS, BorrowerSimulator
from workflows.clock import collection_now
from workflows.collection import LoanCollection
from workflows.money import format_minor
from workflows.types import (
    Borrower,
    ClockAnchor,
    CollectionStatus,
    CollectionSummary,
    Contact,
    DisputeResolution,
    Loan,
    ReviewDecision,
    workflow_id_for,
)
from workflows.vocabulary import Review, Situation, SituationState

ZONES = {
    "us": ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"),
    "cn": ("Asia/Shanghai", "Asia/Urumqi"),
}
CURRENCY = {"us": "USD", "cn": "CNY"}
PRODUCTS = ("personal", "card", "auto", "bnpl")
SECOND_LOAN_EVERY = 5  # every fifth loan past the first personas is a borrower's second loan
FIRST_NAMES = (
    "Alex",
    "Bo",
    "Chen",
    "Dana",
    "Eli",
    "Fang",
    "Gus",
    "Hui",
    "Ivy",
    "Jun",
    "Kim",
    "Lei",
)
LAST_NAMES = ("Smith", "Wang", "Garcia", "Li", "Brown", "Zhang", "Lopez", "Liu", "Khan", "Chen")


def portfolio(count: int, seed: int, run_tag: str, today: datetime) -> list[Loan]:
    """``count`` loans, one day past due today, with personas mixed by the simulator's weights.

    The same seed gives the same borrowers and personas; ``run_tag`` keeps loan ids unique
    across runs that share a data dir.
    """
    rng = random.Random(seed)
    personas = list(PERSONA_WEIGHTS)
    weights = list(PERSONA_WEIGHTS.values())
    loans = []
    for i in range(count):
        loan_id = f"DEMO-{run_tag}-{i:04d}"
        if i >= len(personas) and i % SECOND_LOAN_EVERY == 0:
            # Borrowers often have several overdue loans: this one is the previous borrower's
            # second, on the same phone, with the same references and one contact budget.
            first = loans[-1]
            principal = rng.randrange(200, 20_000) * 100
            loans.append(
                replace(
                    first,
                    loan_id=loan_id,
                    product=rng.choice(PRODUCTS),
                    principal_minor=principal,
                    outstanding_minor=principal // rng.choice((4, 6, 12)),
                )
            )
            continue
        # Every persona appears at least once before the mix takes over.
        persona = personas[i] if i < len(personas) else rng.choices(personas, weights)[0]
        jurisdiction = "us" if i % 2 == 0 else "cn"
        zone = rng.choice(ZONES[jurisdiction])
        principal = rng.randrange(200, 20_000) * 100
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        loans.append(
            Loan(
                loan_id=loan_id,
                borrower=Borrower(
                    borrower_id=f"{persona}-s{seed}-{i:04d}",
                    name=name,
                    phone=_phone(rng),
                    timezone=zone,
                ),
                product=rng.choice(PRODUCTS),
                principal_minor=principal,
                outstanding_minor=principal // rng.choice((4, 6, 12)),
                currency=CURRENCY[jurisdiction],
                due_date=(today - timedelta(days=1)).date().isoformat(),
                jurisdiction=jurisdiction,
                contacts=[
                    Contact(
                        f"R{i:04d}-1", f"{rng.choice(FIRST_NAMES)} Ref", _phone(rng), "sibling"
                    ),
                    Contact(
                        f"R{i:04d}-2", f"{rng.choice(FIRST_NAMES)} Ref", _phone(rng), "employer"
                    ),
                ],
            )
        )
    return loans


def _phone(rng: random.Random) -> str:
    """A number of the +1 555 fiction range: each person has their own (budgets are per number)."""
    return f"+1555{rng.randrange(10**6, 10**7)}"


@dataclass
class BackOffice:
    """The people and the bank behind a simulated portfolio.

    Every sweep asks each running loan's ``status`` what it waits for, and:

    - decides a dispute ``decide_after`` collection time after first seeing it open, through
      ``dispute_resolved``: upheld one time in three, rejected otherwise;
    - decides a hardship review as long after, through ``review_decided``: forbearance approved
      two times in three;
    - closes a reported death as long after: the estate claim is filed one time in two, the loan
      written off otherwise (and, should the death still wait for verification, a person verifies
      it first);
    - passes on the instalments that simulated borrowers' standing orders pay
      (``BorrowerSimulator.plan_payments``), as ``payment_received``.

    Each decision is fixed by the seed, the borrower and its number on the loan, so a portfolio
    gets the same decisions in every run; its id is fixed too, so sending it twice changes nothing.
    """

    client: Client
    seed: int
    # The portfolio's collection clock. The back office reads the time there, not in a loan's
    # status: a loan that waits for a person has nothing to do and sleeps, so the collection time
    # its status reports is that of its last wake.
    clock: ClockAnchor
    decide_after: timedelta = timedelta(days=2)
    decisions: Counter[str] = field(default_factory=Counter)  # "dispute:upheld" -> count
    instalments_paid: int = 0
    waiting: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # loan -> what, since
    decided: Counter[tuple[str, str]] = field(default_factory=Counter)  # (loan, what) -> count
    paid_ids: set[str] = field(default_factory=set)

    @property
    def simulator(self) -> BorrowerSimulator:
        return BorrowerSimulator(seed=self.seed)

    async def sweep(self, loans: list[Loan]) -> None:
        """Look at every loan once: decide what is due, pay what standing orders pay."""
        limit = asyncio.Semaphore(20)

        async def look(loan: Loan) -> None:
            async with limit:
                await self.review(loan)

        await asyncio.gather(*(look(loan) for loan in loans))

    async def review(self, loan: Loan) -> None:
        handle = self.client.get_workflow_handle(workflow_id_for(loan.loan_id))
        try:
            status: CollectionStatus = await handle.query("status", result_type=CollectionStatus)
            await self._pay_instalments(loan, status)
            await self._decide_when_due(loan, status)
        except (RPCError, WorkflowQueryFailedError, UnknownLoan, OutcomeInvalid):
            return  # the collection ended meanwhile: nothing is waiting any more

    @staticmethod
    def waits_for(status: CollectionStatus) -> str | None:
        """What a person must decide for the loan, as far as its status tells."""
        # The machine's situation states; a collection from before ``console-attributes`` shows
        # the older labels (``dispute``, ``deceased``, ``hardship``).
        situation = status.situation
        if situation in (SituationState.DISPUTED, Situation.DISPUTE):
            return "dispute"
        if situation in (*SituationState.DECEASED, Situation.DECEASED):
            return Review.ESTATE
        if situation == SituationState.HARDSHIP_REVIEW or (
            situation == Situation.HARDSHIP and status.arrangement is None
        ):
            return Review.HARDSHIP  # a plan is an arrangement or forbearance; none: a review
        return None

    def now(self) -> datetime:
        """Collection time now, on the portfolio's clock."""
        return collection_now(self.clock, datetime.now(UTC))

    async def _decide_when_due(self, loan: Loan, status: CollectionStatus) -> None:
        loan_id = loan.loan_id
        what = self.waits_for(status)
        if what is None:
            self.waiting.pop(loan_id, None)
            return
        at = self.now()
        seen = self.waiting.get(loan_id)
        if seen is None or seen[0] != what:
            self.waiting[loan_id] = (what, at)
            return
        if at - seen[1] < self.decide_after:
            return
        number = self.decided[(loan_id, what)] + 1
        draw = self.simulator.draw("back_office", what, loan.borrower.borrower_id, number)
        prefix = f"{loan_id}:backoffice:{what}:{number}"
        if what == "dispute":
            upheld = draw < 1 / 3
            await resolve_dispute(
                self.client,
                loan_id,
                DisputeResolution(
                    resolution_id=prefix,
                    upheld=upheld,
                    at=at,
                    note="simulated back office: " + ("upheld" if upheld else "debt confirmed"),
                ),
            )
            self.decisions[f"dispute:{'upheld' if upheld else 'rejected'}"] += 1
        elif what == Review.HARDSHIP:
            await self._send(loan_id, prefix, what, "approved" if draw < 2 / 3 else "rejected", at)
        else:
            if number > 1:
                # The estate decision was not taken: the death still waits for verification,
                # and the family's documents confirm it.
                await self._send(
                    loan_id, f"{prefix}:verified", Review.DEATH_VERIFICATION, "verified", at
                )
            closing = "estate_claim" if draw < 1 / 2 else "written_off"
            await self._send(loan_id, prefix, Review.ESTATE, closing, at)
        self.decided[(loan_id, what)] = number
        self.waiting.pop(loan_id, None)

    async def _send(
        self, loan_id: str, decision_id: str, review: str, outcome: str, at: datetime
    ) -> None:
        await send_decision(
            self.client,
            loan_id,
            ReviewDecision(
                decision_id=decision_id,
                review=review,
                outcome=outcome,
                by="backoffice:simulated",
                at=at,
                note="simulated back office",
            ),
        )
        self.decisions[f"{review}:{outcome}"] += 1

    async def _pay_instalments(self, loan: Loan, status: CollectionStatus) -> None:
        now = self.now()
        today = now.astimezone(ZoneInfo(status.timezone)).date()
        payments = self.simulator.plan_payments(
            loan.borrower.borrower_id,
            status.arrangement,
            today,
            status.currency,
            now,
        )
        handle = self.client.get_workflow_handle(workflow_id_for(loan.loan_id))
        for payment in payments:
            if payment.payment_id in self.paid_ids:
                continue  # sent before; the workflow has not applied it yet
            await handle.signal("payment_received", payment)
            self.paid_ids.add(payment.payment_id)
            self.instalments_paid += 1

    def report(self) -> dict[str, Any]:
        decided: dict[str, dict[str, int]] = defaultdict(dict)
        for key, n in sorted(self.decisions.items()):
            review, outcome = key.split(":")
            decided[review][outcome] = n
        return {"decisions": dict(decided), "instalments_paid": self.instalments_paid}


@dataclass
class DemoResult:
    summaries: list[CollectionSummary]
    personas: dict[str, str]  # loan id -> persona
    elapsed_seconds: float
    back_office: dict[str, Any] = field(default_factory=dict)  # decisions, instalments paid


async def run_portfolio(
    client: Client,
    loans: list[Loan],
    *,
    day_seconds: float,
    seed: int,
    on_progress: Callable[[int, Counter[str]], None] | None = None,
) -> DemoResult:
    """Start every loan's collection and wait for all of them to end, while the simulated back
    office decides the disputes that open."""
    started = asyncio.get_running_loop().time()
    # One clock for the whole portfolio: loans of one borrower compare their contacts' moments.
    origin = datetime.now(UTC)
    back_office = BackOffice(client, seed, ClockAnchor(origin, origin, day_seconds))
    for loan in loans:
        await start_collection(client, loan, day_seconds=day_seconds, clock_origin=origin)
    handles = [
        client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(loan.loan_id))
        for loan in loans
    ]
    results: list[CollectionSummary | None] = [None] * len(loans)

    async def wait(index: int) -> None:
        results[index] = await handles[index].result()

    waiting = [asyncio.create_task(wait(i)) for i in range(len(loans))]
    while not all(task.done() for task in waiting):
        if on_progress is not None:
            finals = Counter(r.final_stage for r in results if r is not None)
            on_progress(sum(finals.values()), finals)
        await back_office.sweep(
            [loan for loan, task in zip(loans, waiting, strict=True) if not task.done()]
        )
        await asyncio.sleep(0.5)
    await asyncio.gather(*waiting)
    simulator = BorrowerSimulator(seed=seed)
    return DemoResult(
        summaries=[r for r in results if r is not None],
        personas={
            loan.loan_id: simulator.persona_for(loan.borrower.borrower_id).name for loan in loans
        },
        elapsed_seconds=asyncio.get_running_loop().time() - started,
        back_office=back_office.report(),
    )


async def summarise(
    pool: asyncpg.Pool, result: DemoResult, *, client: Client | None = None, details: bool = False
) -> dict[str, Any]:
    """The demo's report: final states and situations, money recovered, outreach, escalations,
    the back office's dispute decisions, and final states per borrower persona."""
    loan_ids = [s.loan_id for s in result.summaries]
    outcomes = Counter(
        f"cured_in_{s.resolved_in}" if s.final_stage == "cured" else s.final_stage
        for s in result.summaries
    )
    recovered: dict[str, int] = defaultdict(int)
    outstanding: dict[str, int] = defaultdict(int)
    for s in result.summaries:
        recovered[s.currency] += s.recovered_minor
        outstanding[s.currency] += s.outstanding_minor
    rows = await pool.fetch(
        "SELECT channel, target, outcome, count(*) AS n FROM contact_attempts"
        " WHERE loan_id = ANY($1) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        loan_ids,
    )
    attempts: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:
        channel = row["channel"] if row["target"] == "borrower" else f"{row['channel']}_reference"
        attempts[channel][row["outcome"]] = row["n"]
    reached = await pool.fetch(
        "SELECT details->>'to' AS stage, count(*) AS n FROM audit_log"
        " WHERE loan_id = ANY($1) AND action = 'stage_changed' GROUP BY 1",
        loan_ids,
    )
    reached_by_stage = {row["stage"]: row["n"] for row in reached}
    escalations = {stage: reached_by_stage.get(stage, 0) for stage in ("middle", "late", "legal")}
    escalations["references_contacted"] = sum(
        n for channel, by in attempts.items() if channel.endswith("_reference") for n in by.values()
    )
    escalations["legal_notices"] = await pool.fetchval(
        "SELECT count(*) FROM notices WHERE loan_id = ANY($1)", loan_ids
    )
    never_answering = [
        s.loan_id for s in result.summaries if result.personas[s.loan_id] == "never_answers"
    ]
    by_persona: dict[str, Counter[str]] = defaultdict(Counter)
    for s in result.summaries:
        final = f"cured_in_{s.resolved_in}" if s.final_stage == "cured" else s.final_stage
        by_persona[result.personas[s.loan_id]][final] += 1
    report: dict[str, Any] = {
        "loans": len(result.summaries),
        "elapsed_seconds": round(result.elapsed_seconds, 1),
        "final_states": dict(sorted(outcomes.items())),
        "recovered": {c: format_minor(v, c) for c, v in sorted(recovered.items())},
        "still_outstanding": {c: format_minor(v, c) for c, v in sorted(outstanding.items())},
        "attempts": {k: dict(v) for k, v in sorted(attempts.items())},
        "escalations": escalations,
        "by_persona": {k: dict(sorted(v.items())) for k, v in sorted(by_persona.items())},
        "situations": dict(sorted(Counter(s.situation for s in result.summaries).items())),
        "back_office": result.back_office,
        "rotation": await _first_unanswered_slots(pool, never_answering),
    }
    if details and client is not None:
        report["details"] = [await loan_status(client, pool, loan_id) for loan_id in loan_ids]
    return report


async def _first_unanswered_slots(pool: asyncpg.Pool, loan_ids: list[str]) -> dict[str, list[str]]:
    """The slots of each loan's first unanswered borrower calls, one per slot of the day: a
    borrower who never answers is tried in every slot before any slot is tried again."""
    rows = await pool.fetch(
        "SELECT loan_id, array_agg(slot ORDER BY attempt_no) AS slots FROM contact_attempts"
        " WHERE loan_id = ANY($1) AND channel = 'call' AND target = 'borrower'"
        " AND outcome IN ('no_answer', 'busy', 'wrong_party')"  # what rotates (workflows.rotation)
        " GROUP BY loan_id ORDER BY loan_id",
        loan_ids,
    )
    slots_a_day = len(default_strategy().slots)
    return {row["loan_id"]: list(row["slots"][:slots_a_day]) for row in rows}
