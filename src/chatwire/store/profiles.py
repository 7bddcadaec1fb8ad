"""Profiles: a user's settings row (``profiles``) and credential rows (``credentials``).

Which credential fields exist is configuration (``CredentialField`` by name), not schema:
each stored value is a row (user, field, ciphertext), so a field added to the configuration
needs no migration, and a stored row whose field this process does not know is ignored.
Every value is encrypted, secret or not; ``secret`` decides masking, which is the readers'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.dml import Insert

from chatwire.store.crypto import KeyBox
from chatwire.store.models import Base, CredentialRow, ProfileRow, User, utcnow
from chatwire.store.records import CredentialField, Profile
from chatwire.store.validation import check_field_names, credential_value

PROFILE_FLAGS = frozenset({"use_azure_openai"})


@dataclass(frozen=True, slots=True)
class ProfileChanges:
    flags: dict[str, bool]
    # Field -> its new value's ciphertext, or None to clear it.
    values: dict[str, str | None]

    def __bool__(self) -> bool:
        return bool(self.flags or self.values)


class Profiles:
    """Reads and writes profiles inside the caller's transaction."""

    __slots__ = ("_dialect", "_fields", "_keybox")

    def __init__(self, dialect: str, keybox: KeyBox, fields: Mapping[str, CredentialField]) -> None:
        check_field_names(fields, reserved=PROFILE_FLAGS)
        self._dialect = dialect
        self._keybox = keybox
        self._fields: Mapping[str, CredentialField] = MappingProxyType(dict(fields))

    @property
    def fields(self) -> Mapping[str, CredentialField]:
        return self._fields

    def changes(self, changes: Mapping[str, str | bool | None]) -> ProfileChanges:
        """Checked and encrypted before any transaction: a bad field changes nothing."""
        flags: dict[str, bool] = {}
        values: dict[str, str | None] = {}
        for name, value in changes.items():
            if name in PROFILE_FLAGS:
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false")
                flags[name] = value
            elif name in self._fields:
                if value is None or value == "":
                    values[name] = None
                else:
                    text = credential_value(name, self._fields[name], value)
                    values[name] = self._keybox.encrypt(text)
            else:
                raise ValueError(f"unknown profile field {name[:100]!r}")
        return ProfileChanges(flags, values)

    async def write(self, session: AsyncSession, user_id: int, changes: ProfileChanges) -> None:
        if not changes:
            return
        now = utcnow()
        # The profile row first: its row lock makes one user's concurrent updates take turns
        # on PostgreSQL, so their credential rows are never locked in two orders.
        await session.execute(
            self._upsert(
                ProfileRow,
                [{"user_id": user_id, **changes.flags, "updated_at": now}],
                keys=("user_id",),
            )
        )
        stored = [
            {"user_id": user_id, "field": name, "value": value, "updated_at": now}
            for name, value in changes.values.items()
            if value is not None
        ]
        if stored:
            await session.execute(self._upsert(CredentialRow, stored, keys=("user_id", "field")))
        cleared = [name for name, value in changes.values.items() if value is None]
        if cleared:
            await session.execute(
                delete(CredentialRow)
                .where(CredentialRow.user_id == user_id, CredentialRow.field.in_(cleared))
                .execution_options(synchronize_session=False)
            )

    async def read(self, session: AsyncSession | AsyncConnection, user_id: int) -> Profile:
        # One statement (a consistent view, one round trip): the user's row, its profile
        # settings (none before the first update) and each stored credential (none yet).
        rows = await session.execute(
            select(ProfileRow.use_azure_openai, CredentialRow.field, CredentialRow.value)
            .select_from(User)
            .outerjoin(ProfileRow, ProfileRow.user_id == User.id)
            .outerjoin(CredentialRow, CredentialRow.user_id == User.id)
            .where(User.id == user_id)
        )
        values: dict[str, str | None] = dict.fromkeys(self._fields)
        use_azure_openai = False
        for flag, name, ciphertext in rows:
            use_azure_openai = bool(flag)
            if name in values:  # a field this process does not know is left alone
                values[name] = self._keybox.decrypt(ciphertext)
        return Profile(user_id=user_id, values=values, use_azure_openai=use_azure_openai)

    def _upsert(
        self, table: type[Base], rows: Sequence[dict[str, Any]], keys: tuple[str, ...]
    ) -> Insert:
        """INSERT, or on a conflict of ``keys`` UPDATE the other columns given: one statement,
        so two writers of the same row never fail on each other."""
        if self._dialect == "postgresql":
            pg = postgresql.insert(table).values(list(rows))
            return pg.on_conflict_do_update(
                index_elements=list(keys),
                set_={name: pg.excluded[name] for name in rows[0] if name not in keys},
            )
        lite = sqlite.insert(table).values(list(rows))
        return lite.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: lite.excluded[name] for name in rows[0] if name not in keys},
        )
