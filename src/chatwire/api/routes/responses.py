"""The Responses API's stored replies: read one, delete one, list its input items, as OpenAI's
API does, for the caller's own only (another user's id is a 404, as an unknown one)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from chatwire.api.deps import CurrentUser, ServicesDep
from chatwire.errors import ResponseNotFound
from chatwire.store.responses import StoredResponse

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible API"])


async def _own(services: ServicesDep, user: CurrentUser, response_id: str) -> StoredResponse:
    stored = await services.responses.get(user.id, response_id)
    if stored is None:
        raise ResponseNotFound(f"No response found with id '{response_id[:100]}'.")
    return stored


@router.get("/responses/{response_id}")
async def read_response(
    response_id: str, user: CurrentUser, services: ServicesDep
) -> dict[str, Any]:
    return (await _own(services, user, response_id)).body


@router.delete("/responses/{response_id}")
async def delete_response(
    response_id: str, user: CurrentUser, services: ServicesDep
) -> dict[str, Any]:
    if not await services.responses.delete(user.id, response_id):
        raise ResponseNotFound(f"No response found with id '{response_id[:100]}'.")
    return {"id": response_id, "object": "response", "deleted": True}


@router.get("/responses/{response_id}/input_items")
async def list_input_items(
    response_id: str,
    user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> dict[str, Any]:
    """The input items of the response's conversation (a continued one's earlier turns
    included), newest first unless ``order=asc``; ``after`` an item id, for the next page."""
    items = (await _own(services, user, response_id)).input
    if order == "desc":
        items = items[::-1]
    if after is not None:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": len(items) > limit,
    }
