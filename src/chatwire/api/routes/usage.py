"""GET /api/usage: what chats used and cost, summed by day, model, provider, token or user.

A member sees their own chats (and may narrow them to one of their tokens); a caller with
the admin role sees everyone's, and may narrow them to a user and a token. The sums add the
ledger's daily rollups to its recent rows (``store.ledger``); costs are exact decimal
strings, and ``unpriced_requests`` counts the chats of models with no price, whose cost is
not in ``cost``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from chatwire.api.deps import CurrentUser, ServicesDep
from chatwire.errors import RequestInvalid
from chatwire.store.ledger import By, Line, moment

router = APIRouter(prefix="/api/usage", tags=["usage"])
Id = Annotated[int | None, Query(ge=1, le=2**31 - 1)]


@router.get("")
async def usage(
    user: CurrentUser,
    services: ServicesDep,
    since: str = "30d",
    until: str | None = None,
    by: By = "day",
    user_id: Annotated[Id, Query(alias="user")] = None,
    token_id: Annotated[Id, Query(alias="token")] = None,
) -> dict[str, Any]:
    """Sums of the chats from ``since`` (a span back from now: 12h, 7d; or an ISO time) to
    ``until`` (now), grouped ``by`` day, model, provider, token or user."""
    try:
        start = moment(since)
        end = moment(until) if until is not None else None
    except ValueError as exc:
        raise RequestInvalid(str(exc)) from None
    if user.role != "admin":
        if user_id is not None and user_id != user.id:
            raise RequestInvalid(
                "Only an admin may read another user's usage; leave 'user' out for your own."
            )
        user_id = user.id
    lines = await services.usage.ledger.report(by, start, end, user_id=user_id, token_id=token_id)
    return {
        "since": start.isoformat(),
        "until": end.isoformat() if end is not None else None,
        "by": by,
        "groups": [line.as_json() for line in lines],
        "total": Line.total(lines).as_json(),
    }
