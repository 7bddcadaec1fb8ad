"""The store's policies: the operator's default, a user's and a token's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import delete, insert, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chatwire.store.base import StoreBase, TokenNotFound, rowcount
from chatwire.store.models import (
    ApiToken,
    PolicyRow,
    utcnow,
)
from chatwire.store.policies import (
    POLICY_FIELDS,
    check_policy,
    row_policy,
    row_values,
)
from chatwire.store.records import (
    Policy,
)


class PolicyStore(StoreBase):
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
            return rowcount(result) == 1
