"""What the store hands out, plain immutable records with keys already decrypted, and how it
is told which credential fields exist (``CredentialField``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

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


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: int
    user_name: str
    created_at: datetime
    revoked_at: datetime | None


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
