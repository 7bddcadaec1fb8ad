"""The web pages' records: browser sessions and past chats, one short transaction each.

A session's cookie is a random secret of its own (not a bearer token); only its SHA-256 is
stored, with when it expires. Signing out deletes the row. A sign-in link carries the code
of a session made for it, which signing in with it uses up (``redeem_link``). Every chat
query filters by its user's id, so one user can neither read nor change another's chats.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from chatwire.core.security import hash_token
from chatwire.store.db import make_sessionmaker
from chatwire.store.health import guarded
from chatwire.store.models import User, WebChat, WebSession, utcnow
from chatwire.store.policies import caller_joins, caller_query, caller_record
from chatwire.store.records import UserRecord


@dataclass(frozen=True, slots=True)
class ChatSummary:
    id: int
    title: str
    model: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ChatRecord:
    id: int
    title: str
    model: str
    messages: str  # JSON, as the page sent it
    created_at: datetime
    updated_at: datetime


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0))


class WebStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = make_sessionmaker(engine)

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncSession]:
        async with guarded(), self._sessions.begin() as session:
            yield session

    # Sessions

    async def create_session(self, user_id: int, lifetime: timedelta) -> str:
        """A new session of the user, its cookie's value returned (shown once). Sessions
        past their time, anyone's, are deleted on the way."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        async with self._begin() as session:
            await session.execute(
                delete(WebSession)
                .where(WebSession.expires_at < now)
                .execution_options(synchronize_session=False)
            )
            session.add(
                WebSession(user_id=user_id, token_hash=hash_token(token), expires_at=now + lifetime)
            )
        return token

    async def user_for_session(self, token: str) -> UserRecord | None:
        """The user of a session that has not ended nor expired, with its role and policy
        (the user's own, else the default), in one query; None otherwise."""
        if not token:
            return None
        wanted = hash_token(token)
        query = caller_query(WebSession.token_hash, with_token=False).select_from(WebSession)
        query = caller_joins(query.join(User, User.id == WebSession.user_id), with_token=False)
        query = query.where(WebSession.token_hash == wanted, WebSession.expires_at > utcnow())
        async with self._begin() as session:
            row = (await session.execute(query)).first()
        if row is None or not hmac.compare_digest(row.token_hash, wanted):
            return None
        # A browser carries no token: only the user's policy (or the default) applies.
        return caller_record(row, with_token=False)

    async def redeem_link(self, code: str) -> UserRecord | None:
        """The user of a sign-in link's code (a session never handed to a browser), which
        is used up: a second use finds nothing."""
        user = await self.user_for_session(code)
        if user is None or not await self.end_session(code):
            return None  # expired, unknown, or redeemed at the same moment elsewhere
        return user

    async def end_session(self, token: str) -> bool:
        async with self._begin() as session:
            result = await session.execute(
                delete(WebSession)
                .where(WebSession.token_hash == hash_token(token))
                .execution_options(synchronize_session=False)
            )
            return _rowcount(result) == 1

    # Chats

    async def list_chats(self, user_id: int) -> list[ChatSummary]:
        """The user's chats, the most recently changed first."""
        async with self._begin() as session:
            rows = await session.execute(
                select(WebChat.id, WebChat.title, WebChat.model, WebChat.updated_at)
                .where(WebChat.user_id == user_id)
                .order_by(WebChat.updated_at.desc(), WebChat.id.desc())
            )
            return [ChatSummary(r.id, r.title, r.model, r.updated_at) for r in rows]

    async def get_chat(self, user_id: int, chat_id: int) -> ChatRecord | None:
        async with self._begin() as session:
            row = await self._own(session, user_id, chat_id)
            return None if row is None else _record(row)

    async def create_chat(self, user_id: int, title: str, model: str, messages: str) -> ChatRecord:
        async with self._begin() as session:
            row = WebChat(user_id=user_id, title=title, model=model, messages=messages)
            session.add(row)
            await session.flush()
            return _record(row)

    async def update_chat(self, user_id: int, chat_id: int, **changes: str) -> ChatRecord | None:
        """Change ``title``, ``model`` or ``messages``; None if the user has no such chat."""
        async with self._begin() as session:
            row = await self._own(session, user_id, chat_id)
            if row is None:
                return None
            for name, value in changes.items():
                if name not in ("title", "model", "messages"):
                    raise ValueError(f"unknown chat field {name[:100]!r}")
                setattr(row, name, value)
            row.updated_at = utcnow()
            await session.flush()
            return _record(row)

    async def delete_chat(self, user_id: int, chat_id: int) -> bool:
        async with self._begin() as session:
            result = await session.execute(
                delete(WebChat)
                .where(WebChat.user_id == user_id, WebChat.id == chat_id)
                .execution_options(synchronize_session=False)
            )
            return _rowcount(result) == 1

    async def _own(self, session: AsyncSession, user_id: int, chat_id: int) -> WebChat | None:
        return await session.scalar(
            select(WebChat).where(WebChat.user_id == user_id, WebChat.id == chat_id)
        )


def _record(row: WebChat) -> ChatRecord:
    return ChatRecord(
        id=row.id,
        title=row.title,
        model=row.model,
        messages=row.messages,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
