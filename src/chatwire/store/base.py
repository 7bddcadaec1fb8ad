"""What every part of the store shares: its transactions, the user lookups the others
check against, and the exceptions it raises (see ``repo``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from chatwire.store.crypto import KeyBox
from chatwire.store.db import make_sessionmaker
from chatwire.store.health import guarded
from chatwire.store.models import (
    User,
)
from chatwire.store.policies import (
    check_role,
)
from chatwire.store.profiles import Profiles
from chatwire.store.records import (
    CredentialField,
    UserRecord,
)


class UserExists(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"user {name!r} exists already")
        self.name = name


class UserNotFound(Exception):
    def __init__(self, user: str | int) -> None:
        super().__init__(
            f"no user {user!r}" if isinstance(user, str) else f"no user with id {user}"
        )
        self.user = user


class TokenNotFound(Exception):
    def __init__(self, token_id: int) -> None:
        super().__init__(f"no token with id {token_id}")
        self.token_id = token_id


class TokenNameTaken(ValueError):
    def __init__(self, user: str, name: str) -> None:
        super().__init__(f"user {user!r} has a token named {name!r} already")
        self.name = name


class LastAdmin(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"{name!r} is the only admin: make another user an admin first")
        self.name = name


class TooManyCustomModels(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the user has {limit} custom models, the most allowed")
        self.limit = limit


class CustomModelExists(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a custom model named {name!r} exists already")
        self.name = name


def rowcount(result: object) -> int:
    # session.execute() is typed as returning Result; DML gives a CursorResult with rowcount.
    return int(getattr(result, "rowcount", 0))


def user_record(row: User) -> UserRecord:
    return UserRecord(id=row.id, name=row.name, role=check_role(row.role))


class StoreBase:
    """``fields``: the credential fields a profile has, by name, in the order profiles list
    them. Stored rows of other names are ignored; updates naming one are refused."""

    def __init__(
        self,
        engine: AsyncEngine,
        keybox: KeyBox,
        fields: Mapping[str, CredentialField],
        reader: AsyncEngine | None = None,
    ) -> None:
        self._engine = engine
        # The engine of the hot lookups (``db.make_reader``); its owner disposes of it.
        self._reader = reader if reader is not None else engine
        self._sessions = make_sessionmaker(engine)
        self._keybox = keybox
        self._profiles = Profiles(engine.dialect.name, keybox, fields)

    def __repr__(self) -> str:
        return f"<Store {self._engine.url.get_backend_name()}>"

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncSession]:
        """One transaction; a database that cannot answer raises ``StoreUnavailable``."""
        async with guarded(), self._sessions.begin() as session:
            yield session

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for a lookup of a statement or two, with no ORM session: the reader
        engine's (autocommit, on PostgreSQL) where there is one. A database that cannot
        answer raises ``StoreUnavailable``."""
        async with guarded(), self._reader.connect() as connection:
            yield connection

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def fields(self) -> Mapping[str, CredentialField]:
        """The credential fields profiles have, by name, in their order."""
        return self._profiles.fields

    async def _user_id(self, session: AsyncSession, name: str) -> int:
        user_id = await session.scalar(select(User.id).where(User.name == name))
        if user_id is None:
            raise UserNotFound(name)
        return user_id

    async def _require_user(self, session: AsyncSession, user_id: int) -> None:
        if await session.scalar(select(User.id).where(User.id == user_id)) is None:
            raise UserNotFound(user_id)
