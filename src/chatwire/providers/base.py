"""What a provider is, and the one place upstream failures become chatwire errors.

A ``Provider`` is a declaration: its name, the label used in messages, where its key
lives, its base URL, how it authenticates, the wire adapter that speaks its format, and
its quirks as data. A ``WireAdapter`` knows one wire format: how to build the upstream
request, how to decode the upstream's stream into reply text, and which error answers
mean the key was refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import aiohttp

from chatwire.errors import (
    UpstreamError,
    UpstreamKeyInvalid,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from chatwire.providers.error_text import readable_message

if TYPE_CHECKING:
    from chatwire.api.schemas import ChatRequest
    from chatwire.catalogue import ModelEntry
    from chatwire.providers.lines import LineDecoder
    from chatwire.store.records import CustomModel


@dataclass(frozen=True, slots=True)
class Quirks:
    # Send chatSettings.temperature, clamped to the model's range from the catalogue.
    send_temperature: bool = True
    # Send the model's max output from the catalogue (Anthropic requires one).
    send_max_tokens: bool = True
    # Azure: chatbot-ui model name -> profile field holding that model's deployment id.
    deployments: Mapping[str, str] = field(default_factory=dict)
    # Azure: the api-version query parameter.
    api_version: str = ""


@dataclass(frozen=True, slots=True)
class Target:
    """Where one chat goes, resolved from the provider, the caller's profile and the request."""

    base_url: str
    key: str = field(repr=False)
    model: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    query: str = ""
    max_tokens: int | None = None  # overrides the catalogue (custom models)


# Headers that carry a provider key, in any of the providers' styles.
_KEY_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "x-goog-api-key"})


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    url: str
    headers: Mapping[str, str] = field(repr=False)  # carries the key
    body: bytes = field(repr=False)

    def secrets(self) -> list[str]:
        """The key (and any other credential) this call sends, to keep out of messages."""
        found: list[str] = []
        for name, value in self.headers.items():
            if name.lower() in _KEY_HEADERS:
                found += [part for part in value.split() if len(part) >= 8]
        return found


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` without any of ``secrets``: a provider may quote the key it was sent in an
    error, and an operator's key must not reach a user (or the logs) that way."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return text


class StreamFailed(Exception):
    """The upstream stream broke: malformed data, an error event, or no proper end."""


class Fields(Protocol):
    """The caller's profile with the operator's environment overrides applied."""

    def get(self, name: str) -> str | None: ...

    def from_operator(self, name: str) -> bool:
        """Whether the field's value is the operator's, from the environment."""
        ...


class WireAdapter(Protocol):
    def build(
        self, provider: Provider, target: Target, request: ChatRequest, limits: ModelEntry | None
    ) -> UpstreamCall: ...

    def decoder(self, provider: Provider) -> LineDecoder:
        """A fresh decoder for one reply's body."""
        ...

    def key_rejected(self, status: int, body: bytes) -> bool:
        """Whether an error answer means the provider refused the key."""
        ...


Resolver = Callable[["Provider", Fields, "ChatRequest", "CustomModel | None"], Target]


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    label: str
    base_url: str
    adapter: WireAdapter
    resolve: Resolver
    # The profile field holding the key, or None for providers without keys (Ollama).
    key_field: str | None = None
    # How the key is sent: "bearer", or the name of the header that carries it.
    auth: str = "bearer"
    # Extra headers taken from profile fields, e.g. OpenAI-Organization.
    header_fields: Mapping[str, str] = field(default_factory=dict)
    quirks: Quirks = field(default_factory=Quirks)
    # The custom route picks a per-user record by customModelId.
    uses_custom_models: bool = False

    def key_missing_message(self) -> str:
        return f"{self.label} API Key not found. Please set it in your profile settings."

    def key_invalid_message(self) -> str:
        if self.uses_custom_models:
            return (
                "The custom model's server refused its API key. "
                "Please fix the key in the custom model's settings."
            )
        if self.key_field is None:
            return f"{self.label} refused the request as unauthorized: check its authentication."
        return f"{self.label} API Key is incorrect. Please fix it in your profile settings."

    def auth_headers(self, key: str) -> dict[str, str]:
        if not key:
            return {}
        if self.auth == "bearer":
            return {"Authorization": f"Bearer {key}"}
        return {self.auth: key}

    def error_for_status(
        self,
        status: int,
        reason: str,
        retry_after: str | None,
        body: bytes,
        secrets: Sequence[str] = (),
    ) -> UpstreamError:
        """Map an upstream error response to the most specific error, by status and by the
        adapter's structured reading of the body; never by matching message wording."""
        if status == 401 or self.adapter.key_rejected(status, body):
            return UpstreamKeyInvalid(self.key_invalid_message())
        text = readable_message(body) or f"{reason or 'error'} (no readable message)"
        text = redact(text, secrets)
        return UpstreamError(
            f"{self.label} answered {status}: {text}",
            status=status if 400 <= status <= 599 else 502,
            retry_after=retry_after if status in (429, 503, 529) else None,
        )

    def transport_error(
        self, exc: BaseException, phase: str, timeouts: Timeouts, secrets: Sequence[str] = ()
    ) -> UpstreamError:
        """Map an aiohttp/OS failure, to the most specific chatwire error."""
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return UpstreamTimeout(
                f"{self.label} could not be reached within {timeouts.connect:g} s "
                "(CHATWIRE_CONNECT_TIMEOUT). Try again later."
            )
        if isinstance(exc, (aiohttp.SocketTimeoutError, asyncio.TimeoutError)):
            if phase == "first_byte":
                return UpstreamTimeout(
                    f"{self.label} did not start answering within {timeouts.first_byte:g} s "
                    "(CHATWIRE_FIRST_BYTE_TIMEOUT). Try again later."
                )
            return UpstreamTimeout(
                f"{self.label} stopped sending for {timeouts.idle:g} s "
                "(CHATWIRE_IDLE_TIMEOUT). Try again later."
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            reason = exc.os_error.strerror or "connection failed"
            return UpstreamUnreachable(f"Could not connect to {self.label}: {reason}.")
        if isinstance(exc, StreamFailed):
            return UpstreamUnreachable(
                f"{self.label} sent a broken reply: {redact(str(exc), secrets)}"
            )
        if isinstance(exc, aiohttp.InvalidURL):
            return UpstreamUnreachable(f"The {self.label} URL is not valid; check its base URL.")
        return UpstreamUnreachable(
            f"The connection to {self.label} failed ({type(exc).__name__}). Try again later."
        )


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long chatwire waits on an upstream, and how often it asks again before answering.

    A refusal that may pass (429, 5xx) or a connection that could not be made is tried again
    up to ``retries`` times, after ``backoff * 2**attempt`` seconds with full jitter, or after
    the upstream's own Retry-After; never once a byte of the reply has gone to the client,
    and not when the upstream asks for a longer wait than ``max_wait``.
    """

    connect: float
    first_byte: float
    idle: float
    retries: int = 0
    backoff: float = 0.5
    max_wait: float = 10.0
