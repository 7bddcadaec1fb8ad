"""Settings: the only place configuration is read from the environment.

Every chatwire setting carries the ``CHATWIRE_`` prefix and may also come from a ``.env``
file. The provider key overrides keep chatbot-ui's variable names (``MISTRAL_API_KEY``...)
so an existing chatbot-ui deployment's environment works unchanged; when set, they apply
to every user.
"""

from __future__ import annotations

import os
from pathlib import Path

import pydantic_core
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where a ``chatwire serve --workers N`` process leaves its settings for its workers.
_FOR_WORKERS = "_CHATWIRE_WORKER_SETTINGS"


def _env(name: str) -> AliasChoices:
    # Provider overrides are read without the CHATWIRE_ prefix, as chatbot-ui named them.
    return AliasChoices(name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHATWIRE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    data_dir: Path = Path(".chatwire")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    secret_key: SecretStr | None = None
    log_level: str = "info"
    # On SIGTERM / SIGINT: stop accepting, let chats in flight finish for this many seconds,
    # then cancel the rest (their upstream requests with them).
    shutdown_grace: float = Field(default=30.0, ge=0)
    access_log: bool = False
    # Seconds an idle client connection is kept open. Behind a load balancer, set it above
    # the balancer's own idle timeout, so the server never closes a connection under it.
    keep_alive: float = Field(default=5.0, gt=0)

    # Every provider's API base, so tests and self-hosted deployments can point elsewhere.
    mistral_base_url: str = "https://api.mistral.ai/v1"
    openai_base_url: str = "https://api.openai.com/v1"
    anthropic_base_url: str = "https://api.anthropic.com/v1"
    google_base_url: str = "https://generativelanguage.googleapis.com/v1beta"
    groq_base_url: str = "https://api.groq.com/openai/v1"
    perplexity_base_url: str = "https://api.perplexity.ai"
    openrouter_base_url: str = "https://openrouter.ai/api/v1"
    ollama_base_url: str = "http://127.0.0.1:11434"
    azure_api_version: str = "2024-10-21"
    anthropic_version: str = "2023-06-01"
    models_file: Path | None = None

    # Upstream timeouts, in seconds.
    connect_timeout: float = Field(default=10.0, gt=0)
    first_byte_timeout: float = Field(default=60.0, gt=0)
    idle_timeout: float = Field(default=60.0, gt=0)
    # Upstream 429 / 5xx / connection failures before the reply started: tries again, with
    # exponential backoff and jitter from retry_backoff seconds, honouring Retry-After up
    # to retry_max_wait seconds (a longer wait goes back to the client as it came).
    upstream_retries: int = Field(default=2, ge=0, le=10)
    retry_backoff: float = Field(default=0.5, ge=0)
    retry_max_wait: float = Field(default=10.0, ge=0)

    # How long a token's user and a user's profile are reused before being read again.
    # A key stored by another process takes effect after at most this long.
    cache_ttl: float = Field(default=1.0, ge=0)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    # Chat requests one process handles at once, and one user at once (0: no cap). Past
    # them: 503 / 429 with Retry-After, so memory stays bounded under any load.
    max_streams: int = Field(default=16_384, ge=0)
    max_streams_per_user: int = Field(default=512, ge=0)
    # Bytes of request bodies the chats of one process may hold at once (0: no cap); past
    # it a 503 with Retry-After.
    body_memory: int = Field(default=256 * 2**20, ge=0)
    # /v1: drop parameters a provider cannot take instead of answering 400.
    drop_params: bool = False
    # Browser origins allowed to call chatwire (comma-separated, e.g. the chat UI's own
    # origin); none by default: no CORS headers at all.
    cors_origins: str = ""
    # A bearer token of the operator's own for /metrics and the API docs (/docs, /redoc,
    # /openapi.json); unset or empty, they are open to anyone who can reach the port.
    metrics_token: SecretStr | None = None

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    # chatbot-ui's environment overrides: one value for every user.
    openai_api_key: SecretStr | None = Field(default=None, validation_alias=_env("OPENAI_API_KEY"))
    openai_organization_id: str | None = Field(
        default=None, validation_alias=_env("OPENAI_ORGANIZATION_ID")
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("ANTHROPIC_API_KEY")
    )
    google_gemini_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("GOOGLE_GEMINI_API_KEY")
    )
    mistral_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("MISTRAL_API_KEY")
    )
    groq_api_key: SecretStr | None = Field(default=None, validation_alias=_env("GROQ_API_KEY"))
    perplexity_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("PERPLEXITY_API_KEY")
    )
    openrouter_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("OPENROUTER_API_KEY")
    )
    azure_openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("AZURE_OPENAI_API_KEY")
    )
    azure_openai_endpoint: str | None = Field(
        default=None, validation_alias=_env("AZURE_OPENAI_ENDPOINT")
    )
    azure_gpt_35_turbo_name: str | None = Field(
        default=None, validation_alias=_env("AZURE_GPT_35_TURBO_NAME")
    )
    azure_gpt_45_turbo_name: str | None = Field(
        default=None, validation_alias=_env("AZURE_GPT_45_TURBO_NAME")
    )
    azure_gpt_45_vision_name: str | None = Field(
        default=None, validation_alias=_env("AZURE_GPT_45_VISION_NAME")
    )
    azure_embeddings_name: str | None = Field(
        default=None, validation_alias=_env("AZURE_EMBEDDINGS_NAME")
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'chatwire.db').resolve()}"

    def env_value(self, field: str) -> str | None:
        """The environment override for a profile field, or None when unset or empty."""
        value = getattr(self, field, None)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return value or None

    def pass_to_workers(self) -> None:
        """Leave these exact values in the environment for the worker processes started
        after this (``from_parent``): a worker is a fresh interpreter, which would otherwise
        rebuild its settings from the environment and ./.env alone, losing whatever was
        given in code or read from another file. Secrets included: a process's environment
        is readable by its own user (and root) only, like the files they came from."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        revealed = {
            name: value.get_secret_value() if isinstance(value, SecretStr) else value
            for name, value in values.items()
        }
        os.environ[_FOR_WORKERS] = pydantic_core.to_json(revealed).decode()

    @classmethod
    def from_parent(cls) -> Settings:
        """The settings a ``chatwire serve`` process passed to its workers."""
        passed = os.environ.get(_FOR_WORKERS)
        if passed is None:
            raise RuntimeError(
                "no settings from a parent process: start workers with chatwire serve"
            )
        return cls.model_validate_json(passed)
