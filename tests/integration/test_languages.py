"""The language of every message a borrower receives in the demo, read back from the ledger.

``overdue demo`` runs against the session's dev server and PostgreSQL (both external to it, so
it starts only its own worker). Seed 7's first eight loans alternate `us` and `cn` borrowers;
the `cn` ones include a borrower who never answers (SMS nudges, references, a legal notice) and
one who breaks promises (a firm message, a legal notice). The demo's borrowers name no language,
so each is written to in its jurisdiction's.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from activities.channels import ChannelActivities, Delivery
from activities.ledger import LedgerActivities
from activities.notices import NoticeActivities
from activities.strategy import read_strategy
from overdue import loanbook
from overdue.stack import EmbeddedStack
from overdue.worker import package_folder
from workflows.commands import ContactRequest, NoticeRequest, OpenLoan
from workflows.outreach import translations
from workflows.types import Borrower, Loan
from workflows.vocabulary import Outcome

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

OVERDUE = str(Path(sys.executable).parent / "overdue")
LOANS = 8
HAN = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]+")


@dataclass
class Demo:
    report: dict[str, Any]
    by_jurisdiction: dict[str, list[str]]  # loan ids
    names: dict[str, str]  # loan id -> borrower's name


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def demo(
    stack: EmbeddedStack, pool: asyncpg.Pool, tmp_path_factory: pytest.TempPathFactory
) -> Demo:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OVERDUE_DEBUG", "TEMPORAL_NAMESPACE", "OVERDUE_SIM_SEED")
    }
    env.update(
        TEMPORAL_ADDRESS=stack.temporal_address,
        DATABASE_URL=stack.database_url,
        OVERDUE_HOME=str(tmp_path_factory.mktemp("languages-home")),
    )
    process = await asyncio.create_subprocess_exec(
        OVERDUE,
        *("demo", "--loans", str(LOANS), "--day-seconds", "1", "--details", "--json"),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 240)
    assert process.returncode == 0, err.decode()
    report: dict[str, Any] = json.loads(out)
    loan_ids = [d["loan_id"] for d in report["details"]]
    rows = await pool.fetch(
        "SELECT l.loan_id, l.jurisdiction, b.name FROM loans l JOIN borrowers b USING (borrower_id)"
        " WHERE l.loan_id = ANY($1)",
        loan_ids,
    )
    by_jurisdiction: dict[str, list[str]] = {"cn": [], "us": []}
    for row in rows:
        by_jurisdiction[row["jurisdiction"]].append(row["loan_id"])
    return Demo(report, by_jurisdiction, {r["loan_id"]: r["name"] for r in rows})


def latin_words(text: str, *identifiers: str) -> list[str]:
    """The Latin-letter words of ``text`` once the identifiers it may quote are taken out."""
    for token in sorted(identifiers, key=len, reverse=True):
        text = text.replace(token, "")
    return LATIN.findall(text)


async def test_a_cn_borrower_receives_every_message_in_chinese(
    demo: Demo, pool: asyncpg.Pool
) -> None:
    cn = demo.by_jurisdiction["cn"]
    assert len(cn) == LOANS // 2
    sent = await pool.fetch(
        "SELECT loan_id, target, purpose, message FROM contact_attempts"
        " WHERE loan_id = ANY($1) AND message IS NOT NULL ORDER BY loan_id, attempt_no",
        cn,
    )
    # Text messages (their purpose is their script) and the scripts calls followed, among
    # them a reference asked to pass a message on.
    assert {m["purpose"] for m in sent} >= {"early_reminder", "reminder", "relay"}, sent
    assert any(m["target"] == "contact" for m in sent)
    for message in sent:
        text = message["message"]
        # The borrower's name is the demo's (romanised); the loan id is an identifier.
        assert HAN.search(text), text
        assert not latin_words(text, demo.names[message["loan_id"]], message["loan_id"]), text
        assert "$" not in text
        if message["target"] == "contact":
            assert message["loan_id"] not in text and "逾期" not in text and "还款" not in text


async def test_a_cn_borrower_receives_every_letter_in_chinese(
    demo: Demo, pool: asyncpg.Pool
) -> None:
    cn = demo.by_jurisdiction["cn"]
    notices = await pool.fetch(
        "SELECT n.loan_id, n.notice_key, n.kind, n.path, l.currency FROM notices n"
        " JOIN loans l USING (loan_id) WHERE n.loan_id = ANY($1)",
        cn,
    )
    assert "legal_notice" in {n["kind"] for n in notices}, notices
    for notice in notices:
        text = Path(notice["path"]).read_text(encoding="utf-8")
        loan_id = notice["loan_id"]
        assert HAN.search(text) and "年" in text, text
        words = latin_words(
            text, notice["notice_key"], loan_id, demo.names[loan_id], notice["currency"]
        )
        assert not words, (notice["kind"], words)
        if notice["kind"] == "legal_notice":
            assert "人民币" in text and "元" in text  # the amount with its currency


async def test_a_us_borrower_still_receives_english(demo: Demo, pool: asyncpg.Pool) -> None:
    us = demo.by_jurisdiction["us"]
    sent = await pool.fetch(
        "SELECT message FROM contact_attempts WHERE loan_id = ANY($1) AND message IS NOT NULL",
        us,
    )
    notices = await pool.fetch("SELECT path FROM notices WHERE loan_id = ANY($1)", us)
    assert sent and notices
    for text in [m["message"] for m in sent] + [
        Path(n["path"]).read_text(encoding="utf-8") for n in notices
    ]:
        assert not HAN.search(text), text


# --- the borrower's own language, through the real activities and the loan book ---------------


class DeliveringProvider:
    """A provider that records what it was asked to say; every call answered, every SMS sent."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def call(self, delivery: Delivery) -> Outcome:
        self.texts.append(delivery.text)
        return Outcome.ANSWERED

    async def send_sms(self, delivery: Delivery) -> Outcome:
        self.texts.append(delivery.text)
        return Outcome.DELIVERED


async def _open_cn_loan(pool: asyncpg.Pool, language: str) -> Loan:
    run = uuid.uuid4().hex[:10]
    loan = Loan(
        loan_id=f"lang-{run}",
        borrower=Borrower(f"b-lang-{run}", "Wang Wei", "+8613800138000", "Asia/Shanghai", language),
        product="personal",
        principal_minor=1_000_000,
        outstanding_minor=520_000,
        currency="CNY",
        due_date="2026-11-01",
        jurisdiction="cn",
    )
    await LedgerActivities(pool).open_loan(OpenLoan(loan, datetime(2026, 11, 2, tzinfo=UTC)))
    return loan


@pytest.mark.parametrize(("language", "chinese"), [("", True), ("zh-CN", True), ("en-US", False)])
async def test_a_cn_borrower_is_written_to_in_the_language_they_chose(
    pool: asyncpg.Pool, tmp_path: Path, language: str, chinese: bool
) -> None:
    loan = await _open_cn_loan(pool, language)
    strategy = read_strategy(package_folder("strategies") / "default.toml")
    provider = DeliveringProvider()
    sms = ContactRequest(
        idempotency_key=f"{loan.loan_id}:attempt:1",
        loan_id=loan.loan_id,
        borrower_id=loan.borrower.borrower_id,
        attempt_no=1,
        channel="sms",
        target="borrower",
        target_id=loan.borrower.borrower_id,
        slot="morning",
        purpose="early_reminder",
        template="early_reminder",
        stage="early",
        at=datetime(2026, 11, 2, 2, tzinfo=UTC),
        at_local="2026-11-02 10:00",
        timezone="Asia/Shanghai",
        message=strategy.messages["early_reminder"],
        outstanding_minor=loan.outstanding_minor,
        currency="CNY",
        scripts=translations(strategy, "early_reminder"),
    )
    await ChannelActivities(pool, provider).send_sms(sms)
    stored = await pool.fetchval(
        "SELECT message FROM contact_attempts WHERE idempotency_key = $1", sms.idempotency_key
    )
    assert provider.texts == [stored]
    letter = await NoticeActivities(
        pool, package_folder("templates"), tmp_path / "notices"
    ).serve_notice(
        NoticeRequest(
            notice_key=f"{loan.loan_id}:legal_notice",
            loan_id=loan.loan_id,
            kind="legal_notice",
            days_past_due=29,
            outstanding_minor=loan.outstanding_minor,
            currency="CNY",
            issued_at=datetime(2026, 11, 30, 1, tzinfo=UTC),
            facts={"referral_after_days": "10"},
        )
    )
    text = Path(letter.path).read_text(encoding="utf-8")
    if chinese:
        assert stored.startswith("尊敬的Wang Wei") and "您" in stored, stored
        assert "2026年11月30日" in text and "人民币5200.00元" in text
    else:
        assert stored.startswith("Hi Wang, a friendly reminder"), stored
        assert "2026-11-30" in text and "5200.00 CNY" in text
        assert not HAN.search(stored + text)


async def test_the_loan_book_keeps_the_borrowers_language(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    book = tmp_path / "book.jsonl"
    rows = [
        {"language": "en-us"},  # any case: stored as its tag
        {},  # none: the jurisdiction's
    ]
    book.write_text(
        "".join(
            json.dumps(
                {
                    "loan_id": f"BOOK-lang{i}-{run}",
                    "borrower_id": f"BB-lang{i}-{run}",
                    "borrower_name": "Wang Wei",
                    "phone": "13800138000",
                    "timezone": "Asia/Shanghai",
                    "product": "personal",
                    "principal": "5000.00",
                    "outstanding": "5000.00",
                    "currency": "CNY",
                    "due_date": date.today().isoformat(),
                    "jurisdiction": "cn",
                    **fields,
                }
            )
            + "\n"
            for i, fields in enumerate(rows)
        ),
        encoding="utf-8",
    )
    try:
        for row in loanbook.read_rows(book):
            assert row.loan is not None, row
            await loanbook.store(pool, row.loan)
        stored = await pool.fetch(
            "SELECT b.language FROM book.loans l JOIN book.borrowers b USING (borrower_id)"
            " WHERE l.loan_id LIKE $1 ORDER BY l.loan_id",
            f"BOOK-lang%-{run}",
        )
        assert [r["language"] for r in stored] == ["en-US", "zh-CN"]
    finally:
        # A delinquency scan in a later module would start these loans' collections.
        await pool.execute("DELETE FROM book.loans WHERE loan_id LIKE $1", f"BOOK-lang%-{run}")
