"""The store: users, bearer tokens, policies, profiles and custom models, one short
transaction each.

Every query about a user's data filters by that user's id; records leave with secrets
decrypted (``records``), rows never leave. The credential fields a profile has are given to
the store when it is built (``profiles``: the schema does not know them). Exceptions::

    UserExists          create_user with a name that is taken
    UserNotFound        a user name (or id) that does not exist
    TokenNotFound       a token id that does not exist
    TokenNameTaken      a user's second token of the same name (a ValueError)
    LastAdmin           making the only admin a member (a ValueError)
    CustomModelExists   a user's second custom model of the same name (a ValueError)
    ValueError          invalid input; the message names the field, never its value
    TooManyCustomModels a user's custom model past the cap the caller gave
    crypto.SecretKeyMismatch  stored secrets do not decrypt with the configured keys
    errors.StoreUnavailable   the database refused, timed out or is locked (``health``)
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from sqlalchemy import delete, func, insert, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from chatwire.core.security import hash_token, new_token
from chatwire.store.crypto import KeyBox
from chatwire.store.db import make_sessionmaker
from chatwire.store.health import guarded
from chatwire.store.models import (
    USER_NAME_LENGTH,
    ApiToken,
    CustomModelRow,
    PolicyRow,
    User,
    utcnow,
)
from chatwire.store.policies import (
    POLICY_FIELDS,
    caller_joins,
    caller_query,
    caller_record,
    check_policy,
    check_role,
    check_token_name,
    row_policy,
    row_values,
)
from chatwire.store.profiles import Profiles
from chatwire.store.records import (
    MAX_FIELD_LENGTH,
    CredentialField,
    CustomModel,
    Policy,
    Profile,
    Role,
    TokenRecord,
    UserListing,
    UserRecord,
)
from chatwire.store.validation import (
    check_base_url,
    has_forbidden,
    text_value,
    validate_user_name,
)

CUSTOM_MODEL_TEXT = {
    "name": USER_NAME_LENGTH,
    "model_id": MAX_FIELD_LENGTH,
    "base_url": MAX_FIELD_LENGTH,
    "api_key": MAX_FIELD_LENGTH,
    "description": MAX_FIELD_LENGTH,
}
CUSTOM_MODEL_FIELDS = frozenset({*CUSTOM_MODEL_TEXT, "context_length"})


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


def _rowcount(result: object) -> int:
    # session.execute() is typed as returning Result; DML gives a CursorResult with rowcount.
    return int(getattr(result, "rowcount", 0))


def _user(row: User) -> UserRecord:
    return UserRecord(id=row.id, name=row.name, role=check_role(row.role))


class Store:
    """``fields``: the credential fields a profile has, by name, in the order profiles list
    them. Stored rows of other names are ignored; updates naming one are refused."""

    def __init__(
        self, engine: AsyncEngine, keybox: KeyBox, fields: Mapping[str, CredentialField]
    ) -> None:
        self._engine = engine
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

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def fields(self) -> Mapping[str, CredentialField]:
        """The credential fields profiles have, by name, in their order."""
        return self._profiles.fields

    # Users and tokens

    async def create_user(self, name: str, role: Role | None = None) -> tuple[UserRecord, str]:
        """A new user and its first bearer token (shown once: only its hash is kept).
        ``role``: by default the first user is an admin, later ones members."""
        validate_user_name(name)
        if role is not None:
            check_role(role)
        token = new_token()
        try:
            async with self._begin() as session:
                if role is None:
                    anyone = await session.scalar(select(User.id).limit(1))
                    role = "member" if anyone is not None else "admin"
                user = User(name=name, role=role)
                session.add(user)
                await session.flush()
                session.add(ApiToken(user_id=user.id, token_hash=hash_token(token)))
                record = UserRecord(id=user.id, name=user.name, role=role)
        except IntegrityError as exc:
            raise UserExists(name) from exc
        return record, token

    async def create_token(
        self, user_name: str, name: str | None = None, policy: Policy | None = None
    ) -> str:
        """Another token of the user (shown once); see ``add_token``."""
        _, token = await self.add_token(user_name, name=name, policy=policy)
        return token

    async def add_token(
        self, user_name: str, *, name: str | None = None, policy: Policy | None = None
    ) -> tuple[TokenRecord, str]:
        """Another token of the user, named (unique among the user's tokens) or not, with a
        policy of its own or none: its record, and the token (shown once)."""
        check_token_name(name)
        checked = None if policy is None or policy.empty() else check_policy(policy)
        token = new_token()
        try:
            async with self._begin() as session:
                user_id = await self._user_id(session, user_name)
                row = ApiToken(user_id=user_id, token_hash=hash_token(token), name=name)
                session.add(row)
                await session.flush()
                if checked is not None:
                    session.add(PolicyRow(token_id=row.id, **row_values(checked)))
                    await session.flush()
                record = TokenRecord(
                    id=row.id,
                    user_name=user_name,
                    created_at=row.created_at,
                    revoked_at=None,
                    name=name,
                    user_id=user_id,
                    policy=checked,
                )
        except IntegrityError as exc:
            raise TokenNameTaken(user_name, name or "") from exc
        return record, token

    async def list_tokens(self, user_name: str) -> list[TokenRecord]:
        async with self._begin() as session:
            user_id = await self._user_id(session, user_name)
            return await self._tokens(session, ApiToken.user_id == user_id)

    async def list_all_tokens(self, user_id: int | None = None) -> list[TokenRecord]:
        """Every token, or with ``user_id`` that user's (``UserNotFound`` if none)."""
        async with self._begin() as session:
            if user_id is None:
                return await self._tokens(session, true())
            await self._require_user(session, user_id)
            return await self._tokens(session, ApiToken.user_id == user_id)

    async def get_token(self, token_id: int) -> TokenRecord | None:
        async with self._begin() as session:
            found = await self._tokens(session, ApiToken.id == token_id)
            return found[0] if found else None

    async def _tokens(
        self, session: AsyncSession, condition: ColumnElement[bool]
    ) -> list[TokenRecord]:
        rows = await session.execute(
            select(ApiToken, User.name, PolicyRow)
            .join(User, User.id == ApiToken.user_id)
            .outerjoin(PolicyRow, PolicyRow.token_id == ApiToken.id)
            .where(condition)
            .order_by(ApiToken.id)
        )
        return [
            TokenRecord(
                id=token.id,
                user_name=user_name,
                created_at=token.created_at,
                revoked_at=token.revoked_at,
                name=token.name,
                user_id=token.user_id,
                policy=row_policy(policy),
            )
            for token, user_name, policy in rows
        ]

    async def revoke_token(self, token_id: int, user_id: int | None = None) -> bool:
        """Revoke token ``token_id``; with ``user_id``, only if it is that user's."""
        condition = ApiToken.id == token_id
        if user_id is not None:
            condition = condition & (ApiToken.user_id == user_id)
        async with self._begin() as session:
            return await self._revoke(session, condition) == 1

    async def revoke_token_value(self, token: str) -> bool:
        async with self._begin() as session:
            return await self._revoke(session, ApiToken.token_hash == hash_token(token)) == 1

    async def revoke_all_tokens(self, user_name: str) -> int:
        """Revoke every active token of the user; returns how many there were."""
        async with self._begin() as session:
            user_id = await self._user_id(session, user_name)
            return await self._revoke(session, ApiToken.user_id == user_id)

    async def _revoke(self, session: AsyncSession, condition: ColumnElement[bool]) -> int:
        result = await session.execute(
            update(ApiToken)
            .where(condition, ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result)

    async def user_for_token(self, token: str) -> UserRecord | None:
        """The caller an active token stands for, in one query: the user and role, the
        token's id, name and policy, the user's own policy or else the operator's default;
        None for unknown or revoked tokens."""
        if not token:
            return None
        wanted = hash_token(token)
        query = caller_query(ApiToken.token_hash, with_token=True).select_from(ApiToken)
        query = query.join(User, User.id == ApiToken.user_id)
        query = caller_joins(query, with_token=True).where(
            ApiToken.token_hash == wanted, ApiToken.revoked_at.is_(None)
        )
        async with self._begin() as session:
            row = (await session.execute(query)).first()
        if row is None or not hmac.compare_digest(row.token_hash, wanted):
            return None
        return caller_record(row, with_token=True)

    async def get_user(self, name: str) -> UserRecord | None:
        async with self._begin() as session:
            user = await session.scalar(select(User).where(User.name == name))
            return None if user is None else _user(user)

    async def get_user_by_id(self, user_id: int) -> UserRecord | None:
        async with self._begin() as session:
            user = await session.get(User, user_id)
            return None if user is None else _user(user)

    async def list_users(self) -> list[UserRecord]:
        async with self._begin() as session:
            users = await session.scalars(select(User).order_by(User.id))
            return [_user(user) for user in users]

    async def user_listing(self, user_id: int | None = None) -> list[UserListing]:
        """Every user (or the one of ``user_id``) with its role and its own policy."""
        query = select(User, PolicyRow).outerjoin(PolicyRow, PolicyRow.user_id == User.id)
        if user_id is not None:
            query = query.where(User.id == user_id)
        async with self._begin() as session:
            rows = await session.execute(query.order_by(User.id))
            return [
                UserListing(
                    id=user.id,
                    name=user.name,
                    role=check_role(user.role),
                    created_at=user.created_at,
                    policy=row_policy(policy),
                )
                for user, policy in rows
            ]

    async def count_users(self) -> int:
        async with self._begin() as session:
            return int(await session.scalar(select(func.count()).select_from(User)) or 0)

    async def set_role(self, user: str | int, role: Role) -> UserRecord:
        """Make a user (by name or id) an admin or a member; the only admin stays one
        (``LastAdmin``)."""
        check_role(role)
        async with self._begin() as session:
            condition = User.name == user if isinstance(user, str) else User.id == user
            row = await session.scalar(select(User).where(condition).with_for_update())
            if row is None:
                raise UserNotFound(user)
            if row.role == "admin" and role != "admin":
                others = await session.scalar(
                    select(func.count())
                    .select_from(User)
                    .where(User.role == "admin", User.id != row.id)
                )
                if not others:
                    raise LastAdmin(row.name)
            row.role = role
            await session.flush()
            return _user(row)

    # Policies

    async def default_policy(self) -> Policy | None:
        async with self._begin() as session:
            return row_policy(
                await session.scalar(select(PolicyRow).where(PolicyRow.is_default == true()))
            )

    async def user_policy(self, user_id: int) -> Policy | None:
        """The user's own policy (None: the default applies)."""
        async with self._begin() as session:
            await self._require_user(session, user_id)
            return row_policy(
                await session.scalar(select(PolicyRow).where(PolicyRow.user_id == user_id))
            )

    async def change_default_policy(self, changes: Mapping[str, object]) -> Policy | None:
        """Change the given fields of the operator's default (None clears one; see
        ``_change_policy``); returns the result, None when nothing is left."""
        return await self._changing({"is_default": True}, changes)

    async def change_user_policy(
        self, user_id: int, changes: Mapping[str, object]
    ) -> Policy | None:
        return await self._changing({"user_id": user_id}, changes)

    async def change_token_policy(
        self, token_id: int, changes: Mapping[str, object]
    ) -> Policy | None:
        return await self._changing({"token_id": token_id}, changes)

    async def _changing(
        self, subject: dict[str, Any], changes: Mapping[str, object]
    ) -> Policy | None:
        """``_change_policy`` in a transaction of its own; tried once more when a concurrent
        change created the same row first (the unique constraint refused the second)."""
        for attempt in (1, 2):
            try:
                async with self._begin() as session:
                    if "user_id" in subject:
                        await self._require_user(session, subject["user_id"])
                    elif "token_id" in subject:
                        token_id = subject["token_id"]
                        found = await session.scalar(
                            select(ApiToken.id).where(ApiToken.id == token_id)
                        )
                        if found is None:
                            raise TokenNotFound(token_id)
                    return await self._change_policy(session, subject, changes)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _change_policy(
        self, session: AsyncSession, subject: dict[str, Any], changes: Mapping[str, object]
    ) -> Policy | None:
        """``changes``: field -> new value, None to clear it (``budget_period`` back to
        "month"); the fields not named keep theirs. The result is checked whole; an empty
        one deletes the row, so a user's falls back to the default."""
        unknown = [name for name in changes if name not in POLICY_FIELDS]
        if unknown:
            raise ValueError(
                f"unknown policy field {unknown[0][:50]!r}; the fields are "
                + ", ".join(POLICY_FIELDS)
            )
        ((column, value),) = subject.items()
        where = getattr(PolicyRow, column) == value
        row = await session.scalar(select(PolicyRow).where(where).with_for_update())
        current = row_policy(row) or Policy()
        values = dict(changes)
        if "budget_period" in values and values["budget_period"] is None:
            values["budget_period"] = "month"
        models = values.get("models", current.models)
        if isinstance(models, list):
            values["models"] = tuple(models)
        policy = check_policy(replace(current, **values))  # type: ignore[arg-type]
        if policy.empty():
            if row is not None:
                await session.delete(row)
            return None
        if row is None:
            await session.execute(insert(PolicyRow).values(**subject, **row_values(policy)))
        else:
            for name, new in row_values(policy).items():
                setattr(row, name, new)
            row.updated_at = utcnow()
        await session.flush()
        return policy

    async def clear_policy(
        self, *, user_id: int | None = None, token_id: int | None = None
    ) -> bool:
        """Delete a user's or a token's policy, or (neither given) the default; True when
        there was one."""
        if user_id is not None:
            where = PolicyRow.user_id == user_id
        elif token_id is not None:
            where = PolicyRow.token_id == token_id
        else:
            where = PolicyRow.is_default == true()
        async with self._begin() as session:
            result = await session.execute(
                delete(PolicyRow).where(where).execution_options(synchronize_session=False)
            )
            return _rowcount(result) == 1

    async def _user_id(self, session: AsyncSession, name: str) -> int:
        user_id = await session.scalar(select(User.id).where(User.name == name))
        if user_id is None:
            raise UserNotFound(name)
        return user_id

    async def _require_user(self, session: AsyncSession, user_id: int) -> None:
        if await session.scalar(select(User.id).where(User.id == user_id)) is None:
            raise UserNotFound(user_id)

    # Profiles

    async def get_profile(self, user_id: int) -> Profile:
        async with self._begin() as session:
            return await self._profiles.read(session, user_id)

    async def update_profile(
        self, user_id: int, changes: Mapping[str, str | bool | None]
    ) -> Profile:
        """Set (a string), clear (None or "") or keep (absent) each field; returns the result."""
        checked = self._profiles.changes(changes)
        async with self._begin() as session:
            await self._require_user(session, user_id)
            await self._profiles.write(session, user_id, checked)
            return await self._profiles.read(session, user_id)

    # Custom models

    async def list_custom_models(self, user_id: int) -> list[CustomModel]:
        async with self._begin() as session:
            rows = await session.scalars(
                select(CustomModelRow)
                .where(CustomModelRow.user_id == user_id)
                .order_by(CustomModelRow.id)
            )
            return [self._custom_model(row) for row in rows]

    async def get_custom_model(self, user_id: int, model_id_pk: int) -> CustomModel | None:
        async with self._begin() as session:
            row = await self._own_model(session, user_id, model_id_pk)
            return None if row is None else self._custom_model(row)

    async def create_custom_model(
        self,
        user_id: int,
        *,
        name: str,
        model_id: str,
        base_url: str,
        api_key: str,
        context_length: int = 4096,
        description: str = "",
        limit: int = 0,
    ) -> CustomModel:
        """``limit``: the most custom models the user may have (0: no cap); past it
        ``TooManyCustomModels``. Counted in the same transaction as the insert."""
        fields = self._custom_model_values(
            {
                "name": name,
                "model_id": model_id,
                "base_url": base_url,
                "api_key": api_key,
                "context_length": context_length,
                "description": description,
            }
        )
        try:
            async with self._begin() as session:
                await self._require_user(session, user_id)
                if limit and await self._count_custom_models(session, user_id) >= limit:
                    raise TooManyCustomModels(limit)
                row = CustomModelRow(user_id=user_id, **fields)
                session.add(row)
                await session.flush()
                return self._custom_model(row)
        except IntegrityError as exc:
            raise CustomModelExists(name) from exc

    async def update_custom_model(
        self, user_id: int, pk: int, **changes: str | int
    ) -> CustomModel | None:
        """Change the given fields of the user's model ``pk``; None if they have no such model."""
        fields = self._custom_model_values(changes)
        try:
            async with self._begin() as session:
                row = await self._own_model(session, user_id, pk)
                if row is None:
                    return None
                for name, value in fields.items():
                    setattr(row, name, value)
                await session.flush()
                return self._custom_model(row)
        except IntegrityError as exc:
            raise CustomModelExists(str(changes.get("name", ""))) from exc

    async def delete_custom_model(self, user_id: int, pk: int) -> bool:
        async with self._begin() as session:
            result = await session.execute(
                delete(CustomModelRow)
                .where(CustomModelRow.user_id == user_id, CustomModelRow.id == pk)
                .execution_options(synchronize_session=False)
            )
            return _rowcount(result) == 1

    async def _count_custom_models(self, session: AsyncSession, user_id: int) -> int:
        count = await session.scalar(
            select(func.count())
            .select_from(CustomModelRow)
            .where(CustomModelRow.user_id == user_id)
        )
        return int(count or 0)

    async def _own_model(
        self, session: AsyncSession, user_id: int, pk: int
    ) -> CustomModelRow | None:
        return await session.scalar(
            select(CustomModelRow).where(CustomModelRow.user_id == user_id, CustomModelRow.id == pk)
        )

    def _custom_model_values(self, changes: Mapping[str, object]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in CUSTOM_MODEL_FIELDS:
                raise ValueError(f"unknown custom model field {name[:100]!r}")
            if name == "context_length":
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise ValueError("context_length must be a positive integer")
                values[name] = value
                continue
            text = text_value(name, value, CUSTOM_MODEL_TEXT[name])
            if name == "name" and (not text.strip() or has_forbidden(text)):
                raise ValueError("name must be non-empty, without control characters")
            if name == "base_url":
                check_base_url(text)
            if name == "model_id" and not text.strip():
                raise ValueError("model_id must not be empty")
            values[name] = self._keybox.encrypt(text) if name == "api_key" else text
        return values

    def _custom_model(self, row: CustomModelRow) -> CustomModel:
        return CustomModel(
            id=row.id,
            user_id=row.user_id,
            name=row.name,
            model_id=row.model_id,
            base_url=row.base_url,
            api_key=self._keybox.decrypt(row.api_key),
            context_length=row.context_length,
            description=row.description,
        )
