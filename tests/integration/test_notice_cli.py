"""``overdue notice show``: a served notice's text, read back from the ledger's copy.

Notices are served by the notice activity itself, called directly against the real PostgreSQL;
the command runs as a subprocess against the same ledger.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from activities.notices import NoticeActivities
from overdue.worker import package_folder
from tests.integration.support import Cli
from tests.integration.test_situation_activities import BORROWER_NAME, open_loan
from workflows.commands import NoticeRecord, NoticeRequest

pytestmark = pytest.mark.integration


async def serve(
    pool: asyncpg.Pool, folder: Path, loan_id: str, kind: str, at: datetime
) -> NoticeRecord:
    notices = NoticeActivities(pool, package_folder("templates"), folder)
    facts = {"referral_after_days": "14", "legal_in_days": "9"}
    return await notices.serve_notice(
        NoticeRequest(
            notice_key=f"{loan_id}:{kind}",
            loan_id=loan_id,
            kind=kind,
            days_past_due=30,
            outstanding_minor=50_000,
            currency="USD",
            issued_at=at,
            facts=facts,
        )
    )


async def test_the_latest_notice_or_one_by_kind_or_key(
    cli: Cli, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    loan_id = await open_loan(pool)
    served_at = datetime.now(UTC).replace(microsecond=0)
    refusal = await serve(pool, tmp_path, loan_id, "refusal_notice", served_at - timedelta(days=9))
    legal = await serve(pool, tmp_path, loan_id, "legal_notice", served_at)

    latest = await cli("notice", "show", loan_id, "--json")
    assert latest.code == 0, latest
    shown = latest.json()
    assert set(shown) == {"notice_key", "loan_id", "kind", "issued_at", "path", "sha256", "text"}
    assert (shown["notice_key"], shown["kind"], shown["sha256"]) == (
        legal.notice_key,
        "legal_notice",
        legal.sha256,
    )
    assert datetime.fromisoformat(shown["issued_at"]) == served_at
    assert shown["text"] == Path(legal.path).read_text(encoding="utf-8")
    assert BORROWER_NAME in shown["text"]  # the letter as the borrower received it

    for notice_id in ("refusal_notice", refusal.notice_key):
        by_id = await cli("notice", "show", loan_id, notice_id, "--json")
        assert by_id.code == 0, by_id
        assert by_id.json()["notice_key"] == refusal.notice_key

    # Without --json: a heading line, then the letter.
    plain = await cli("notice", "show", loan_id)
    assert plain.code == 0, plain
    heading, _, text = plain.stdout.partition("\n")
    assert heading.startswith(f"{legal.notice_key} · legal_notice · served ")
    assert text.strip() == Path(legal.path).read_text(encoding="utf-8").strip()


async def test_errors_name_the_field(cli: Cli, pool: asyncpg.Pool, tmp_path: Path) -> None:
    unknown = await cli("notice", "show", "L-no-such-loan")
    assert "no loan 'L-no-such-loan'" in unknown.assert_user_error("loan_id")
    (await cli("notice", "show", "bad id with spaces")).assert_user_error("loan_id")

    loan_id = await open_loan(pool)
    none_yet = await cli("notice", "show", loan_id)
    assert "no notice was served" in none_yet.assert_user_error("loan_id")

    legal = await serve(pool, tmp_path, loan_id, "legal_notice", datetime.now(UTC))
    other = await cli("notice", "show", loan_id, "estate_inquiry")
    message = other.assert_user_error("notice_id")
    assert f"served: {legal.notice_key}" in message

    # The file is not the one served: refused, never shown as if it were.
    letter = Path(legal.path)
    letter.write_text("something else", encoding="utf-8")
    changed = await cli("notice", "show", loan_id)
    assert "sha256 differs" in changed.assert_user_error("notice_id")
    letter.unlink()
    missing = await cli("notice", "show", loan_id)
    assert "not on this machine" in missing.assert_user_error("notice_id")
