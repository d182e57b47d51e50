"""Real databases for the call-store tests: a SQLite file, and a throw-away PostgreSQL cluster.

The PostgreSQL cluster (Debian's ``postgresql`` package, see scripts/install-test-data.sh) is
created in a temporary folder and run by the unprivileged ``postgres`` user when the tests run
as root. Each test gets its own database. An outage is a real one: SQLite's write lock held by
another connection, or the PostgreSQL server stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql")


def _pg_tool(name: str) -> str:
    found = sorted(PG_BIN.glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    tool = shutil.which(name)
    if tool is None:
        pytest.fail(f"PostgreSQL's {name} is missing: run scripts/install-test-data.sh (Debian package postgresql)")
    return tool


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = _free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self._as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(folder, "postgres")
        self._run(_pg_tool("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        self.start()

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as_user, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            _pg_tool("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )

    def stop(self) -> None:
        self._run(_pg_tool("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        name = "t" + uuid.uuid4().hex[:12]
        self._run(
            _pg_tool("psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-q",
            "-c",
            f"CREATE DATABASE {name}",
        )
        return name

    def sql(self, database: str, statement: str) -> None:
        self._run(
            _pg_tool("psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            statement,
        )


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    # Not under pytest's temporary folder: that one is private to root, and the server runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="voxline-pg-"))
    try:
        cluster = PostgresCluster(folder)
        yield cluster
        with contextlib.suppress(Exception):
            cluster.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Backend:
    """One database for one test: its URL, a way to run raw SQL, and a real outage."""

    name: str
    url: str
    data_dir: Path
    sql: Callable[[str], None]
    outage: Callable[[], contextlib.AbstractContextManager]


def sqlite_backend(data_dir: Path) -> Backend:
    path = data_dir / "voxline.db"

    def sql(statement: str) -> None:
        with contextlib.closing(sqlite3.connect(path)) as connection:
            connection.executescript(statement)
            connection.commit()

    @contextlib.contextmanager
    def outage() -> Iterator[None]:
        """Another connection holds SQLite's write lock: every write is refused ("database is locked")."""
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()

    return Backend("sqlite", f"sqlite+aiosqlite:///{path}", data_dir, sql, outage)


def postgres_backend(cluster: PostgresCluster, data_dir: Path) -> Backend:
    database = cluster.create_database()

    @contextlib.contextmanager
    def outage() -> Iterator[None]:
        """The PostgreSQL server is down."""
        cluster.stop()
        try:
            yield
        finally:
            cluster.start()

    return Backend("postgresql", cluster.url(database), data_dir, lambda s: cluster.sql(database, s), outage)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path) -> Backend:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if request.param == "sqlite":
        return sqlite_backend(data_dir)
    return postgres_backend(request.getfixturevalue("postgres"), data_dir)
