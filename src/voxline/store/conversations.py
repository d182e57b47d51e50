"""Conversation history kept in the database, so any worker process can continue a call.

The recording path answers one webhook per turn, and consecutive webhooks of one call may reach
different processes; the history therefore lives in the call store (a SQLite file in WAL mode
by default), not in memory. Blocking database calls run in a thread.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import Float, Integer, String, Text, create_engine, event, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from voxline.llm.base import ChatMessage


class Base(DeclarativeBase):
    pass


class ConversationMessage(Base):
    __tablename__ = "conversation_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


def sqlite_url(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


class ConversationStore:
    def __init__(self, database_url: str) -> None:
        self._engine = create_engine(database_url, pool_pre_ping=True)
        if self._engine.dialect.name == "sqlite":
            event.listen(self._engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self._engine)

    def append_blocking(self, call_sid: str, messages: list[ChatMessage]) -> None:
        with Session(self._engine) as session, session.begin():
            session.add_all(ConversationMessage(call_sid=call_sid, role=m["role"], content=m["content"])
                            for m in messages)

    def history_blocking(self, call_sid: str) -> list[ChatMessage]:
        with Session(self._engine) as session:
            rows = session.scalars(select(ConversationMessage).where(ConversationMessage.call_sid == call_sid)
                                   .order_by(ConversationMessage.id))
            return [{"role": row.role, "content": row.content} for row in rows]  # type: ignore[typeddict-item]

    def count_blocking(self, call_sid: str) -> int:
        with Session(self._engine) as session:
            return session.scalar(select(func.count()).where(ConversationMessage.call_sid == call_sid)) or 0

    async def append(self, call_sid: str, messages: list[ChatMessage]) -> None:
        await asyncio.to_thread(self.append_blocking, call_sid, messages)

    async def history(self, call_sid: str) -> list[ChatMessage]:
        return await asyncio.to_thread(self.history_blocking, call_sid)

    def close(self) -> None:
        self._engine.dispose()


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
