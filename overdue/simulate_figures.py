"""The figures of ``overdue simulate``: each arm's loans at their end, and what they add up to.

Pure: each figure is a statistic of a list of loan results (so the bootstrap resamples loans),
and ``figures`` gives every arm's figures with 95% intervals (``overdue.stats``) and each arm's
difference from the first. ``overdue.simulate`` runs the arms and fills in the results.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from overdue import stats
from workflows.vocabulary import Stage


@dataclass
class LoanResult:
    """One loan at its end, or at the horizon."""

    loan_id: str
    persona: str
    currency: str
    overdue_minor: int  # the amount overdue when its collection started
    recovered_minor: int
    final: str  # a final stage, or "open" at the horizon
    days_to_cure: float | None  # collection days from the start to the cure
    days_past_due: int  # at its end, or at the horizon
    stage: str  # the stage it ended in (or stands in, at the horizon)
    strategy: str = ""  # as the ledger recorded the loan's assignment
    contacts: int = 0  # every contact attempt, of every channel and target
    borrower_calls: int = 0
    right_party: int = 0  # calls the borrower answered

    @property
    def cured(self) -> bool:
        return self.final == Stage.CURED

    @property
    def recovered_share(self) -> float:
        """The share of the overdue amount recovered (fees paid are not part of it)."""
        return min(self.recovered_minor, self.overdue_minor) / self.overdue_minor


@dataclass
class ArmRun:
    arm: str
    results: list[LoanResult]
    seconds: float
    started_at: datetime


# The figures. Each is a statistic of a list of loans, so that the bootstrap resamples loans.


def cure_rate(results: Sequence[LoanResult]) -> float | None:
    return sum(r.cured for r in results) / len(results) if results else None


def recovered_share(results: Sequence[LoanResult]) -> float | None:
    """The mean share of each loan's overdue amount recovered: a share, so no currency mixes."""
    return statistics.fmean(r.recovered_share for r in results) if results else None


def contacts_per_cure(results: Sequence[LoanResult]) -> float | None:
    cures = sum(r.cured for r in results)
    return sum(r.contacts for r in results) / cures if cures else None


def _cure_days(results: Sequence[LoanResult]) -> list[float]:
    return [r.days_to_cure for r in results if r.days_to_cure is not None]


def median_days_to_cure(results: Sequence[LoanResult]) -> float | None:
    days = _cure_days(results)
    return statistics.median(days) if days else None


def mean_days_to_cure(results: Sequence[LoanResult]) -> float | None:
    days = _cure_days(results)
    return statistics.fmean(days) if days else None


def right_party_rate(results: Sequence[LoanResult]) -> float | None:
    calls = sum(r.borrower_calls for r in results)
    return sum(r.right_party for r in results) / calls if calls else None


BOOTSTRAPPED: dict[str, Callable[[Sequence[LoanResult]], float | None]] = {
    "recovered_share": recovered_share,
    "contacts_per_cure": contacts_per_cure,
    "days_to_cure_median": median_days_to_cure,
    "days_to_cure_mean": mean_days_to_cure,
    "right_party_rate": right_party_rate,
}
FIGURES = ("cure_rate", *BOOTSTRAPPED)


def figures(runs: Sequence[ArmRun], *, seed: int, details: bool = False) -> dict[str, Any]:
    """Each arm's figures with 95% intervals, and each arm's difference from the first.

    The cure rate's interval is Wilson's, its difference's Newcombe's; every other figure's is a
    percentile bootstrap over loans, seeded by ``seed`` and the figure's place.
    """
    arms: dict[str, Any] = {}
    for run in runs:
        results = run.results
        cured = sum(r.cured for r in results)
        figures_of: dict[str, Any] = {"cure_rate": stats.wilson(cured, len(results)).as_dict()}
        for n, (name, statistic) in enumerate(BOOTSTRAPPED.items()):
            figures_of[name] = stats.bootstrap(results, statistic, seed=seed * 100 + n).as_dict()
        arms[run.arm] = {
            "figures": figures_of,
            "loans": len(results),
            "cured": cured,
            "open_at_horizon": sum(r.final == "open" for r in results),
            "final_states": _count(r.final for r in results),
            "contacts": sum(r.contacts for r in results),
            "borrower_calls": sum(r.borrower_calls for r in results),
            "right_party_contacts": sum(r.right_party for r in results),
            "by_currency": _by_currency(results),
            "personas": _count(r.persona for r in results),
            "wall_seconds": round(run.seconds, 1),
            "loans_per_minute": round(len(results) / run.seconds * 60, 1) if run.seconds else None,
            "started_at": run.started_at.isoformat(),
        }
        if details:
            arms[run.arm]["results"] = [asdict(r) for r in results]
    differences: dict[str, Any] = {}
    if runs:
        baseline = runs[0]
        for run in runs[1:]:
            a, b = baseline.results, run.results
            diff: dict[str, Any] = {
                "cure_rate": stats.newcombe_difference(
                    sum(r.cured for r in a), len(a), sum(r.cured for r in b), len(b)
                ).as_dict()
            }
            for n, (name, statistic) in enumerate(BOOTSTRAPPED.items()):
                diff[name] = stats.bootstrap_difference(
                    a, b, statistic, seed=seed * 100 + 50 + n
                ).as_dict()
            differences[f"{run.arm} - {baseline.arm}"] = diff
    return {
        "strategies": [run.arm for run in runs],
        "arms": arms,
        "differences": differences,
        "confidence": stats.LEVEL,
        "methods": {
            "cure_rate": "Wilson score interval; difference: Newcombe hybrid score",
            "others": f"percentile bootstrap over loans, {stats.RESAMPLES} resamples, seeded",
        },
    }


def _count(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


def _by_currency(results: Sequence[LoanResult]) -> dict[str, dict[str, int]]:
    """Amounts overdue and recovered, per currency: money is never added across currencies."""
    totals: dict[str, dict[str, int]] = {}
    for r in results:
        entry = totals.setdefault(
            r.currency, {"loans": 0, "overdue_minor": 0, "recovered_minor": 0}
        )
        entry["loans"] += 1
        entry["overdue_minor"] += r.overdue_minor
        entry["recovered_minor"] += min(r.recovered_minor, r.overdue_minor)
    return dict(sorted(totals.items()))
