"""What a provider is, and the one place transport failures become chatwire errors.

A ``Provider`` is a declaration: its name, the label used in messages, where its key
lives, its base URL, the wire adapter that speaks its format, and its quirks as data.
A ``WireAdapter`` knows one wire format: how to build the upstream request and how to
decode the upstream's stream into reply text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import aiohttp

from chatwire.errors import (
    UpstreamError,
    UpstreamKeyInvalid,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from chatwire.providers.messages import readable_message

if TYPE_CHECKING:
    from chatwire.api.schemas import ChatRequest
    from chatwire.catalogue import ModelEntry
    from chatwire.providers.lines import LineDecoder


@dataclass(frozen=True, slots=True)
class Quirks:
    # chatbot-ui dropped temperature for some providers; we send it, clamped to the table.
    send_temperature: bool = True
    # Send the model's max output from the catalogue as max_tokens.
    send_max_tokens: bool = True


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    url: str
    headers: Mapping[str, str]
    body: bytes


class StreamFailed(Exception):
    """The upstream stream broke: malformed data, an error event, or no proper end."""


class WireAdapter(Protocol):
    def build(
        self, provider: Provider, request: ChatRequest, key: str, limits: ModelEntry | None
    ) -> UpstreamCall: ...

    def decoder(self, provider: Provider) -> LineDecoder:
        """A fresh decoder for one reply's body."""
        ...


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    label: str
    key_field: str
    env_var: str
    base_url: str
    adapter: WireAdapter
    quirks: Quirks = field(default_factory=Quirks)
    # The operator's key from the environment, which overrides every user's stored key.
    env_key: str | None = None

    def key_missing_message(self) -> str:
        return f"{self.label} API Key not found. Please set it in your profile settings."

    def error_for_status(
        self, status: int, reason: str, retry_after: str | None, body: bytes
    ) -> UpstreamError:
        """Map an upstream error response, by status, to the most specific error."""
        if status == 401:
            return UpstreamKeyInvalid(
                f"{self.label} API Key is incorrect. Please fix it in your profile settings."
            )
        text = readable_message(body) or f"{reason or 'error'} (no readable message)"
        return UpstreamError(
            f"{self.label} answered {status}: {text}",
            status=status if 400 <= status <= 599 else 502,
            retry_after=retry_after if status in (429, 503) else None,
        )

    def transport_error(self, exc: BaseException, phase: str, timeouts: Timeouts) -> UpstreamError:
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
            return UpstreamUnreachable(f"{self.label} sent a broken reply: {exc}")
        return UpstreamUnreachable(
            f"The connection to {self.label} failed ({type(exc).__name__}). Try again later."
        )


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float
    first_byte: float
    idle: float
