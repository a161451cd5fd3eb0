"""`overdue migrate` against a fresh database on the real PostgreSQL, as a deploy runs it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from overdue.db import migration_files
from overdue.stack import DATABASE
from tests.integration.support import Cli

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(loop_scope="session")
async def empty_database(pool: asyncpg.Pool, database_url: str) -> AsyncIterator[str]:
    """The URL of a database of its own, with no tables, on the session's server."""
    name = f"migrate_{uuid.uuid4().hex[:8]}"
    await pool.execute(f'CREATE DATABASE "{name}"')
    yield database_url.replace(f"/{DATABASE}", f"/{name}", 1)
    await pool.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def cli_for(database_url: str, home: Path) -> Cli:
    env = {k: v for k, v in os.environ.items() if k != "OVERDUE_DEBUG"}
    env.update(DATABASE_URL=database_url, OVERDUE_HOME=str(home))
    return Cli(env)


async def test_migrate_applies_every_migration_once(empty_database: str, tmp_path: Path) -> None:
    cli = cli_for(empty_database, tmp_path)
    versions = [version for version, _ in migration_files()]

    first = await cli("migrate", "--json")
    assert first.code == 0, first
    assert first.json() == {"applied": versions}

    again = await cli("migrate", "--json")
    assert again.code == 0, again
    assert again.json() == {"applied": []}

    conn = await asyncpg.connect(empty_database)
    try:
        recorded = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        ledger_tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            " AND table_name IN ('loans', 'payments', 'audit_log')"
        )
    finally:
        await conn.close()
    assert [r["version"] for r in recorded] == versions
    assert ledger_tables == 3
    book_tables = await _tables(empty_database, "book")
    assert book_tables == {"borrowers", "contacts", "instalments", "loans", "payments"}


async def test_migrate_reports_an_unreachable_database_in_one_line(tmp_path: Path) -> None:
    # Port 1 on the loopback refuses at once: nothing listens there.
    cli = cli_for("postgresql://overdue:secret@127.0.0.1:1/overdue", tmp_path)
    result = await cli("migrate")
    result.assert_user_error("DATABASE_URL")
    assert "secret" not in result.stderr


async def _tables(database: str, schema: str) -> set[str]:
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
    finally:
        await conn.close()
    return {r["table_name"] for r in rows}


async def test_cases_of_the_work_queue_learn_their_collection(empty_database: str) -> None:
    """0011 reads each existing case's collection from its id: the loan id for the first
    collection, ``<loan id>~<n>`` for a later one (a loan id may itself hold ``:`` and ``~``
    never)."""
    earlier = [(version, sql) for version, sql in migration_files() if version < "0011"]
    later = [(version, sql) for version, sql in migration_files() if version == "0011"]
    conn = await asyncpg.connect(empty_database)
    try:
        for _, sql in earlier:
            await conn.execute(sql)
        await conn.execute(
            "INSERT INTO borrowers (borrower_id, name, phone, timezone)"
            " VALUES ('B-1', 'Ann Lee', '+15550100', 'UTC');"
            "INSERT INTO loans (loan_id, borrower_id, product, principal_minor,"
            " outstanding_minor, currency, due_date, jurisdiction, opened_at)"
            " VALUES ('L:7', 'B-1', 'personal', 100, 50, 'USD', '2026-11-01', 'us', now())"
        )
        for case_id in ("L:7:case:1", "L:7~2:complaint:O-1", "L:7~12:case:1"):
            await conn.execute(
                "INSERT INTO cases (case_id, loan_id, kind, asked, team, opened_at, deadline)"
                " VALUES ($1, 'L:7', 'complaint', 'resolve', 'compliance', now(), now())",
                case_id,
            )
        await conn.execute(later[0][1])
        rows = await conn.fetch("SELECT case_id, collection FROM cases ORDER BY collection")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [
        ("L:7:case:1", 1),
        ("L:7~2:complaint:O-1", 2),
        ("L:7~12:case:1", 12),
    ]
