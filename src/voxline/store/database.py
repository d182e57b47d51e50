"""The call store's database: one async engine per process, and its schema brought up to date.

SQLite (aiosqlite) by default, a file in the data directory in WAL mode, so several worker
processes on one machine share it; PostgreSQL (asyncpg) with ``VOXLINE_DATABASE_URL``. The
schema is managed by Alembic migrations shipped in the package (``store/migrations``) and run
programmatically at start-up: no ``alembic.ini`` is needed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from voxline.store.schema import dumps

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 1000  # a locked database is retried by the writer, not waited on here
CONNECT_TIMEOUT_S = 5.0


def database_url(configured: str, data_dir: Path) -> str:
    """The configured URL made async (``postgresql://`` → asyncpg), or the default SQLite file."""
    if not configured:
        data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{data_dir / 'voxline.db'}"
    url = make_url(configured)
    if url.drivername in ("sqlite", "sqlite+pysqlite"):
        url = url.set(drivername="sqlite+aiosqlite")
    elif url.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        url = url.set(drivername="postgresql+asyncpg")
    if url.drivername.startswith("sqlite") and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return url.render_as_string(hide_password=False)


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, json_serializer=dumps)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = {"timeout": CONNECT_TIMEOUT_S} if "asyncpg" in url else {}
    return create_async_engine(url, json_serializer=dumps, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine) -> None:
    """``alembic upgrade head`` on the engine's database (a database of the old code included)."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # worker processes starting together migrate one at a time
            await connection.execute(text("SELECT pg_advisory_xact_lock(58236417)"))
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
