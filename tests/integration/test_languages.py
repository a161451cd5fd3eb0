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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from overdue.stack import EmbeddedStack

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
        *("demo", "--loans", str(LOANS), "--day-seconds", "2", "--details", "--json"),
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
