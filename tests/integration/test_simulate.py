"""``overdue simulate`` end to end, as a user runs it: the real workflow and activities on its own
time-skipping server and throwaway PostgreSQL, two strategies on eight seeded loans.

The command runs twice with one seed (each run about 20 s on a quiet machine). The portfolio,
the strategies' assignment and every figure's method are fixed by the seed; the collections
themselves are not quite: the planner picks a call's minute within its slot with
``workflow.random()``, which the SDK seeds from the run id the server draws, and the test server's
clock runs on in real time while an activity runs. So the second run must collect the same loans
under the same strategies, and its figures, however they differ, must keep their form.
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
from overdue.simulate_figures import FIGURES
from overdue.simulator import BorrowerSimulator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

OVERDUE = str(Path(sys.executable).parent / "overdue")
LOANS, SEED = 8, 3
ARMS = ["default", "gentle"]
FINAL = {"cured", "referred", "dispute_upheld", "written_off", "estate_claim", "open"}


@dataclass
class Run:
    report: dict[str, Any]
    stderr: str
    seconds: float
    html: Path


def _simulate(folder: Path) -> Run:
    html = folder / "report.html"
    # Nothing configured is used: simulate starts its own servers whatever the environment says.
    started = time.monotonic()
    done = subprocess.run(
        [
            OVERDUE,
            "simulate",
            *(arg for arm in ARMS for arg in ("--strategy", arm)),
            "--loans",
            str(LOANS),
            "--seed",
            str(SEED),
            "--json",
            "--details",
            "--html",
            str(html),
        ],
        env={**os.environ, "OVERDUE_HOME": str(folder / "home")},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}; stderr:\n{done.stderr}"
    assert done.stdout.strip(), f"no JSON on stdout; stderr:\n{done.stderr}"
    return Run(json.loads(done.stdout), done.stderr, time.monotonic() - started, html)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Run]:
    return [_simulate(tmp_path_factory.mktemp(f"simulate-{n}")) for n in (1, 2)]


@pytest.fixture(scope="module")
def report(runs: list[Run]) -> dict[str, Any]:
    return runs[0].report


def test_the_report_has_every_figure_per_strategy_and_the_difference(
    runs: list[Run], report: dict[str, Any]
) -> None:
    print(f"simulate: {[round(r.seconds) for r in runs]} s wall per run")
    assert "Traceback" not in runs[0].stderr
    assert (report["loans"], report["seed"], report["days"]) == (LOANS, SEED, 40)
    assert report["strategies"] == ARMS
    assert report["confidence"] == 0.95
    assert set(report["arms"]) == set(ARMS)
    for arm in report["arms"].values():
        assert set(arm["figures"]) == set(FIGURES)
        assert arm["loans"] == LOANS
        assert sum(arm["final_states"].values()) == LOANS
        assert set(arm["final_states"]) <= FINAL
        assert arm["cured"] == arm["final_states"].get("cured", 0)
        assert arm["figures"]["cure_rate"]["method"] == "wilson"
        assert arm["contacts"] >= arm["borrower_calls"] >= arm["right_party_contacts"] > 0
    assert set(report["differences"]) == {"gentle - default"}
    difference = report["differences"]["gentle - default"]
    assert set(difference) == set(FIGURES)
    assert difference["cure_rate"]["method"] == "newcombe"
    for figure in FIGURES:
        a = report["arms"]["default"]["figures"][figure]["estimate"]
        b = report["arms"]["gentle"]["figures"][figure]["estimate"]
        if a is not None and b is not None:
            assert difference[figure]["estimate"] == pytest.approx(b - a, abs=1e-3)


def test_every_loan_stands_in_the_ledger_where_its_audit_log_says(runs: list[Run]) -> None:
    # The figures come from the workflows' results, ``overdue report``'s from the audit log: a
    # collection closed in the ledger without its closing change in the log would count as
    # cured in one and not in the other.
    for run in runs:
        assert run.report["stage_disagreements"] == []


def test_both_strategies_collected_the_same_personas_and_amounts(report: dict[str, Any]) -> None:
    expected = portfolio(LOANS, SEED, f"s{SEED}", datetime.now(UTC))
    simulator = BorrowerSimulator(seed=SEED)
    want = [
        (
            loan.loan_id,
            simulator.persona_for(loan.borrower.borrower_id).name,
            loan.currency,
            loan.outstanding_minor,
        )
        for loan in expected
    ]
    for name, arm in report["arms"].items():
        got = [
            (r["loan_id"].removesuffix(f"-{name}"), r["persona"], r["currency"], r["overdue_minor"])
            for r in arm["results"]
        ]
        assert got == want
        # Each loan was collected by its arm's strategy, as the ledger recorded its assignment.
        assert {r["strategy"] for r in arm["results"]} == {name}
    assert report["arms"]["default"]["personas"] == report["arms"]["gentle"]["personas"]
    overdue = {
        name: {c: v["overdue_minor"] for c, v in arm["by_currency"].items()}
        for name, arm in report["arms"].items()
    }
    assert overdue["default"] == overdue["gentle"]


def test_every_interval_contains_its_estimate(report: dict[str, Any]) -> None:
    entries = [
        *(f for arm in report["arms"].values() for f in arm["figures"].values()),
        *report["differences"]["gentle - default"].values(),
    ]
    for entry in entries:
        if entry["estimate"] is None:
            assert entry["low"] is None and entry["high"] is None
            continue
        assert entry["low"] is not None and entry["high"] is not None, entry
        assert entry["low"] <= entry["estimate"] <= entry["high"], entry
    for arm in report["arms"].values():
        for share in ("cure_rate", "recovered_share", "right_party_rate"):
            f = arm["figures"][share]
            assert 0 <= f["low"] <= f["high"] <= 1


def test_the_same_seed_collects_the_same_loans_under_the_same_strategies(
    runs: list[Run],
) -> None:
    first, second = (r.report for r in runs)
    for name in ARMS:
        a, b = first["arms"][name], second["arms"][name]
        same = ("loan_id", "persona", "currency", "overdue_minor", "strategy")
        assert [{k: r[k] for k in same} for r in a["results"]] == [
            {k: r[k] for k in same} for r in b["results"]
        ]
        assert a["started_at"][10:] == b["started_at"][10:]  # the same hour of the day
    for run in runs:
        for arm in run.report["arms"].values():
            assert {f["method"] for f in arm["figures"].values()} == {"wilson", "bootstrap"}
    # What may differ, and how much, is for the report to tell (see the module's docstring).
    changed = {
        (name, figure): (
            first["arms"][name]["figures"][figure]["estimate"],
            second["arms"][name]["figures"][figure]["estimate"],
        )
        for name in ARMS
        for figure in FIGURES
        if first["arms"][name]["figures"][figure] != second["arms"][name]["figures"][figure]
    }
    print(f"figures that differ between two runs of seed {SEED}: {changed or 'none'}")


def test_the_html_report_is_written(runs: list[Run], report: dict[str, Any]) -> None:
    """The comparison on top of ``overdue report``'s page for the simulated loans, split by
    strategy (its plots render in Chromium in ``test_report``; here, the page's parts)."""
    page = runs[0].html.read_text()
    assert report["html"] == str(runs[0].html)
    assert page.startswith("<!DOCTYPE html>")
    assert page.index("Strategies compared") < page.index('data-figure="roll-rates"')
    assert 'src="http' not in page  # plotly.js is inlined: the page opens offline
    for text in ("gentle - default", "cure rate", "right-party contact rate", "Wilson score"):
        assert text in page
    for strategy in ("default@", "gentle@"):  # the report's groups: name@version
        assert strategy in page
