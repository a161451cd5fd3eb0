"""Call slots that learn: Thompson sampling over the strategy's slots, one Beta per slot.

Each slot's chance that the borrower answers is a Beta distribution. It starts from the
portfolio's right-party answer rate in the borrower's jurisdiction and slot (``prior_for``, read
from the ledger by an activity, so it is recorded in history), and the borrower's own call
outcomes update it: answered by the borrower is a success; no answer, busy and wrong party are
failures. Before each borrower call the workflow draws one value per slot from these
distributions (with ``workflow.random()``) and aims at the best slot still open
(``choose``); the contact planner then decides the moment as before. A slot the borrower has
never been called in is explored first, until the borrower has answered somewhere.

Pure and deterministic: the random source comes in as an argument.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from workflows.vocabulary import Outcome

# The answer rate assumed where the portfolio has no figures yet.
DEFAULT_ANSWER_RATE = 0.3
# The portfolio's own rate outweighs the default only once it rests on more calls than this.
SHRINK_TOWARDS_DEFAULT = 20.0
# What the portfolio prior is worth in the borrower's own calls: kept small, so that a borrower's
# first answers outweigh it (one answer moves a slot's mean from 0.3 to about 0.5).
PRIOR_CALLS = 2.0
# The portfolio's figures look back this many days.
PORTFOLIO_DAYS = 90

SUCCESS = (Outcome.ANSWERED,)
FAILURE = (Outcome.NO_ANSWER, Outcome.BUSY, Outcome.WRONG_PARTY)


@dataclass
class SlotPrior:
    """One slot's Beta prior, and the portfolio's figures it comes from."""

    slot: str
    alpha: float
    beta: float
    answered: int = 0  # right-party answers in the portfolio's window
    calls: int = 0  # calls with a known answer (answered, no answer, busy, wrong party)


@dataclass
class SlotPriors:
    """The ``load_slot_priors`` activity's answer: the jurisdiction's priors by slot, and what
    the borrower's own earlier calls (any of their loans, in the ledger) already showed."""

    jurisdiction: str
    slots: list[SlotPrior] = field(default_factory=list)
    answered: dict[str, int] = field(default_factory=dict)  # the borrower's, by slot
    unanswered: dict[str, int] = field(default_factory=dict)


@dataclass
class SlotLearning:
    """What a collection has learnt of when its borrower answers: the priors, and the outcomes
    of the borrower's calls by slot. Carried across continue-as-new in the state."""

    priors: list[SlotPrior] = field(default_factory=list)
    answered: dict[str, int] = field(default_factory=dict)
    unanswered: dict[str, int] = field(default_factory=dict)

    @classmethod
    def starting_from(cls, loaded: SlotPriors) -> SlotLearning:
        return cls(list(loaded.slots), dict(loaded.answered), dict(loaded.unanswered))

    def posterior(self, slot: str) -> tuple[float, float]:
        """The slot's Beta(alpha, beta): its prior plus the borrower's answers and misses."""
        prior = next((p for p in self.priors if p.slot == slot), None)
        alpha, beta = (prior.alpha, prior.beta) if prior else default_prior()
        return alpha + self.answered.get(slot, 0), beta + self.unanswered.get(slot, 0)

    def calls_in(self, slot: str) -> int:
        return self.answered.get(slot, 0) + self.unanswered.get(slot, 0)

    def record(self, slot: str, outcome: str) -> None:
        """Fold one borrower call's outcome in; outcomes that say nothing of the borrower's
        habits (a provider failure) are left out."""
        if outcome in SUCCESS:
            self.answered[slot] = self.answered.get(slot, 0) + 1
        elif outcome in FAILURE:
            self.unanswered[slot] = self.unanswered.get(slot, 0) + 1


def default_prior() -> tuple[float, float]:
    return _beta_of(DEFAULT_ANSWER_RATE)


def _beta_of(rate: float) -> tuple[float, float]:
    return PRIOR_CALLS * rate, PRIOR_CALLS * (1 - rate)


def prior_for(slot: str, answered: int, calls: int) -> SlotPrior:
    """A slot's prior from the portfolio's figures, shrunk towards the default rate when they
    rest on few calls (no calls at all: the default)."""
    rate = (answered + SHRINK_TOWARDS_DEFAULT * DEFAULT_ANSWER_RATE) / (
        calls + SHRINK_TOWARDS_DEFAULT
    )
    alpha, beta = _beta_of(rate)
    return SlotPrior(slot, round(alpha, 4), round(beta, 4), answered, calls)


def waiting_slots(learning: SlotLearning, slot_names: Sequence[str]) -> set[str]:
    """The slots that wait while others are explored: until the borrower has answered in some
    slot, those tried without an answer, as long as a slot remains untried."""
    untried = [s for s in slot_names if learning.calls_in(s) == 0]
    if not untried or any(learning.answered.get(s, 0) for s in slot_names):
        return set()
    return set(slot_names) - set(untried)


@dataclass(frozen=True)
class SlotChoice:
    """Which slots to aim for, best first, and why each slot stands where it does (for the
    audit entry of the call)."""

    order: tuple[str, ...]
    reasons: tuple[tuple[str, str], ...]

    def why(self) -> dict[str, str]:
        return dict(self.reasons)


def choose(learning: SlotLearning, slot_names: Sequence[str], rng: random.Random) -> SlotChoice:
    """Draw one answer chance per slot from its posterior and rank the slots by it.

    Exploration: until the borrower has answered in some slot, slots never tried come first and
    the slots tried without an answer wait until every slot has been tried (the old rotation's
    guarantee, ordered by the draws instead of the clock). Once the borrower has answered, every
    slot competes on its draw alone.

    Every slot is drawn, in the strategy's order, whatever is skipped: the random source is used
    the same way in every case.
    """
    drawn = {}
    for slot in slot_names:
        alpha, beta = learning.posterior(slot)
        drawn[slot] = (rng.betavariate(alpha, beta), alpha, beta)
    waiting = waiting_slots(learning, slot_names)
    candidates = [s for s in slot_names if s not in waiting]
    order = sorted(candidates, key=lambda s: -drawn[s][0])
    reasons = []
    for slot in slot_names:
        value, alpha, beta = drawn[slot]
        sample = f"drew {value:.3f} from Beta({alpha:.2f}, {beta:.2f})"
        if slot in order:
            rank = order.index(slot) + 1
            state = "untried" if learning.calls_in(slot) == 0 else "tried"
            reasons.append((slot, f"#{rank}: {sample}, {state}"))
        else:
            reasons.append((slot, f"skipped: tried without an answer, {sample}"))
    return SlotChoice(tuple(order), tuple(reasons))
