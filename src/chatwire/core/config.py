"""Settings: the only place configuration is read from the environment.

Every chatwire setting carries the ``CHATWIRE_`` prefix and may also come from a ``.env``
file. A provider's settings are named by its declaration (``providers.declaration``) and read
with ``Settings.lookup``: its base URL (``CHATWIRE_MISTRAL_BASE_URL``) and the operator's
overrides of its credentials, under chatbot-ui's variable names (``MISTRAL_API_KEY``...) so an
existing chatbot-ui deployment's environment works unchanged; when set, they apply to every
user.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pydantic_core
from dotenv import dotenv_values
from pydantic import Field, PrivateAttr, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where a ``chatwire serve --workers N`` process leaves its settings for its workers.
_FOR_WORKERS = "_CHATWIRE_WORKER_SETTINGS"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHATWIRE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    _given: dict[str, str | None] = PrivateAttr(default_factory=dict)
    _env_file: object = PrivateAttr(default=None)

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
    # Seconds a client has to send a whole request head, from its first byte (or from the
    # connection's start, for the first one), and then its whole body; past them a 408 and
    # the connection closed. A real client sends its head at once; the body's limit asks
    # about 1.4 Mbit/s of a maximal 10 MiB body (a proxy that buffers bodies, as nginx does
    # by default, sends it faster).
    head_timeout: float = Field(default=20.0, gt=0)
    body_timeout: float = Field(default=60.0, gt=0)
    # Connections one client address may hold open at once (0: no cap); past it a new one
    # is closed at once. Behind a reverse proxy every connection comes from the proxy.
    max_connections_per_client: int = Field(default=256, ge=0)

    models_file: Path | None = None
    # A JSON price table (the shape of chatwire's prices.json) whose models replace the
    # shipped prices of the same models: added models, negotiated prices, price changes.
    prices_file: Path | None = None

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

    # Where base URLs and endpoints set by users (custom models, a user's Azure endpoint) may
    # lead: public addresses, plus what ALLOW names, less what DENY names (comma-separated
    # CIDRs, addresses and host names). Loopback and private ranges only when named.
    upstream_allow: str = ""
    upstream_deny: str = ""
    # Tell users what a user-set upstream's errors say (its message, the kind of connection
    # failure), as for the operator's providers; off, only the status: such an upstream may
    # be an internal service, whose pages and open ports are no business of a user's.
    upstream_error_detail: bool = False
    # Seconds the database gets to connect, to run one statement, to give a pooled
    # connection, and (SQLite) for another writer's lock to go; past it a 503.
    db_timeout: float = Field(default=5.0, gt=0)
    # Token lookups one process lets wait on the database at once (0: no cap); past it a
    # 503, so requests with random tokens cannot pile up behind a slow database.
    db_max_waiting: int = Field(default=256, ge=0)
    # Failed bearer tokens one client address may send a minute (a bucket of this many,
    # refilled evenly); past it a 429 before any database lookup (0: no limit).
    auth_failures_per_minute: int = Field(default=20, ge=0)
    # One chat's reply: bytes read from the upstream, and seconds from the upstream request
    # to the reply's end (0: no cap); past either, the reply is cut (or, before it started,
    # 502 / 504).
    max_reply_bytes: int = Field(default=128 * 2**20, ge=0)
    max_chat_seconds: float = Field(default=1800.0, ge=0)
    # Seconds a chat's place in the limits (a lease) is held past CHATWIRE_MAX_CHAT_SECONDS
    # (a day with no cap) before it ends by itself: the bound on what a killed process's
    # chats keep taken.
    lease_grace: float = Field(default=60.0, ge=1)
    # Custom models one user may have (0: no cap); past it a 409.
    max_custom_models: int = Field(default=100, ge=0)
    # The web pages: how long a browser stays signed in, and the chats one user may keep
    # (0: no cap; past it a 409).
    session_days: float = Field(default=30.0, gt=0)
    max_chats: int = Field(default=1000, ge=0)

    # How long a token's user and a user's profile are reused before being read again.
    # A key stored by another process takes effect after at most this long.
    cache_ttl: float = Field(default=1.0, ge=0)
    # With Redis: how long they are reused while this process hears the changes channel,
    # which drops them the moment anything changes; while it does not hear it, at most
    # cache_ttl again (services.Services.expire_unheard).
    redis_cache_ttl: float = Field(default=60.0, ge=0)
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
    # Model names that stand for another wherever a model is named alone: a JSON object
    # ({"claude-sonnet-4-5": "mistral/mistral-large-latest"}) or name=provider/model pairs
    # separated by commas. For clients that insist on a model name of their own.
    model_aliases: str = ""
    # Days a stored Responses API reply is kept for previous_response_id and its GET routes
    # (0: until deleted); older ones are deleted in the background.
    responses_retention_days: float = Field(default=30, ge=0)
    # Whole UTC days the usage ledger keeps one row per chat (0: for ever); every row is
    # summed by day, user, token and model into usage_daily in the background, and the
    # older ones are then deleted.
    usage_retention_days: float = Field(default=90, ge=0)
    # Browser origins allowed to call chatwire (comma-separated, e.g. the chat UI's own
    # origin); none by default: no CORS headers at all.
    cors_origins: str = ""
    # A bearer token of the operator's own for /metrics and the API docs (/docs, /redoc,
    # /openapi.json); unset or empty, they are open to anyone who can reach the port.
    metrics_token: SecretStr | None = None

    # Routing (chatwire.routing): model groups, each one public name for several
    # deployments (TOML, or YAML with a .yaml/.yml name); checked at startup. route_cooldown:
    # seconds a failed deployment is skipped when its upstream gave no Retry-After.
    # route_attempts: deployments one chat may try before it answers the last failure.
    routes_file: Path | None = None
    route_cooldown: float = Field(default=30.0, ge=0)
    route_attempts: int = Field(default=3, ge=1)

    # The team layer. Redis (redis://host:port/db): every limit, reservation and per-user
    # chat count shared by every process using it, and changes (a revoked token, a changed
    # policy or key) told to all of them at once; unset, each process counts on its own.
    # Keys start with redis_prefix. redis_failure: what a chat with limits gets while Redis
    # does not answer: "open", counted in each process's memory; "closed", a 503.
    # redis_timeout: seconds one Redis call may take (a chat waits no longer for it).
    redis_url: SecretStr | None = None
    redis_prefix: str = "chatwire:"
    redis_failure: Literal["open", "closed"] = "open"
    redis_timeout: float = Field(default=1.0, gt=0)

    @field_validator("model_aliases")
    @classmethod
    def _aliases_readable(cls, value: str) -> str:
        parse_aliases(value)
        return value

    @property
    def alias_map(self) -> dict[str, str]:
        """``model_aliases`` read: alias -> the model name it stands for."""
        return parse_aliases(self.model_aliases)

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'chatwire.db').resolve()}"

    def lookup(self, variable: str) -> str | None:
        """A provider's setting by its environment variable (``CHATWIRE_MISTRAL_BASE_URL``,
        ``MISTRAL_API_KEY``), or None when unset or empty.

        Providers are declared as data (``providers.declaration``), so their settings are not
        fields here: they are read from what was given to ``Settings(...)`` by the variable's
        lower-case name without the ``CHATWIRE_`` prefix (``mistral_base_url=...``, where None
        means unset), else the environment, else the ``.env`` file.
        """
        given = self._given
        name = variable.lower().removeprefix("chatwire_")
        if name in given:
            return given[name] or None
        value = os.environ.get(variable)
        if value is None:
            value = _dotenv(self._env_file or self.model_config.get("env_file")).get(variable)
        return value or None

    def __init__(self, **values: Any) -> None:
        # Values given for provider settings are kept apart from the model's fields (and out
        # of its repr: they may be keys).
        known = type(self).model_fields
        given = {
            name: None if value is None else _plain(value)
            for name, value in values.items()
            if name not in known and not name.startswith("_")
        }
        super().__init__(**{name: v for name, v in values.items() if name not in given})
        self._given = given
        # The env file these settings were read from (``_env_file``, ``chatwire --env-file``).
        self._env_file = values.get("_env_file")

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
        # The providers' settings too (``lookup``), as the parent finds them, so a worker
        # needs neither this environment nor its env file.
        from chatwire.providers.registry import setting_variables

        for variable in setting_variables():
            value = self.lookup(variable)
            if value is not None:
                revealed[variable.lower().removeprefix("chatwire_")] = value
        revealed.update(self._given)
        os.environ[_FOR_WORKERS] = pydantic_core.to_json(revealed).decode()

    @classmethod
    def from_parent(cls) -> Settings:
        """The settings a ``chatwire serve`` process passed to its workers."""
        passed = os.environ.get(_FOR_WORKERS)
        if passed is None:
            raise RuntimeError(
                "no settings from a parent process: start workers with chatwire serve"
            )
        values = pydantic_core.from_json(passed)
        return cls(**values)


def parse_aliases(value: str) -> dict[str, str]:
    """``CHATWIRE_MODEL_ALIASES``: a JSON object of names, or ``name=model`` pairs separated
    by commas; a ValueError saying what is wrong."""
    text = value.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            parsed = pydantic_core.from_json(text)
        except ValueError as exc:
            raise ValueError(f"CHATWIRE_MODEL_ALIASES is not valid JSON: {exc}") from None
        pairs = list(parsed.items()) if isinstance(parsed, dict) else []
        if not isinstance(parsed, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in pairs
        ):
            raise ValueError("CHATWIRE_MODEL_ALIASES must map names to model names (strings)")
    else:
        pairs = []
        for item in text.split(","):
            if not item.strip():
                continue
            alias, equals, target = item.partition("=")
            if not equals:
                raise ValueError(
                    f"CHATWIRE_MODEL_ALIASES: {item.strip()!r} is not name=provider/model"
                )
            pairs.append((alias, target))
    aliases = {alias.strip(): target.strip() for alias, target in pairs}
    if any(not alias or not target for alias, target in aliases.items()):
        raise ValueError("CHATWIRE_MODEL_ALIASES: an alias and its model must both be named")
    return aliases


def _plain(value: object) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


@cache
def _dotenv(path: object) -> dict[str, str | None]:
    if not isinstance(path, str | Path) or not Path(path).is_file():
        return {}
    return dotenv_values(path)
