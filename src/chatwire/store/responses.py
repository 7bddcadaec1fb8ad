"""Stored Responses API replies, one short transaction each, every query by the owner's id.

A row is a response object as it was sent and the input items of its whole conversation,
as JSON text; ``previous_response_id`` continues from that row alone, in any process that
shares the database. A row older than the retention period (``retention_days``; 0 keeps rows
until they are deleted) is not found, from the moment it expires; such rows go in batches
(``prune``), so the table stays bounded whoever never deletes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import delete, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.store.db import make_sessionmaker
from chatwire.store.health import guarded
from chatwire.store.models import RESPONSE_ID_LENGTH, ResponseItemRow, ResponseRow, utcnow

PRUNE_BATCH = 500
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    user_id: int
    status: str
    created_at: datetime
    # The response object, and every input item of its conversation, as JSON values.
    body: dict[str, Any]
    input: list[dict[str, Any]]
    # Characters of the two as stored.
    size: int


class ResponseStore:
    def __init__(self, engine: AsyncEngine, retention_days: float = 0) -> None:
        self._sessions = make_sessionmaker(engine)
        self._retention = timedelta(days=retention_days) if retention_days else None

    def _fresh(self) -> Any:
        """The condition a row within the retention period meets (true without one)."""
        if self._retention is None:
            return true()
        return ResponseRow.created_at >= utcnow() - self._retention

    async def save(self, user_id: int, body: dict[str, Any], items: list[dict[str, Any]]) -> None:
        """Keep a response (``body``, with its ``id``, ``status`` and ``output``), its input
        items, and its output items by their ids."""
        row = ResponseRow(
            id=body["id"],
            user_id=user_id,
            status=body["status"],
            body=_encode(body).decode(),
            input=_encode(items).decode(),
        )
        outputs = [
            ResponseItemRow(
                id=item["id"], response_id=row.id, user_id=user_id, item=_encode(item).decode()
            )
            for item in body.get("output") or ()
        ]
        async with guarded(), self._sessions.begin() as session:
            session.add(row)
            await session.flush()
            session.add_all(outputs)

    async def items(self, user_id: int, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The user's stored output items among ``ids``, by id (another user's are not, nor
        an expired response's)."""
        async with guarded(), self._sessions.begin() as session:
            query = select(ResponseItemRow.id, ResponseItemRow.item).where(
                ResponseItemRow.user_id == user_id, ResponseItemRow.id.in_(ids)
            )
            if self._retention is not None:
                query = query.join(ResponseRow, ResponseRow.id == ResponseItemRow.response_id)
                query = query.where(self._fresh())
            rows = await session.execute(query)
            return {row.id: msgspec.json.decode(row.item) for row in rows}

    async def get(self, user_id: int, response_id: str) -> StoredResponse | None:
        """The user's response of that id; None for another user's, an expired one, or an
        unknown one."""
        if len(response_id) > RESPONSE_ID_LENGTH:
            return None
        async with guarded(), self._sessions.begin() as session:
            row = await session.scalar(
                select(ResponseRow).where(
                    ResponseRow.id == response_id,
                    ResponseRow.user_id == user_id,
                    self._fresh(),
                )
            )
            if row is None:
                return None
            return StoredResponse(
                id=row.id,
                user_id=row.user_id,
                status=row.status,
                created_at=row.created_at,
                body=msgspec.json.decode(row.body),
                input=msgspec.json.decode(row.input),
                size=len(row.body) + len(row.input),
            )

    async def delete(self, user_id: int, response_id: str) -> bool:
        """Delete the user's response of that id; False when there is none (or it expired)."""
        async with guarded(), self._sessions.begin() as session:
            result = await session.execute(
                delete(ResponseRow)
                .where(ResponseRow.id == response_id, ResponseRow.user_id == user_id, self._fresh())
                .execution_options(synchronize_session=False)
            )
            return int(getattr(result, "rowcount", 0)) == 1

    async def prune(self, days: float, batch: int = PRUNE_BATCH) -> int:
        """Delete the rows older than ``days``, ``batch`` at a time (short transactions that
        hold few locks); returns how many went."""
        cutoff = utcnow() - timedelta(days=days)
        removed = 0
        while True:
            async with guarded(), self._sessions.begin() as session:
                oldest = (
                    select(ResponseRow.id)
                    .where(ResponseRow.created_at < cutoff)
                    .order_by(ResponseRow.created_at)
                    .limit(batch)
                )
                result = await session.execute(
                    delete(ResponseRow)
                    .where(ResponseRow.id.in_(oldest))
                    .execution_options(synchronize_session=False)
                )
                count = int(getattr(result, "rowcount", 0))
            removed += count
            if count < batch:
                return removed
