"""The README's state diagram, generated from the collection machine itself.

``python -m overdue.diagram`` rewrites the diagram between the README's markers; a test fails when
the README copy is stale.
"""

from __future__ import annotations

import re
from pathlib import Path

from workflows.machine import CollectionMachine

BEGIN, END = "<!-- machine:begin -->", "<!-- machine:end -->"
README = Path(__file__).resolve().parent.parent / "README.md"


def mermaid() -> str:
    return f"{CollectionMachine:mermaid}".strip()


def readme_block() -> str:
    return f"{BEGIN}\n```mermaid\n{mermaid()}\n```\n{END}"


def update_readme(path: Path = README) -> bool:
    """Rewrite the diagram in ``path``. Returns True when it changed."""
    text = path.read_text()
    updated = re.sub(
        re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: readme_block(), text, flags=re.S
    )
    if updated != text:
        path.write_text(updated)
    return updated != text


if __name__ == "__main__":
    print("README diagram updated" if update_readme() else "README diagram already current")
