"""Confidence intervals for comparing strategies, in the standard library only.

- A proportion of independent yes/no outcomes (one per loan: cured or not) gets the **Wilson
  score interval**: unlike the textbook ``p ± z·√(p(1-p)/n)`` it stays inside [0, 1] and keeps its
  coverage for small samples and rates near 0 or 1, which a simulation of a few dozen loans has.
- The difference of two such proportions gets **Newcombe's hybrid score interval** (method 10 of
  Newcombe 1998), built from the two Wilson intervals.
- Every other figure (a median, a mean, a ratio of sums such as contacts per cure) gets a
  **seeded percentile bootstrap** over loans: the loans are resampled with replacement, so figures
  counted per attempt (right-party contacts) are resampled with the loan they belong to, and the
  interval reflects that one borrower's attempts are not independent of each other. The seed
  makes the interval the same at every run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TypeVar

T = TypeVar("T")

LEVEL = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval; None where the estimate is undefined (no data)."""

    estimate: float | None
    low: float | None
    high: float | None
    method: str

    def as_dict(self, digits: int = 4) -> dict[str, float | str | None]:
        return {
            "estimate": _round(self.estimate, digits),
            "low": _round(self.low, digits),
            "high": _round(self.high, digits),
            "method": self.method,
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def z_for(level: float = LEVEL) -> float:
    """The two-sided standard normal quantile: 1.959964 for 95%."""
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson(successes: int, trials: int, level: float = LEVEL) -> Interval:
    """The Wilson score interval of ``successes`` out of ``trials``.

    Raises:
        ValueError: counts out of range.
    """
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError(f"expected 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return Interval(None, None, None, "wilson")
    z = z_for(level)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # At 0 or n successes one end is exactly 0 or 1; floating point leaves a hair's breadth.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Interval(p, low, high, "wilson")


def newcombe_difference(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, level: float = LEVEL
) -> Interval:
    """The difference ``p_b - p_a`` of two independent proportions, with Newcombe's hybrid score
    interval (from the two Wilson intervals)."""
    a = wilson(successes_a, trials_a, level)
    b = wilson(successes_b, trials_b, level)
    if a.estimate is None or b.estimate is None:
        return Interval(None, None, None, "newcombe")
    assert a.low is not None and a.high is not None and b.low is not None and b.high is not None
    difference = b.estimate - a.estimate
    low = difference - math.sqrt((b.estimate - b.low) ** 2 + (a.high - a.estimate) ** 2)
    high = difference + math.sqrt((b.high - b.estimate) ** 2 + (a.estimate - a.low) ** 2)
    return Interval(difference, low, high, "newcombe")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted-or-not ``values``, linear between order statistics
    (the same as ``numpy.percentile``'s default).

    Raises:
        ValueError: no values.
    """
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def bootstrap(
    items: Sequence[T],
    statistic: Callable[[Sequence[T]], float | None],
    *,
    seed: int,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
) -> Interval:
    """A seeded percentile bootstrap interval of ``statistic`` over ``items`` (one per loan).

    Resamples on which the statistic is undefined (None: say, contacts per cure with no cure
    drawn) are left out of the interval.
    """
    estimate = statistic(items) if items else None
    if estimate is None:
        return Interval(None, None, None, "bootstrap")
    rng = random.Random(seed)
    drawn = [statistic(rng.choices(items, k=len(items))) for _ in range(resamples)]
    return _percentile_interval(estimate, [d for d in drawn if d is not None], level)


def bootstrap_difference(
    items_a: Sequence[T],
    items_b: Sequence[T],
    statistic: Callable[[Sequence[T]], float | None],
    *,
    seed: int,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
) -> Interval:
    """The difference ``statistic(b) - statistic(a)`` of two independent samples, with a seeded
    percentile bootstrap interval (each sample resampled on its own)."""
    a = statistic(items_a) if items_a else None
    b = statistic(items_b) if items_b else None
    if a is None or b is None:
        return Interval(None, None, None, "bootstrap")
    rng = random.Random(seed)
    drawn = []
    for _ in range(resamples):
        da = statistic(rng.choices(items_a, k=len(items_a)))
        db = statistic(rng.choices(items_b, k=len(items_b)))
        if da is not None and db is not None:
            drawn.append(db - da)
    return _percentile_interval(b - a, drawn, level)


def _percentile_interval(estimate: float, drawn: list[float], level: float) -> Interval:
    if not drawn:
        return Interval(estimate, None, None, "bootstrap")
    tail = (1 - level) / 2
    return Interval(estimate, percentile(drawn, tail), percentile(drawn, 1 - tail), "bootstrap")
