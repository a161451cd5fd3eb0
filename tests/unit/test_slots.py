"""Learning slots (``workflows.slots``): the priors, the posteriors and the Thompson sampler.

Pure: every draw comes from a seeded ``random.Random``, as the workflow's come from
``workflow.random()``.
"""

from __future__ import annotations

import random

import pytest

from workflows import slots
from workflows.slots import SlotLearning, SlotPrior, SlotPriors, choose, prior_for
from workflows.vocabulary import Outcome

SLOTS = ["morning", "midday", "afternoon", "evening"]
EVENING_ONLY = {"morning": 0.02, "midday": 0.02, "afternoon": 0.05, "evening": 0.85}


def default_learning() -> SlotLearning:
    return SlotLearning.starting_from(SlotPriors("us", [prior_for(s, 0, 0) for s in SLOTS]))


# --- priors -------------------------------------------------------------------------------------


def test_without_portfolio_figures_the_prior_is_the_default_rate() -> None:
    prior = prior_for("evening", 0, 0)
    assert (prior.alpha, prior.beta) == pytest.approx(slots.default_prior())
    assert prior.alpha / (prior.alpha + prior.beta) == pytest.approx(slots.DEFAULT_ANSWER_RATE)
    # Weak: worth two of the borrower's own calls.
    assert prior.alpha + prior.beta == pytest.approx(slots.PRIOR_CALLS)


def test_a_few_calls_barely_move_the_prior_and_many_set_it() -> None:
    few = prior_for("evening", 2, 2)  # two answers out of two: not yet a 100 % slot
    assert few.alpha / (few.alpha + few.beta) < 0.45
    many = prior_for("evening", 8_000, 10_000)
    assert many.alpha / (many.alpha + many.beta) == pytest.approx(0.8, abs=0.01)
    assert (many.answered, many.calls) == (8_000, 10_000)


def test_a_slot_without_a_prior_takes_the_default() -> None:
    learning = SlotLearning()
    assert learning.posterior("evening") == pytest.approx(slots.default_prior())


# --- posteriors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "answered", "unanswered"),
    [
        (Outcome.ANSWERED, 1, 0),
        (Outcome.NO_ANSWER, 0, 1),
        (Outcome.BUSY, 0, 1),
        (Outcome.WRONG_PARTY, 0, 1),  # someone else answered: the borrower was not reached
        (Outcome.FAILED, 0, 0),  # the provider failed: nothing learnt of the borrower
    ],
)
def test_each_outcome_updates_the_slot_posterior(
    outcome: Outcome, answered: int, unanswered: int
) -> None:
    learning = default_learning()
    alpha, beta = learning.posterior("evening")
    learning.record("evening", outcome)
    assert learning.posterior("evening") == pytest.approx((alpha + answered, beta + unanswered))
    assert learning.posterior("morning") == pytest.approx(slots.default_prior())


def test_the_borrowers_earlier_calls_start_the_posterior() -> None:
    loaded = SlotPriors(
        "cn", [prior_for(s, 0, 0) for s in SLOTS], answered={"evening": 2}, unanswered={"noon": 1}
    )
    learning = SlotLearning.starting_from(loaded)
    alpha, beta = slots.default_prior()
    assert learning.posterior("evening") == pytest.approx((alpha + 2, beta))
    learning.record("evening", Outcome.ANSWERED)
    assert loaded.answered == {"evening": 2}, "the loaded priors are not changed"


# --- the sampler --------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_choice() -> None:
    learning = default_learning()
    learning.record("evening", Outcome.ANSWERED)
    first = choose(learning, SLOTS, random.Random(42))
    again = choose(learning, SLOTS, random.Random(42))
    assert first == again


def test_untried_slots_are_explored_first_and_tried_ones_wait() -> None:
    learning = default_learning()
    learning.record("morning", Outcome.NO_ANSWER)
    learning.record("evening", Outcome.BUSY)
    for seed in range(200):
        choice = choose(learning, SLOTS, random.Random(seed))
        assert set(choice.order) == {"midday", "afternoon"}
        why = choice.why()
        assert why["morning"].startswith("skipped: tried without an answer")
        assert "untried" in why[choice.order[0]] and why[choice.order[0]].startswith("#1")


def test_once_every_slot_is_tried_all_compete_again() -> None:
    learning = default_learning()
    for slot in SLOTS:
        learning.record(slot, Outcome.NO_ANSWER)
    firsts = {choose(learning, SLOTS, random.Random(seed)).order[0] for seed in range(200)}
    assert firsts == set(SLOTS)


def test_after_an_answer_untried_slots_no_longer_come_first() -> None:
    learning = default_learning()
    learning.record("evening", Outcome.ANSWERED)
    choice = choose(learning, SLOTS, random.Random(0))
    assert sorted(choice.order) == sorted(SLOTS)


def test_untried_slots_are_ordered_by_the_portfolio_prior() -> None:
    portfolio = [prior_for(s, 10, 1000) for s in SLOTS[:3]] + [prior_for("evening", 700, 1000)]
    learning = SlotLearning.starting_from(SlotPriors("us", portfolio))
    firsts = [choose(learning, SLOTS, random.Random(seed)).order[0] for seed in range(500)]
    assert firsts.count("evening") > 0.8 * len(firsts)


def test_after_one_evening_answer_the_evening_is_most_often_first() -> None:
    # The old rotation would start again from the morning; the sampler aims at the evening.
    learning = default_learning()
    for slot in ("morning", "midday", "afternoon"):
        learning.record(slot, Outcome.NO_ANSWER)
    learning.record("evening", Outcome.ANSWERED)
    firsts = [choose(learning, SLOTS, random.Random(seed)).order[0] for seed in range(1000)]
    assert firsts.count("evening") > 0.6 * len(firsts)
    learning.record("evening", Outcome.ANSWERED)
    learning.record("morning", Outcome.NO_ANSWER)
    firsts = [choose(learning, SLOTS, random.Random(seed)).order[0] for seed in range(1000)]
    assert firsts.count("evening") > 0.8 * len(firsts)


def test_every_slot_has_a_reason_with_its_draw() -> None:
    learning = default_learning()
    learning.record("evening", Outcome.ANSWERED)
    why = choose(learning, SLOTS, random.Random(3)).why()
    assert set(why) == set(SLOTS)
    assert all("from Beta(" in reason for reason in why.values())
    assert "Beta(1.60, 1.40)" in why["evening"]  # the default prior and one answer


def _calls_to_reach(
    rates: dict[str, float], learn: bool, rng: random.Random, calls: int = 12
) -> list[bool]:
    """A borrower called ``calls`` times, one slot a call: which calls were answered. Without
    ``learn``, the old rotation: slots in the day's order, skipping the ones tried without an
    answer until all are tried, starting again after an answer."""
    learning = default_learning()
    tried: list[str] = []
    answered = []
    for _ in range(calls):
        if learn:
            slot = choose(learning, SLOTS, rng).order[0]
        else:
            slot = next(s for s in SLOTS if s not in tried)
        took = rng.random() < rates[slot]
        learning.record(slot, Outcome.ANSWERED if took else Outcome.NO_ANSWER)
        tried = [] if took else [*tried, slot]
        if set(tried) >= set(SLOTS):
            tried = []
        answered.append(took)
    return answered


def test_learning_reaches_an_evening_only_borrower_more_often_than_the_rotation() -> None:
    """The borrower answers only in the evening; after the first conversation, learning calls
    there again while the rotation starts over from the morning."""
    rng = random.Random(2026)
    borrowers = 400
    blind = [_calls_to_reach(EVENING_ONLY, False, rng) for _ in range(borrowers)]
    learnt = [_calls_to_reach(EVENING_ONLY, True, rng) for _ in range(borrowers)]
    blind_rate = sum(map(sum, blind)) / (12 * borrowers)
    learnt_rate = sum(map(sum, learnt)) / (12 * borrowers)
    print(f"right-party rate over 12 calls: rotation {blind_rate:.3f}, learning {learnt_rate:.3f}")
    assert learnt_rate > blind_rate + 0.15


def test_priors_carry_the_portfolio_figures() -> None:
    prior = prior_for("midday", 30, 100)
    assert isinstance(prior, SlotPrior)
    assert (prior.answered, prior.calls) == (30, 100)
