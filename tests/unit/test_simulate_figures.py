"""The pure parts of ``overdue simulate``: each arm's copy of the portfolio, the strategies asked
for, and the figures computed from loan results made by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from overdue.demo import portfolio
from overdue.simulate import SimulationError, arm_folder, arm_loans, resolve_arms
from overdue.simulate_figures import ArmRun, LoanResult, figures
from overdue.simulator import BorrowerSimulator

TODAY = datetime(2026, 12, 1, 12, tzinfo=UTC)


def test_each_arm_collects_the_same_personas_and_amounts_under_its_own_ids() -> None:
    base = portfolio(40, 3, "s3", TODAY)  # past 11 loans, every fifth is a second loan
    default, gentle = arm_loans(base, "default"), arm_loans(base, "gentle")
    simulator = BorrowerSimulator(seed=3)
    for original, a, b in zip(base, default, gentle, strict=True):
        for copy, arm in ((a, "default"), (b, "gentle")):
            assert copy.loan_id == f"{original.loan_id}-{arm}"
            assert copy.outstanding_minor == original.outstanding_minor
            assert copy.currency == original.currency
            assert copy.borrower.timezone == original.borrower.timezone
            assert simulator.persona_for(copy.borrower.borrower_id) == simulator.persona_for(
                original.borrower.borrower_id
            )
        assert a.borrower.phone != b.borrower.phone
        assert {c.phone for c in a.contacts}.isdisjoint({c.phone for c in b.contacts})
    # A borrower's second loan stays that borrower's, in each arm.
    shared = [i for i in range(1, len(base)) if base[i].borrower == base[i - 1].borrower]
    assert shared
    for i in shared:
        assert default[i].borrower == default[i - 1].borrower
    assert len({loan.borrower.phone for loan in default}) == len(
        {loan.borrower.borrower_id for loan in default}
    )


def test_strategies_are_named_or_given_as_files(tmp_path: Path) -> None:
    arms = resolve_arms(["default", "gentle"], None)
    assert [a.name for a in arms] == ["default", "gentle"]
    mine = tmp_path / "patient.toml"
    mine.write_text(arms[1].path.read_text().replace('name = "gentle"', 'name = "patient"'))
    assert resolve_arms([str(mine)], None)[0].name == "patient"
    lender = tmp_path / "lender"
    lender.mkdir()
    (lender / "patient.toml").write_text(mine.read_text())
    assert resolve_arms(["patient"], lender)[0].path == lender / "patient.toml"


@pytest.mark.parametrize(
    ("names", "says"),
    [
        ([], "at least one"),
        (["default", "default"], "each strategy once"),
        (["nowhere"], "neither a file nor a strategy"),
    ],
)
def test_bad_strategy_lists_are_refused(names: list[str], says: str) -> None:
    with pytest.raises(SimulationError, match=says):
        resolve_arms(names, None)


def test_a_strategy_file_whose_name_cannot_go_into_a_loan_id_is_refused(tmp_path: Path) -> None:
    odd = tmp_path / "my strategy.toml"
    odd.write_text(resolve_arms(["gentle"], None)[0].path.read_text())
    with pytest.raises(SimulationError, match="name the file with letters"):
        resolve_arms([str(odd)], None)


def test_a_broken_strategy_file_is_refused_naming_its_field(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "broken"\nversion = "1"\n')
    with pytest.raises(SimulationError, match=r"broken\.toml"):
        resolve_arms([str(broken)], None)


def test_an_arm_folder_assigns_every_loan_to_its_strategy(tmp_path: Path) -> None:
    from activities.assignment import assign, read_assignment
    from workflows.commands import SegmentFacts

    arm = resolve_arms(["gentle"], None)[0]
    folder = arm_folder(arm, tmp_path)
    rules = read_assignment(folder)
    for n in range(50):
        facts = SegmentFacts(f"L-{n}", "us", "personal", "<1k", None)
        assert assign(rules, facts).strategy == "gentle"
    assert (folder / "gentle.toml").read_text() == arm.path.read_text()


def _loan(
    n: int, *, cured: bool, contacts: int, calls: int, answered: int, **kw: object
) -> LoanResult:
    values: dict[str, object] = {
        "loan_id": f"L-{n}",
        "persona": "prompt_payer",
        "currency": "USD",
        "overdue_minor": 10_000,
        "recovered_minor": 10_000 if cured else 0,
        "final": "cured" if cured else "referred",
        "days_to_cure": float(n) if cured else None,
        "days_past_due": n,
        "stage": "early",
        "contacts": contacts,
        "borrower_calls": calls,
        "right_party": answered,
    }
    values.update(kw)
    return LoanResult(**values)  # type: ignore[arg-type]


def test_figures_of_hand_made_results() -> None:
    """Arm a: 2 cures of 4 loans (days 1 and 3), 20 contacts, 10 of 16 borrower calls answered;
    one loan paid 2,500 of 10,000 and one overpaid in CNY (a share counts at most all of it).
    Arm b: 1 cure of 4 (day 5), 12 contacts, 3 of 8 calls answered."""
    a = [
        _loan(1, cured=True, contacts=2, calls=2, answered=1),
        _loan(
            3, cured=True, contacts=4, calls=4, answered=3, currency="CNY", recovered_minor=12_000
        ),
        _loan(4, cured=False, contacts=10, calls=6, answered=6, recovered_minor=2_500),
        _loan(6, cured=False, contacts=4, calls=4, answered=0, final="open"),
    ]
    b = [
        _loan(5, cured=True, contacts=3, calls=2, answered=1),
        _loan(7, cured=False, contacts=3, calls=2, answered=1),
        _loan(8, cured=False, contacts=3, calls=2, answered=1),
        _loan(9, cured=False, contacts=3, calls=2, answered=0),
    ]
    start = datetime(2026, 12, 1, 12, tzinfo=UTC)
    report = figures([ArmRun("a", a, 60.0, start), ArmRun("b", b, 30.0, start)], seed=1)
    fa, fb = report["arms"]["a"]["figures"], report["arms"]["b"]["figures"]
    assert fa["cure_rate"]["estimate"] == 0.5
    assert fa["contacts_per_cure"]["estimate"] == 10.0  # 20 contacts / 2 cures
    assert fa["right_party_rate"]["estimate"] == 0.625  # 10 / 16
    assert fa["recovered_share"]["estimate"] == 0.5625  # (1 + 1 + 0.25 + 0) / 4
    assert fa["days_to_cure_median"]["estimate"] == 2.0
    assert fa["days_to_cure_mean"]["estimate"] == 2.0
    assert fb["contacts_per_cure"]["estimate"] == 12.0
    assert fb["right_party_rate"]["estimate"] == 0.375
    arm_a = report["arms"]["a"]
    assert arm_a["open_at_horizon"] == 1
    assert arm_a["by_currency"] == {
        "CNY": {"loans": 1, "overdue_minor": 10_000, "recovered_minor": 10_000},
        "USD": {"loans": 3, "overdue_minor": 30_000, "recovered_minor": 12_500},
    }
    assert arm_a["loans_per_minute"] == 4.0
    diff = report["differences"]["b - a"]
    assert diff["cure_rate"]["estimate"] == -0.25
    assert diff["cure_rate"]["method"] == "newcombe"
    assert diff["contacts_per_cure"]["estimate"] == 2.0
    assert diff["right_party_rate"]["estimate"] == -0.25
    for figure in (*fa.values(), *fb.values(), *diff.values()):
        if figure["low"] is not None:
            assert figure["low"] <= figure["estimate"] <= figure["high"]
    # The bootstrap is seeded: the same results give the same report.
    again = figures([ArmRun("a", a, 60.0, start), ArmRun("b", b, 30.0, start)], seed=1)
    assert again == report


def test_a_figure_without_data_is_none_not_an_error() -> None:
    none_cured = [_loan(1, cured=False, contacts=3, calls=0, answered=0)]
    start = datetime(2026, 12, 1, 12, tzinfo=UTC)
    report = figures([ArmRun("a", none_cured, 1.0, start)], seed=1)
    f = report["arms"]["a"]["figures"]
    assert f["contacts_per_cure"]["estimate"] is None
    assert f["days_to_cure_median"]["estimate"] is None
    assert f["right_party_rate"]["estimate"] is None
    assert f["cure_rate"]["estimate"] == 0.0
