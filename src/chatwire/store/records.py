"""What the store hands out, plain immutable records with keys already decrypted, and how it
is told which credential fields exist (``CredentialField``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

MAX_FIELD_LENGTH = 1000  # characters of a stored value (a key, an endpoint, a deployment id)
FIELD_NAME_LENGTH = 100  # characters of a credential field's name


@dataclass(frozen=True, slots=True)
class CredentialField:
    """How the store and its readers treat one credential field a user may store.

    Every value is encrypted at rest, whatever these say. ``secret`` values are masked
    whenever they are shown (/api/profile, ``chatwire keys list``); a ``url`` must be a
    plain http(s) API base, since a route's own path is appended to it.
    """

    secret: bool
    url: bool = False


# How long a budget runs before it starts again: a calendar day, ISO week or month in UTC, or
# the whole life of the token or user.
BudgetPeriod = Literal["day", "week", "month", "total"]
Role = Literal["admin", "member"]


@dataclass(frozen=True, slots=True)
class Policy:
    """What a token, a user or the operator's default allows; None: no limit of that kind.

    ``models``: patterns of ``provider/model`` names (``mistral/*``, ``anthropic/claude-*``,
    shell-style); ``rpm``/``tpm``: requests and tokens (input + output) per minute;
    ``parallel``: chats at once; ``budget``: US dollars per ``budget_period``.
    """

    models: tuple[str, ...] | None = None
    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None
    budget: Decimal | None = None
    budget_period: BudgetPeriod = "month"

    def empty(self) -> bool:
        return (
            self.models is None
            and self.rpm is None
            and self.tpm is None
            and self.parallel is None
            and self.budget is None
        )


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A caller: the user, and when it came with a token, which one and what it may do.

    ``policy`` is the user's own policy, or the operator's default for a user with none;
    ``token_policy`` the token's. Both apply, each counted on its own (the token's per
    token, the user's across all of the user's tokens), so the stricter one decides."""

    id: int
    name: str
    role: Role = "member"
    token_id: int | None = None
    token_name: str | None = None
    policy: Policy | None = None
    token_policy: Policy | None = None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token as listed (never its value): ``policy`` is the token's own."""

    id: int
    user_name: str
    created_at: datetime
    revoked_at: datetime | None
    name: str | None = None
    user_id: int | None = None
    policy: Policy | None = None


@dataclass(frozen=True, slots=True)
class UserListing:
    """A user as listed: ``policy`` is the user's own, None when the operator's default
    stands in for it."""

    id: int
    name: str
    role: Role
    created_at: datetime
    policy: Policy | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    user_id: int
    # Every field the store was given is a key, in its order; values are decrypted.
    values: dict[str, str | None] = field(default_factory=dict, repr=False)
    use_azure_openai: bool = False

    def get(self, name: str) -> str | None:
        return self.values.get(name) or None


@dataclass(frozen=True, slots=True)
class CustomModel:
    id: int
    user_id: int
    name: str
    model_id: str
    base_url: str
    api_key: str = field(repr=False)  # decrypted
    context_length: int = 4096
    description: str = ""
