"""The README's state diagram is the machine's own, and it is current."""

from overdue.diagram import README, readme_block


def test_readme_diagram_is_generated_from_the_machine() -> None:
    assert readme_block() in README.read_text(), (
        "README.md's diagram is stale: run `python -m overdue.diagram`"
    )
