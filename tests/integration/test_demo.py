"""``overdue demo`` end to end, as a user runs it: its own embedded stack, a fresh data dir.

The demo runs once for the module (under two minutes: fourteen loans, a collection day of
2 real seconds, the slowest path being forbearance's six weekly instalments). Seed 7's first
fourteen loans hold every persona once, in ``PERSONA_WEIGHTS`` order, and the back office's
decisions are fixed by the seed and the borrower, so every persona's expected path is known.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from overdue.demo import portfolio
from overdue.simulator import PERSONAS, BorrowerSimulator
from workflows.vocabulary import SituationState

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

OVERDUE = str(Path(sys.executable).parent / "overdue")
SEED = 7  # the demo's default
LOANS = 14
CURED = {"cured_in_early", "cured_in_middle", "cured_in_late", "cured_in_legal"}


@dataclass
class DemoRun:
    code: int
    stdout: str
    stderr: str
    seconds: float

    def report(self) -> dict[str, Any]:
        assert self.stdout.strip(), f"no JSON on stdout; stderr:\n{self.stderr}"
        report: dict[str, Any] = json.loads(self.stdout)
        return report


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    data_dir = tmp_path_factory.mktemp("demo-home")
    # Nothing configured: the demo starts its own stack (on free ports if 7233/8233 are taken).
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TEMPORAL_ADDRESS", "DATABASE_URL", "OVERDUE_HOME", "OVERDUE_SIM_SEED")
    }
    started = time.monotonic()
    done = subprocess.run(
        [
            OVERDUE,
            "demo",
            "--loans",
            str(LOANS),
            "--day-seconds",
            "1",
            "--json",
            "--data-dir",
            str(data_dir),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    return DemoRun(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


@pytest.fixture(scope="module")
def report(demo: DemoRun) -> dict[str, Any]:
    assert demo.code == 0, f"exit {demo.code}; stderr:\n{demo.stderr}"
    return demo.report()


def _first(persona: str) -> str:
    """The borrower id of the persona's first loan in seed 7's portfolio."""
    book = portfolio(LOANS, SEED, "test", datetime.now(UTC))
    return next(
        loan.borrower.borrower_id
        for loan in book
        if loan.borrower.borrower_id.startswith(f"{persona}-")
    )


def _decided(what: str, outcome_below: float, persona: str) -> bool:
    """The back office's first decision for the persona's first loan (see ``BackOffice``)."""
    draw = BorrowerSimulator(seed=SEED).draw("back_office", what, _first(persona), 1)
    return draw < outcome_below


def test_the_demo_ends_cleanly_with_a_json_summary(demo: DemoRun, report: dict[str, Any]) -> None:
    assert "Traceback" not in demo.stderr
    assert "error:" not in demo.stderr
    assert report["loans"] == LOANS
    assert report["seed"] == SEED
    assert sum(report["final_states"].values()) == LOANS
    assert "details" not in report  # only with --details
    print(f"demo: {demo.seconds:.0f} s wall, {report['elapsed_seconds']} s collecting")


def test_every_persona_is_in_the_portfolio(report: dict[str, Any]) -> None:
    assert set(report["by_persona"]) == set(PERSONAS)
    assert sum(n for finals in report["by_persona"].values() for n in finals.values()) == LOANS


def test_loans_are_counted_by_final_situation(report: dict[str, Any]) -> None:
    situations = report["situations"]
    assert sum(situations.values()) == LOANS
    # The machine's situation states: a death ends in the estate's, a plan in its own.
    assert sum(situations.get(s, 0) for s in SituationState.DECEASED) >= 1
    assert sum(situations.get(s, 0) for s in SituationState.HARDSHIP) >= 1
    assert set(situations) <= set(SituationState)


def _finals(report: dict[str, Any], persona: str) -> set[str]:
    return set(report["by_persona"][persona])


def test_prompt_payers_are_cured_before_late(report: dict[str, Any]) -> None:
    # In early, but for a borrower who misses the first days' calls (one in five goes unanswered).
    assert _finals(report, "prompt_payer") <= {"cured_in_early", "cured_in_middle"}


def test_borrowers_who_never_answer_are_referred(report: dict[str, Any]) -> None:
    assert _finals(report, "never_answers") == {"referred"}
    assert report["escalations"]["references_contacted"] >= 1


def test_promise_breakers_escalate_to_referral(report: dict[str, Any]) -> None:
    assert _finals(report, "promise_breaker") == {"referred"}


def test_disputes_are_decided_by_the_back_office(report: dict[str, Any]) -> None:
    disputers = sum(report["by_persona"]["disputer"].values())
    decided = report["back_office"]["decisions"].get("dispute", {})
    assert sum(decided.values()) >= disputers
    assert report["final_states"].get("dispute_upheld", 0) == decided.get("upheld", 0)
    # Upheld closes the loan; rejected resumes it, and the disputer then pays.
    assert _finals(report, "disputer") <= {"dispute_upheld"} | CURED
    expected = "dispute_upheld" if _decided("dispute", 1 / 3, "disputer") else "cured"
    finals = _finals(report, "disputer")
    assert any(final.startswith(expected) for final in finals), finals


def test_complainers_pay_after_complaining(report: dict[str, Any]) -> None:
    assert _finals(report, "complainer") <= CURED


def test_a_reported_death_closes_through_the_estate(report: dict[str, Any]) -> None:
    assert _finals(report, "deceased") <= {"estate_claim", "written_off"}
    closing = "estate_claim" if _decided("estate", 1 / 2, "deceased") else "written_off"
    assert closing in _finals(report, "deceased")
    assert report["attempts"]["call"].get("wrong_party", 0) >= 1


def test_short_hardship_is_paid_off_through_the_arrangement(report: dict[str, Any]) -> None:
    assert _finals(report, "hardship_short") <= CURED
    assert report["back_office"]["instalments_paid"] >= 3


def test_long_hardship_is_reviewed(report: dict[str, Any]) -> None:
    decided = report["back_office"]["decisions"].get("hardship", {})
    assert sum(decided.values()) >= 1
    if _decided("hardship", 2 / 3, "hardship_long"):
        # Forbearance: six smaller instalments, paid on time.
        assert _finals(report, "hardship_long") <= CURED
    else:
        assert _finals(report, "hardship_long") == {"referred"}


@pytest.mark.parametrize("persona", ["evening_only", "partial_payer", "day_worker", "shift_worker"])
def test_answering_payers_are_cured(report: dict[str, Any], persona: str) -> None:
    assert _finals(report, persona) <= CURED


def test_reluctant_borrowers_refuse_and_are_referred(report: dict[str, Any]) -> None:
    assert _finals(report, "reluctant") == {"referred"}


def test_borrowers_who_answer_but_cannot_pay_are_referred(report: dict[str, Any]) -> None:
    assert _finals(report, "night_owl") == {"referred"}


def test_unanswered_calls_rotate_through_the_day(report: dict[str, Any]) -> None:
    # A borrower who never answers is tried in every slot of the day before any slot again,
    # on the demo's compressed clock too (its calls take place at their planned moments).
    rotation = report["rotation"]
    assert rotation, "no never-answering borrower was called"
    for loan_id, slots in rotation.items():
        assert len(slots) == len(set(slots)), f"{loan_id}: {slots}"


def test_the_demo_writes_the_report_of_its_portfolio(report: dict[str, Any]) -> None:
    # The page lies in the demo's data dir, and holds the demo's plots (the browser test of
    # the page is tests/integration/test_report.py's).
    path = Path(report["report_path"])
    assert path.is_file() and path.parent.name == "reports"
    page = path.read_text(encoding="utf-8")
    for figure in ("roll-rates", "cure-rates", "recovery", "rpc-slot", "rpc-hour"):
        assert f'data-figure="{figure}"' in page
    assert "<script src=" not in page
