"""Reading a served notice back: ``overdue notice show``.

A notice's text names the borrower, so it lives only in the file the notice activity wrote
(0600, under the data dir) and never in workflow state, search attributes or the Web UI's
details: the ledger's ``notices`` row says where the file is and what it hashed to, and the text
is read from there and checked against that hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg


class NoticeNotFound(LookupError):
    """The loan or the notice asked for is not in the ledger, or its file cannot be read.

    The message names the field at fault (``loan_id: ...``, ``notice_id: ...``).
    """


@dataclass(frozen=True)
class ShownNotice:
    """A notice as the ledger recorded it, with its text."""

    notice_key: str
    loan_id: str
    kind: str
    issued_at: datetime
    path: str
    sha256: str
    text: str

    def as_json(self) -> dict[str, Any]:
        return {
            "notice_key": self.notice_key,
            "loan_id": self.loan_id,
            "kind": self.kind,
            "issued_at": self.issued_at.isoformat(),
            "path": self.path,
            "sha256": self.sha256,
            "text": self.text,
        }


async def find_notice(pool: asyncpg.Pool, loan_id: str, notice_id: str | None) -> ShownNotice:
    """The loan's notice ``notice_id`` (its key, ``L-1:legal_notice``, or its kind,
    ``legal_notice``: the latest of that kind), or the latest one served when None."""
    known = await pool.fetchval("SELECT 1 FROM loans WHERE loan_id = $1", loan_id)
    if known is None:
        raise NoticeNotFound(f"loan_id: no loan {loan_id!r} in the ledger")
    rows = await pool.fetch(
        "SELECT notice_key, kind, path, sha256, issued_at FROM notices WHERE loan_id = $1"
        " ORDER BY issued_at DESC, notice_key DESC",
        loan_id,
    )
    if not rows:
        raise NoticeNotFound(f"loan_id: no notice was served for {loan_id}")
    row: asyncpg.Record | None = rows[0]
    if notice_id is not None:
        row = next((r for r in rows if notice_id in (r["notice_key"], r["kind"])), None)
        if row is None:
            served = ", ".join(r["notice_key"] for r in rows)
            raise NoticeNotFound(
                f"notice_id: {loan_id} has no notice {notice_id!r} (served: {served})"
            )
    assert row is not None
    return ShownNotice(
        notice_key=row["notice_key"],
        loan_id=loan_id,
        kind=row["kind"],
        issued_at=row["issued_at"],
        path=row["path"],
        sha256=row["sha256"],
        text=read_text(row["notice_key"], Path(row["path"]), row["sha256"]),
    )


def read_text(notice_key: str, path: Path, sha256: str) -> str:
    """The notice's text from its file, as it was served (its hash is the ledger's)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NoticeNotFound(
            f"notice_id: the file of {notice_key} is not on this machine ({path}): read it"
            " where the worker that served it runs"
        ) from None
    except PermissionError:
        raise NoticeNotFound(
            f"notice_id: the file of {notice_key} ({path}) is readable by the worker's user only"
        ) from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise NoticeNotFound(
            f"notice_id: the file of {notice_key} ({path}) is not the notice served: its sha256"
            " differs from the ledger's (a later notice of the same kind may have replaced it)"
        )
    return data.decode("utf-8")
