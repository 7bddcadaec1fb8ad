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
from collections.abc import Mapping

from sqlalchemy import func, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from chatwire.core.security import hash_token, new_token
from chatwire.store.base import (
    CustomModelExists,
    LastAdmin,
    TokenNameTaken,
    TokenNotFound,
    TooManyCustomModels,
    UserExists,
    UserNotFound,
    rowcount,
    user_record,
)
from chatwire.store.custom_models import CustomModels
from chatwire.store.models import (
    ApiToken,
    PolicyRow,
    User,
    utcnow,
)
from chatwire.store.policies import (
    caller_joins,
    caller_query,
    caller_record,
    check_policy,
    check_role,
    check_token_name,
    row_policy,
    row_values,
)
from chatwire.store.policy_store import PolicyStore
from chatwire.store.records import (
    Policy,
    Profile,
    Role,
    TokenRecord,
    UserListing,
    UserRecord,
)
from chatwire.store.validation import (
    validate_user_name,
)

__all__ = [
    "CustomModelExists",
    "LastAdmin",
    "Store",
    "TokenNameTaken",
    "TokenNotFound",
    "TooManyCustomModels",
    "UserExists",
    "UserNotFound",
]


class Store(PolicyStore, CustomModels):
    """Users, tokens and profiles here; policies (``policy_store``) and custom models
    (``custom_models``) in their own parts; transactions and lookups in ``base``."""

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
        return rowcount(result)

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
        async with self._read() as connection:
            row = (await connection.execute(query)).first()
        if row is None or not hmac.compare_digest(row.token_hash, wanted):
            return None
        return caller_record(row, with_token=True)

    async def get_user(self, name: str) -> UserRecord | None:
        async with self._begin() as session:
            user = await session.scalar(select(User).where(User.name == name))
            return None if user is None else user_record(user)

    async def get_user_by_id(self, user_id: int) -> UserRecord | None:
        async with self._begin() as session:
            user = await session.get(User, user_id)
            return None if user is None else user_record(user)

    async def list_users(self) -> list[UserRecord]:
        async with self._begin() as session:
            users = await session.scalars(select(User).order_by(User.id))
            return [user_record(user) for user in users]

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
            return user_record(row)

    # Profiles

    async def get_profile(self, user_id: int) -> Profile:
        async with self._read() as connection:
            return await self._profiles.read(connection, user_id)

    async def update_profile(
        self, user_id: int, changes: Mapping[str, str | bool | None]
    ) -> Profile:
        """Set (a string), clear (None or "") or keep (absent) each field; returns the result."""
        checked = self._profiles.changes(changes)
        async with self._begin() as session:
            await self._require_user(session, user_id)
            await self._profiles.write(session, user_id, checked)
            return await self._profiles.read(session, user_id)
