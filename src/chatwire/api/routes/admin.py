"""/api/admin: users, tokens and policies, for callers whose role is admin (403 for others).

    GET    /api/admin/users                     every user, its role and own policy
    POST   /api/admin/users                     a new user, and its first token (shown once)
    GET    /api/admin/users/{id}                one user
    PATCH  /api/admin/users/{id}                its role
    PATCH  /api/admin/users/{id}/policy         change its policy's fields (null clears one)
    DELETE /api/admin/users/{id}/policy         remove it: the default applies again
    GET    /api/admin/tokens[?user_id=]         every token, or one user's (never their values)
    POST   /api/admin/tokens                    a new token, named, with a policy (shown once)
    DELETE /api/admin/tokens/{id}               revoke it
    PATCH  /api/admin/tokens/{id}/policy        change its policy's fields
    DELETE /api/admin/tokens/{id}/policy        remove it
    GET    /api/admin/policies/default          the operator's default (for users with none)
    PATCH  /api/admin/policies/default          change its fields
    DELETE /api/admin/policies/default          remove it

Users are named by id here (a name may hold any character, '/' too); the CLI names them by
name. Every change is told to ``Services.changed``, so it holds at once. Budgets travel as
strings of dollars ("12.5"), exact; requests may send them as numbers too.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from chatwire.api.deps import ServicesDep, current_user
from chatwire.errors import AdminOnly, AlreadyExists, NotFound, RequestInvalid
from chatwire.store.models import USER_NAME_LENGTH
from chatwire.store.policies import (
    BUDGET_DIGITS,
    BUDGET_PLACES,
    MAX_COUNT,
    MAX_PATTERNS,
    PATTERN_LENGTH,
    TOKEN_NAME_LENGTH,
    money,
)
from chatwire.store.records import Policy, TokenRecord, UserListing, UserRecord
from chatwire.store.repo import (
    LastAdmin,
    TokenNameTaken,
    TokenNotFound,
    UserExists,
    UserNotFound,
)

RoleName = Literal["admin", "member"]
Period = Literal["day", "week", "month", "total"]
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]
Pattern = Annotated[str, StringConstraints(min_length=1, max_length=PATTERN_LENGTH)]
Budget = Annotated[Decimal, Field(ge=0, max_digits=BUDGET_DIGITS, decimal_places=BUDGET_PLACES)]
UserName = Annotated[str, StringConstraints(min_length=1, max_length=USER_NAME_LENGTH)]
TokenName = Annotated[str, StringConstraints(min_length=1, max_length=TOKEN_NAME_LENGTH)]


async def admin_user(user: Annotated[UserRecord, Depends(current_user)]) -> UserRecord:
    if user.role != "admin":
        raise AdminOnly(
            f"Only admins may use /api/admin; '{user.name}' is a {user.role}. An admin can "
            f"change that (chatwire users role '{user.name}' admin)."
        )
    return user


router = APIRouter(prefix="/api/admin", tags=["admin"], dependencies=[Depends(admin_user)])


class PolicyChange(BaseModel):
    """The fields to change; null clears one (no limit of that kind; ``budget_period`` back
    to "month"); the fields left out keep theirs. ``models``: ``provider/model`` patterns
    (``mistral/*``); an empty list allows no model."""

    model_config = ConfigDict(extra="forbid")

    models: Annotated[list[Pattern], Field(max_length=MAX_PATTERNS)] | None = None
    rpm: Count | None = None
    tpm: Count | None = None
    parallel: Count | None = None
    budget: Budget | None = None
    budget_period: Period | None = None

    def changes(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class PolicyPublic(BaseModel):
    models: list[str] | None
    rpm: int | None
    tpm: int | None
    parallel: int | None
    budget: str | None  # US dollars, exact
    budget_period: Period


class UserPublic(BaseModel):
    """``policy``: the user's own; null when the default applies."""

    id: int
    name: str
    role: RoleName
    created_at: datetime
    policy: PolicyPublic | None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: UserName
    role: RoleName = "member"


class UserCreated(BaseModel):
    user: UserPublic
    token: str


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: RoleName


class TokenPublic(BaseModel):
    id: int
    user_id: int
    user: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None
    policy: PolicyPublic | None


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    name: TokenName | None = None
    policy: PolicyChange | None = None


class TokenCreated(BaseModel):
    """``token``: its value, in this answer only (chatwire keeps its hash)."""

    token: str
    record: TokenPublic


class DefaultPolicy(BaseModel):
    """The operator's default, for users without a policy of their own; null: none."""

    policy: PolicyPublic | None


def policy_public(policy: Policy | None) -> PolicyPublic | None:
    if policy is None:
        return None
    return PolicyPublic(
        models=None if policy.models is None else list(policy.models),
        rpm=policy.rpm,
        tpm=policy.tpm,
        parallel=policy.parallel,
        budget=None if policy.budget is None else money(policy.budget),
        budget_period=policy.budget_period,
    )


def _user(listing: UserListing) -> UserPublic:
    return UserPublic(
        id=listing.id,
        name=listing.name,
        role=listing.role,
        created_at=listing.created_at,
        policy=policy_public(listing.policy),
    )


def _token(record: TokenRecord) -> TokenPublic:
    assert record.user_id is not None
    return TokenPublic(
        id=record.id,
        user_id=record.user_id,
        user=record.user_name,
        name=record.name,
        created_at=record.created_at,
        revoked_at=record.revoked_at,
        policy=policy_public(record.policy),
    )


def _no_user(user_id: int) -> NotFound:
    return NotFound(f"There is no user with id {user_id} (GET /api/admin/users).")


def _no_token(token_id: int) -> NotFound:
    return NotFound(f"There is no token with id {token_id} (GET /api/admin/tokens).")


async def _listing(services: ServicesDep, user_id: int) -> UserPublic:
    found = await services.store.user_listing(user_id)
    if not found:
        raise _no_user(user_id)
    return _user(found[0])


def _policy_from(body: PolicyChange) -> Policy:
    return Policy(
        models=None if body.models is None else tuple(body.models),
        rpm=body.rpm,
        tpm=body.tpm,
        parallel=body.parallel,
        budget=body.budget,
        budget_period=body.budget_period or "month",
    )


# Users


@router.get("/users")
async def list_users(services: ServicesDep) -> list[UserPublic]:
    return [_user(listing) for listing in await services.store.user_listing()]


@router.post("/users", status_code=201)
async def create_user(body: UserCreate, services: ServicesDep) -> UserCreated:
    try:
        record, token = await services.store.create_user(body.name, body.role)
    except UserExists as exc:
        raise AlreadyExists(f"A user named '{body.name}' exists already.") from exc
    except ValueError as exc:
        raise RequestInvalid(f"name: {exc}") from exc
    return UserCreated(user=await _listing(services, record.id), token=token)


@router.get("/users/{user_id}")
async def read_user(user_id: Id, services: ServicesDep) -> UserPublic:
    return await _listing(services, user_id)


@router.patch("/users/{user_id}")
async def change_user(user_id: Id, body: UserChange, services: ServicesDep) -> UserPublic:
    try:
        await services.store.set_role(user_id, body.role)
    except UserNotFound as exc:
        raise _no_user(user_id) from exc
    except LastAdmin as exc:
        raise AlreadyExists(f"role: {exc}.") from exc
    services.changed("user", user_id)
    return await _listing(services, user_id)


@router.patch("/users/{user_id}/policy")
async def change_user_policy(user_id: Id, body: PolicyChange, services: ServicesDep) -> UserPublic:
    try:
        await services.store.change_user_policy(user_id, body.changes())
    except UserNotFound as exc:
        raise _no_user(user_id) from exc
    except ValueError as exc:
        raise RequestInvalid(str(exc)) from exc
    services.changed("user", user_id)
    return await _listing(services, user_id)


@router.delete("/users/{user_id}/policy", status_code=204)
async def clear_user_policy(user_id: Id, services: ServicesDep) -> Response:
    if await services.store.get_user_by_id(user_id) is None:
        raise _no_user(user_id)
    await services.store.clear_policy(user_id=user_id)
    services.changed("user", user_id)
    return Response(status_code=204)


# Tokens


@router.get("/tokens")
async def list_tokens(
    services: ServicesDep, user_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None
) -> list[TokenPublic]:
    try:
        return [_token(record) for record in await services.store.list_all_tokens(user_id)]
    except UserNotFound as exc:
        raise _no_user(user_id or 0) from exc


@router.post("/tokens", status_code=201)
async def create_token(body: TokenCreate, services: ServicesDep) -> TokenCreated:
    user = await services.store.get_user_by_id(body.user_id)
    if user is None:
        raise _no_user(body.user_id)
    policy = None if body.policy is None else _policy_from(body.policy)
    try:
        record, token = await services.store.add_token(user.name, name=body.name, policy=policy)
    except TokenNameTaken as exc:
        raise AlreadyExists(
            f"name: '{user.name}' has a token named '{body.name}' already."
        ) from exc
    except UserNotFound as exc:
        raise _no_user(body.user_id) from exc
    except ValueError as exc:
        raise RequestInvalid(str(exc)) from exc
    return TokenCreated(token=token, record=_token(record))


@router.delete("/tokens/{token_id}", status_code=204)
async def revoke_token(token_id: Id, services: ServicesDep) -> Response:
    if not await services.store.revoke_token(token_id):
        raise NotFound(f"There is no active token with id {token_id} (GET /api/admin/tokens).")
    services.changed("token", token_id)
    return Response(status_code=204)


@router.patch("/tokens/{token_id}/policy")
async def change_token_policy(
    token_id: Id, body: PolicyChange, services: ServicesDep
) -> TokenPublic:
    try:
        await services.store.change_token_policy(token_id, body.changes())
    except TokenNotFound as exc:
        raise _no_token(token_id) from exc
    except ValueError as exc:
        raise RequestInvalid(str(exc)) from exc
    services.changed("token", token_id)
    record = await services.store.get_token(token_id)
    if record is None:
        raise _no_token(token_id)
    return _token(record)


@router.delete("/tokens/{token_id}/policy", status_code=204)
async def clear_token_policy(token_id: Id, services: ServicesDep) -> Response:
    if await services.store.get_token(token_id) is None:
        raise _no_token(token_id)
    await services.store.clear_policy(token_id=token_id)
    services.changed("token", token_id)
    return Response(status_code=204)


# The operator's default


@router.get("/policies/default")
async def read_default(services: ServicesDep) -> DefaultPolicy:
    return DefaultPolicy(policy=policy_public(await services.store.default_policy()))


@router.patch("/policies/default")
async def change_default(body: PolicyChange, services: ServicesDep) -> DefaultPolicy:
    try:
        policy = await services.store.change_default_policy(body.changes())
    except ValueError as exc:
        raise RequestInvalid(str(exc)) from exc
    services.changed("default")
    return DefaultPolicy(policy=policy_public(policy))


@router.delete("/policies/default", status_code=204)
async def clear_default(services: ServicesDep) -> Response:
    await services.store.clear_policy()
    services.changed("default")
    return Response(status_code=204)
