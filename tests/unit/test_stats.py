"""The intervals of ``overdue stats``, against values computed by hand (and, for Newcombe's
interval, against the worked example of the paper that defines it)."""

from __future__ import annotations

import statistics

import pytest

from overdue.stats import (
    bootstrap,
    bootstrap_difference,
    newcombe_difference,
    percentile,
    wilson,
    z_for,
)


def test_z_of_95_percent() -> None:
    assert z_for(0.95) == pytest.approx(1.959964, abs=1e-6)


def test_wilson_eight_of_ten() -> None:
    """By hand, z = 1.959964, z² = 3.841459, n = 10, p = 0.8:
    denominator 1 + z²/n = 1.3841459; centre (0.8 + z²/20) / 1.3841459 = 0.716740;
    half-width z·√(0.16/10 + z²/400) / 1.3841459 = 0.226577; so [0.49016, 0.94332]."""
    interval = wilson(8, 10)
    assert interval.estimate == 0.8
    assert interval.low == pytest.approx(0.49016, abs=1e-5)
    assert interval.high == pytest.approx(0.94332, abs=1e-5)
    assert interval.method == "wilson"


def test_wilson_at_the_edges_stays_in_zero_one() -> None:
    """0 of 10: the upper end is (z²/n) / (1 + z²/n) = 0.3841459 / 1.3841459 = 0.277533."""
    none = wilson(0, 10)
    assert (none.estimate, none.low) == (0.0, 0.0)
    assert none.high == pytest.approx(0.277533, abs=1e-6)
    every = wilson(10, 10)
    assert (every.estimate, every.high) == (1.0, 1.0)
    assert every.low == pytest.approx(1 - 0.277533, abs=1e-6)


def test_wilson_of_nothing_is_undefined_and_bad_counts_are_refused() -> None:
    assert wilson(0, 0).estimate is None
    with pytest.raises(ValueError):
        wilson(11, 10)
    with pytest.raises(ValueError):
        wilson(-1, 10)


def test_newcombe_difference_matches_the_papers_example() -> None:
    """Newcombe (1998), method 10, example (a): 56/70 against 48/80, a difference of 0.2 with
    95% interval 0.0524 to 0.3339. Ours is the second minus the first."""
    interval = newcombe_difference(48, 80, 56, 70)
    assert interval.estimate == pytest.approx(0.2)
    assert interval.low == pytest.approx(0.0524, abs=1e-4)
    assert interval.high == pytest.approx(0.3339, abs=1e-4)
    flipped = newcombe_difference(56, 70, 48, 80)
    assert flipped.low == pytest.approx(-0.3339, abs=1e-4)
    assert flipped.high == pytest.approx(-0.0524, abs=1e-4)


def test_newcombe_of_equal_proportions_straddles_zero() -> None:
    interval = newcombe_difference(5, 10, 5, 10)
    assert interval.estimate == 0
    assert interval.low is not None and interval.high is not None
    assert interval.low < 0 < interval.high
    assert interval.low == pytest.approx(-interval.high)


def test_percentile_interpolates_between_order_statistics() -> None:
    """Like numpy's default: the 0.25 quantile of 1..4 sits at position 0.75, so 1.75."""
    assert percentile([4, 1, 3, 2], 0.25) == pytest.approx(1.75)
    assert percentile([4, 1, 3, 2], 0.5) == pytest.approx(2.5)
    assert percentile([7], 0.975) == 7
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_bootstrap_of_a_constant_sample_is_that_constant() -> None:
    interval = bootstrap([3.0] * 12, statistics.fmean, seed=1)
    assert (interval.estimate, interval.low, interval.high) == (3.0, 3.0, 3.0)


def test_bootstrap_is_fixed_by_its_seed() -> None:
    sample = [0.1, 0.5, 0.9, 2.0, 3.5, 0.0, 1.2, 7.0]
    first = bootstrap(sample, statistics.median, seed=42)
    assert bootstrap(sample, statistics.median, seed=42) == first
    assert bootstrap(sample, statistics.median, seed=43) != first
    assert first.low is not None and first.high is not None
    assert first.low <= first.estimate <= first.high  # type: ignore[operator]
    assert min(sample) <= first.low and first.high <= max(sample)


def test_bootstrap_leaves_out_resamples_where_the_statistic_is_undefined() -> None:
    """A ratio per success (contacts per cure) has no value on a resample without a success."""

    def per_success(items: list[tuple[int, bool]] | tuple[tuple[int, bool], ...]) -> float | None:
        successes = sum(ok for _, ok in items)
        return sum(n for n, _ in items) / successes if successes else None

    interval = bootstrap([(4, True), (10, False), (6, False)], per_success, seed=3)
    assert interval.estimate == 20
    assert interval.low is not None and interval.high is not None
    assert bootstrap([(4, False)], per_success, seed=3).estimate is None


def test_bootstrap_difference_of_one_sample_with_itself_centres_on_zero() -> None:
    sample = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    interval = bootstrap_difference(sample, sample, statistics.fmean, seed=5)
    assert interval.estimate == 0
    assert interval.low is not None and interval.high is not None
    assert interval.low < 0 < interval.high
    shifted = bootstrap_difference(sample, [x + 10 for x in sample], statistics.fmean, seed=5)
    assert shifted.estimate == pytest.approx(10)
    assert shifted.low is not None and shifted.low > 7
