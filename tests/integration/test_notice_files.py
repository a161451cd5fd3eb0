"""Notices on disk: a letter names the borrower, so it is readable by the worker's user only.

The activity is called directly against the real PostgreSQL, as a plain async method.
"""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from activities.notices import NoticeActivities
from overdue.worker import package_folder
from tests.integration.test_situation_activities import BORROWER_NAME, open_loan
from workflows.commands import NoticeRequest

pytestmark = pytest.mark.integration


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def legal_notice(loan_id: str, collection_key: str) -> NoticeRequest:
    """The legal notice of the loan's collection keyed ``collection_key``."""
    return NoticeRequest(
        notice_key=f"{collection_key}:legal_notice",
        loan_id=loan_id,
        kind="legal_notice",
        days_past_due=30,
        outstanding_minor=50_000,
        currency="USD",
        issued_at=datetime.now(UTC),
        facts={"referral_after_days": "14"},
    )


async def test_a_notice_is_created_owner_only_and_whole(pool: asyncpg.Pool, tmp_path: Path) -> None:
    loan_id = await open_loan(pool)
    notices = NoticeActivities(pool, package_folder("templates"), tmp_path / "notices")
    request = legal_notice(loan_id, loan_id)
    # A permissive umask must not widen it: the mode is the file's own from its creation.
    previous = os.umask(0o000)
    try:
        record = await notices.serve_notice(request)
    finally:
        os.umask(previous)
    letter = Path(record.path)
    assert BORROWER_NAME in letter.read_text(encoding="utf-8")
    assert mode(letter) == 0o600, oct(mode(letter))
    assert mode(letter.parent) == 0o700, oct(mode(letter.parent))
    # Nothing half-written is left beside it.
    assert sorted(p.name for p in letter.parent.iterdir()) == ["legal_notice.txt"]

    # A retry returns the letter already filed, and leaves it as it was.
    again = await notices.serve_notice(request)
    assert (again.path, again.sha256) == (record.path, record.sha256)
    assert mode(letter) == 0o600


@pytest.mark.parametrize("prefix", ["sit-", "branch:7:"])  # a loan id may hold ``:``
async def test_a_later_collections_notice_is_filed_beside_the_first(
    pool: asyncpg.Pool, tmp_path: Path, prefix: str
) -> None:
    loan_id = await open_loan(pool, prefix=prefix)
    notices = NoticeActivities(pool, package_folder("templates"), tmp_path / "notices")
    served = []
    for key in (loan_id, f"{loan_id}~2"):  # the loan's first and second collections
        served.append(await notices.serve_notice(legal_notice(loan_id, key)))
    first, second = (Path(r.path) for r in served)
    assert (first.name, second.name) == ("legal_notice.txt", "legal_notice~2.txt")
    assert first.read_text(encoding="utf-8") and second.read_text(encoding="utf-8")
