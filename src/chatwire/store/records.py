"""What the store hands out: plain, immutable records with keys already decrypted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# chatbot-ui's profile key columns, in its order; all nullable text of at most 1000 chars.
PROFILE_TEXT_FIELDS: tuple[str, ...] = (
    "openai_api_key",
    "openai_organization_id",
    "anthropic_api_key",
    "google_gemini_api_key",
    "mistral_api_key",
    "groq_api_key",
    "perplexity_api_key",
    "openrouter_api_key",
    "azure_openai_api_key",
    "azure_openai_endpoint",
    "azure_openai_35_turbo_id",
    "azure_openai_45_turbo_id",
    "azure_openai_45_vision_id",
    "azure_openai_embeddings_id",
)
# Fields encrypted at rest and masked when read back.
SECRET_FIELDS: frozenset[str] = frozenset(f for f in PROFILE_TEXT_FIELDS if f.endswith("_api_key"))
MAX_FIELD_LENGTH = 1000


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
    # Every name of PROFILE_TEXT_FIELDS is a key; secrets are decrypted.
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
