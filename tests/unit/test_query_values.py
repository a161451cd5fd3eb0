"""The README lists every value usable in a query for every search attribute, as the code
publishes them: its table is the one ``overdue.query_values`` generates."""

from __future__ import annotations

from pathlib import Path

from overdue import query_values
from workflows import search_attributes as sa
from workflows.collection.rules import OUTREACH_LABELS, REGION_LABELS
from workflows.machine import CollectionMachine
from workflows.vocabulary import SituationState

README = Path(__file__).parents[2] / "README.md"


def readme_table() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(query_values.BEGIN)
    end = text.index(query_values.END, start) + len(query_values.END)
    return text[start:end]


def test_the_readme_table_is_the_generated_one() -> None:
    # On failure: paste `python -c "from overdue import query_values; print(query_values.table())"`
    # over the README's table.
    assert readme_table() == query_values.table()


def test_every_attribute_has_its_row() -> None:
    assert set(query_values.values()) == {key.name for key in sa.ALL}


def test_situation_values_are_the_machine_states() -> None:
    assert tuple(SituationState) == CollectionMachine.SITUATIONS
    # Every state but normal had an older label; normal shows its outreach result beside it.
    assert set(REGION_LABELS) == set(SituationState) - {SituationState.NORMAL}
    assert f"`{OUTREACH_LABELS[0]}`" in query_values.values()[sa.OUTREACH.name][0]


def test_packaged_strategies_are_listed() -> None:
    assert "default@2026-12" in query_values.packaged_strategies()
