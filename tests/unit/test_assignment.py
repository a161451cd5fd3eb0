"""Assigning strategies to loans: segments in order, champion and challengers split by a stable
hash, and an assignment file checked field by field."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from activities.assignment import AssignmentIn, assign, read_assignment
from activities.strategy import StrategyActivities
from overdue.schemas import Invalid, validate
from workflows.commands import LoadStrategy, SegmentFacts

PACKAGED = Path(__file__).parents[2] / "overdue" / "strategies"


def _loan(loan_id: str = "L-1", **facts: object) -> SegmentFacts:
    values: dict[str, object] = {
        "jurisdiction": "us",
        "product": "personal",
        "amount_band": "<1k",
        "risk_score": None,
    }
    values.update(facts)
    return SegmentFacts(loan_id=loan_id, **values)  # type: ignore[arg-type]


RULES = validate(
    AssignmentIn,
    {
        "segments": [
            {
                "name": "cn-risky",
                "jurisdiction": ["cn"],
                "min_risk_score": 700,
                "champion": "default",
                "split": {"default": 100},
            },
            {
                "name": "small",
                "amount_band": ["<1k"],
                "champion": "default",
                "split": {"default": 80, "gentle": 20},
            },
            {"name": "rest", "champion": "default", "split": {"default": 100}},
        ]
    },
)


def test_the_first_segment_whose_every_condition_holds_takes_the_loan() -> None:
    assert assign(RULES, _loan(jurisdiction="cn", risk_score=750)).segment == "cn-risky"
    # A loan without a score never meets a condition on the score.
    assert assign(RULES, _loan(jurisdiction="cn", amount_band="1k-10k")).segment == "rest"
    assert assign(RULES, _loan(jurisdiction="cn", risk_score=300)).segment == "small"
    assert assign(None, _loan()).strategy == "default"


def test_a_split_follows_its_shares_and_a_loan_always_lands_in_the_same_arm() -> None:
    arms = Counter(assign(RULES, _loan(f"L-{n}")).strategy for n in range(10_000))
    assert 1_850 <= arms["gentle"] <= 2_150, arms  # 20% of 10,000, within 3.75 sigma
    for n in range(200):
        first = assign(RULES, _loan(f"L-{n}"))
        assert assign(RULES, _loan(f"L-{n}")) == first
        assert first.champion == (first.strategy == "default")


@pytest.mark.parametrize(
    ("segment", "field"),
    [
        ({"split": {"default": 60, "gentle": 30}}, "segments[0].split"),
        ({"champion": "bold"}, "segments[0].champion"),
        ({"amount_band": ["huge"]}, "segments[0].amount_band"),
        ({"min_risk_score": -1}, "segments[0].min_risk_score"),
        ({"colour": "red"}, "segments[0].colour"),
    ],
)
def test_a_bad_assignment_file_names_its_field(segment: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"name": "s", "champion": "default", "split": {"default": 100}}
    with pytest.raises(Invalid) as problem:
        validate(AssignmentIn, {"segments": [{**base, **segment}]})
    assert field in str(problem.value)


async def test_a_lenders_folder_assigns_and_the_packaged_strategies_fill_in(
    tmp_path: Path,
) -> None:
    (tmp_path / "assignment.toml").write_text(
        '[[segments]]\nname = "all"\nchampion = "default"\nsplit = { gentle = 50, default = 50 }\n'
    )
    loading = StrategyActivities(tmp_path, PACKAGED)
    chosen = {
        (s.name, s.segment, s.champion, s.assigned)
        for s in [
            await loading.load_strategy(LoadStrategy(loan=_loan(f"L-{n}"))) for n in range(40)
        ]
    }
    assert chosen == {("default", "all", True, True), ("gentle", "all", False, True)}
    # By name, as before the assignment rules: not assigned.
    assert (await loading.load_strategy(LoadStrategy())).assigned is False


def test_the_packaged_rules_collect_everyone_with_the_default_strategy() -> None:
    rules = read_assignment(PACKAGED)
    assert assign(rules, _loan(jurisdiction="cn", amount_band=">=100k")).strategy == "default"


async def test_every_packaged_strategy_loads_and_the_control_rotates_blindly() -> None:
    loading = StrategyActivities(PACKAGED)
    loaded = {
        path.stem: await loading.load_strategy(LoadStrategy(name=path.stem))
        for path in PACKAGED.glob("*.toml")
        if path.name != "assignment.toml"
    }
    assert set(loaded) >= {"default", "gentle", "blind-rotation"}
    assert {name: s.learn_slots for name, s in loaded.items()} == {
        **{name: True for name in loaded},
        "blind-rotation": False,
    }
