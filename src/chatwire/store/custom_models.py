"""The store's custom models: a user's own OpenAI-compatible endpoints, keys encrypted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chatwire.store.base import (
    CustomModelExists,
    StoreBase,
    TooManyCustomModels,
    rowcount,
)
from chatwire.store.models import (
    USER_NAME_LENGTH,
    CustomModelRow,
)
from chatwire.store.records import (
    MAX_FIELD_LENGTH,
    CustomModel,
)
from chatwire.store.validation import (
    check_base_url,
    has_forbidden,
    text_value,
)

CUSTOM_MODEL_TEXT = {
    "name": USER_NAME_LENGTH,
    "model_id": MAX_FIELD_LENGTH,
    "base_url": MAX_FIELD_LENGTH,
    "api_key": MAX_FIELD_LENGTH,
    "description": MAX_FIELD_LENGTH,
}
CUSTOM_MODEL_FIELDS = frozenset({*CUSTOM_MODEL_TEXT, "context_length"})


class CustomModels(StoreBase):
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
            return rowcount(result) == 1

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
