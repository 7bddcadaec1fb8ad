"""/api/chats: the conversations the chat page keeps for its user, on the server, so
every browser the user signs in with sees the same ones."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from chatwire.api.deps import CurrentUser, ServicesDep
from chatwire.errors import LimitReached, NotFound
from chatwire.store.records import MAX_FIELD_LENGTH
from chatwire.store.validation import has_forbidden
from chatwire.store.web import ChatRecord

router = APIRouter(prefix="/api/chats", tags=["chats"])


def _plain(text: str) -> str:
    """Titles and model names are shown in lists: no control or surrogate characters."""
    if has_forbidden(text):
        raise ValueError("must not contain control characters")
    return text


def _unicode(text: str) -> str:
    """Text the answers can carry back: no lone surrogates (which UTF-8 cannot encode)."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        raise ValueError("must be Unicode text, without lone surrogates")
    return text


Content = Annotated[str, AfterValidator(_unicode)]
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_plain),
]
Model = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_FIELD_LENGTH), AfterValidator(_plain)
]
ChatId = Annotated[int, Path(ge=1, le=2**31 - 1)]
# An attached image as the chat request carries it.
ImageURL = Annotated[str, StringConstraints(pattern=r"^data:image/(png|jpeg|gif|webp);base64,")]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: Content
    images: list[ImageURL] = Field(default_factory=list, max_length=20)


class ChatCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    model: Model
    messages: list[ChatMessage] = Field(default_factory=list)


class ChatUpdate(BaseModel):
    """Only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    model: Model | None = None
    messages: list[ChatMessage] | None = None


class ChatListed(BaseModel):
    id: int
    title: str
    model: str
    updated_at: datetime


class ChatPublic(ChatListed):
    created_at: datetime
    messages: list[ChatMessage]


def _public(record: ChatRecord) -> ChatPublic:
    return ChatPublic(
        id=record.id,
        title=record.title,
        model=record.model,
        updated_at=record.updated_at,
        created_at=record.created_at,
        messages=[ChatMessage.model_validate(m) for m in json.loads(record.messages)],
    )


def _messages(messages: list[ChatMessage]) -> str:
    # Escaped to ASCII: a lone surrogate or a NUL in a message is kept, and stored as text
    # every database takes.
    return json.dumps([m.model_dump() for m in messages])


def _missing(chat_id: int) -> NotFound:
    return NotFound(f"You have no chat with id {chat_id} (GET /api/chats).")


@router.get("")
async def list_chats(user: CurrentUser, services: ServicesDep) -> list[ChatListed]:
    """The caller's chats, the most recently changed first (without their messages)."""
    return [
        ChatListed(id=c.id, title=c.title, model=c.model, updated_at=c.updated_at)
        for c in await services.web.list_chats(user.id)
    ]


@router.post("", status_code=201)
async def create_chat(user: CurrentUser, services: ServicesDep, body: ChatCreate) -> ChatPublic:
    limit = services.settings.max_chats
    if limit and len(await services.web.list_chats(user.id)) >= limit:
        raise LimitReached(
            f"You keep {limit} chats, the most allowed (CHATWIRE_MAX_CHATS); delete one first."
        )
    record = await services.web.create_chat(
        user.id, body.title, body.model, _messages(body.messages)
    )
    return _public(record)


@router.get("/{chat_id}")
async def read_chat(chat_id: ChatId, user: CurrentUser, services: ServicesDep) -> ChatPublic:
    record = await services.web.get_chat(user.id, chat_id)
    if record is None:
        raise _missing(chat_id)
    return _public(record)


@router.patch("/{chat_id}")
async def update_chat(
    chat_id: ChatId, user: CurrentUser, services: ServicesDep, body: ChatUpdate
) -> ChatPublic:
    changes: dict[str, str] = {}
    if body.title is not None:
        changes["title"] = body.title
    if body.model is not None:
        changes["model"] = body.model
    if body.messages is not None:
        changes["messages"] = _messages(body.messages)
    record = await services.web.update_chat(user.id, chat_id, **changes)
    if record is None:
        raise _missing(chat_id)
    return _public(record)


@router.delete("/{chat_id}", status_code=204)
async def delete_chat(chat_id: ChatId, user: CurrentUser, services: ServicesDep) -> Response:
    if not await services.web.delete_chat(user.id, chat_id):
        raise _missing(chat_id)
    return Response(status_code=204)
