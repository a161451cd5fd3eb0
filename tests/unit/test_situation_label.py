"""The ``Situation`` label operators filter by is derived from the machine's situation region.

Only the normal situation shows what outreach last revealed; every other state has its own
label. Histories recorded before ``situation-from-machine`` showed some outcome codes instead,
and replay them as they were.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from tests.unit.test_machine import PATHS, reached, restored
from workflows import profiles
from workflows.collection import events, patches, rules
from workflows.collection.context import Collection
from workflows.machine import CollectionMachine
from workflows.types import Borrower, Loan
from workflows.vocabulary import Situation, Stage

LOAN = Loan(
    loan_id="L-1",
    borrower=Borrower("B-1", "Ann Lee", "+12025550100", "America/New_York"),
    product="personal",
    principal_minor=100_000,
    outstanding_minor=50_000,
    currency="USD",
    due_date="2026-11-01",
    jurisdiction="us",
)


class Steps(Collection):
    """The steps' port, with a choice of whether the history takes ``situation-from-machine``."""

    new_history: bool = True

    def patched(self, patch_id: str) -> bool:
        assert patch_id == patches.SITUATION_FROM_MACHINE
        return self.new_history


def steps(machine: CollectionMachine, *, new_history: bool = True) -> Steps:
    c = Steps(
        loan=LOAN,
        zone=ZoneInfo("America/New_York"),
        profile=profiles.profile_for("us"),
        state=machine.loan,
        machine=machine,
    )
    c.new_history = new_history
    return c


def test_every_situation_but_normal_has_its_label() -> None:
    assert set(rules.REGION_LABELS) == set(CollectionMachine.SITUATIONS) - {"normal"}
    assert not set(rules.REGION_LABELS.values()) & set(rules.OUTREACH_LABELS)


@pytest.mark.parametrize("situation", sorted(set(PATHS) - {"normal"}))
def test_the_machine_names_the_label_whatever_outreach_revealed(situation: str) -> None:
    state = reached(Stage.EARLY, situation).loan
    state.situation = Situation.REFUSAL
    assert rules.situation_label(state) == rules.REGION_LABELS[situation]


@pytest.mark.parametrize("label", rules.OUTREACH_LABELS)
def test_the_normal_situation_shows_what_outreach_revealed(label: Situation) -> None:
    state = restored(Stage.MIDDLE).loan
    state.situation = label
    assert rules.situation_label(state) == label


def test_a_closed_loan_keeps_the_label_it_closed_in() -> None:
    machine = reached(Stage.EARLY, "disputed")
    assert machine.take("dispute_closed")
    assert machine.is_closed
    assert rules.situation_label(machine.loan) == Situation.DISPUTE


def test_a_reported_code_shows_only_where_outreach_could_reveal_it() -> None:
    normal = steps(restored(Stage.EARLY))
    events.report_label(normal, Situation.NO_ANSWER)
    assert rules.situation_label(normal.state) == Situation.NO_ANSWER
    events.report_label(normal, Situation.HARDSHIP)  # no hardship was reported
    assert rules.situation_label(normal.state) == Situation.NO_ANSWER
    disputed = steps(reached(Stage.EARLY, "disputed"))
    events.report_label(disputed, Situation.REFUSAL)
    assert rules.situation_label(disputed.state) == Situation.DISPUTE


def test_an_older_history_shows_the_reported_code_as_it_did() -> None:
    c = steps(reached(Stage.EARLY, "deceased_reported"), new_history=False)
    events.report_label(c, Situation.REFUSAL)
    assert rules.situation_label(c.state) == Situation.REFUSAL
