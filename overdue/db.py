"""PostgreSQL: the connection pool and the versioned migrations of the ledger."""

from __future__ import annotations

from importlib import resources

import asyncpg

MIGRATIONS_LOCK = 7_300_001  # advisory lock id: workers starting together migrate one at a time


async def create_pool(database_url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(database_url, min_size=min_size, max_size=max_size)
    assert pool is not None
    return pool


def migration_files() -> list[tuple[str, str]]:
    """``(version, sql)`` of every migration, in order. Versions are the file names' prefixes."""
    folder = resources.files("overdue") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name.split("_", 1)[0], f.read_text()) for f in files]


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Apply the migrations not yet applied, each in its own transaction. Returns their versions."""
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATIONS_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, sql in migration_files():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)", version
                    )
                applied.append(version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATIONS_LOCK)
    return applied
