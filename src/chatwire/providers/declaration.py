"""What a provider is: one declaration, data only.

A ``Provider`` names everything chatwire needs to serve one upstream: its label in messages,
the wire family that speaks its API, its default base URL (``CHATWIRE_<NAME>_BASE_URL``
overrides it), the values a user stores for it (``Credential``: chatbot-ui's profile field
names, the operator's environment variables), how the key travels, and its ``Rules``: what
it renames, refuses or needs, as data. Built-in providers are declared in
``providers.builtin`` and registered through the ``chatwire.providers`` entry point group,
the same way an outside package registers its own (``providers.registry``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatwire.families.base import Embeddings, Family

_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


@dataclass(frozen=True, slots=True)
class Credential:
    """One value a user stores for a provider, or the operator sets for every user."""

    # chatbot-ui's profile field name (``mistral_api_key``), also the name in /api/profile.
    field: str
    # The operator's environment variable, chatbot-ui's name (``MISTRAL_API_KEY``): when set,
    # it overrides every user's value. Its lower-case name is the key in GET /api/keys.
    env: str | None = None
    # Masked whenever it is read back.
    secret: bool = True
    # Checked as an http(s) base URL when stored.
    url: bool = False


@dataclass(frozen=True, slots=True)
class Rules:
    """How one provider takes a chat: what chatwire sends it, renames, refuses or adds.

    chatbot-ui's chat settings (its own route): ``send_temperature`` sends the chat's
    temperature (clamped to the model's range), ``send_max_tokens`` the model's max output
    from the catalogue. OpenAI's parameters (every dialect): renamed (``rename``), refused
    with a 400 naming them (``refuse``; dropped instead with ``CHATWIRE_DROP_PARAMS``), or
    passed on as given.
    """

    send_temperature: bool = True
    send_max_tokens: bool = True
    rename: Mapping[str, str] = field(default_factory=dict)
    refuse: frozenset[str] = frozenset()
    # Upstream reports usage in a stream only when asked (OpenAI's stream_options).
    ask_for_usage: bool = False
    # Only one choice per request (n > 1 refused).
    one_choice: bool = False
    # Roles the provider calls otherwise (OpenAI's newer "developer" is a system message).
    roles: Mapping[str, str] = field(default_factory=dict)
    # The fields each role's messages may carry; None: any. A field outside them with a
    # value is refused (or dropped); one sent as null is simply left out.
    message_fields: Mapping[str, frozenset[str]] | None = None
    # Message fields refused whatever the role.
    refuse_in_messages: frozenset[str] = frozenset()
    # Tool call ids must match this; others are mapped, the same id always to the same one.
    call_id: re.Pattern[str] | None = None

    # Whether the rules change messages at all (computed once: it is asked on every chat).
    changes_messages: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        changes = bool(self.roles or self.message_fields or self.refuse_in_messages or self.call_id)
        object.__setattr__(self, "changes_messages", changes)


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    label: str
    family: Family
    base_url: str = ""
    credentials: tuple[Credential, ...] = ()
    # The credential field holding the key; None for providers without keys (Ollama).
    key: str | None = None
    # How the key is sent: "bearer", or the name of the header that carries it.
    auth: str = "bearer"
    # Extra headers taken from credential fields, e.g. OpenAI-Organization.
    headers: Mapping[str, str] = field(default_factory=dict)
    rules: Rules = field(default_factory=Rules)
    # How a chat finds its upstream: "key" (the base URL and the key), "azure" (the user's
    # endpoint and the model's deployment), "custom" (the user's own model record).
    target: str = "key"
    # Models served through a per-user deployment id: model -> credential field (Azure).
    deployments: Mapping[str, str] = field(default_factory=dict)
    # Options of the family with their defaults, each overridden by CHATWIRE_<NAME>_<OPTION>
    # (Anthropic's API version, Azure's api-version).
    options: Mapping[str, str] = field(default_factory=dict)
    # The embeddings half of its family's wire format (POST /v1/embeddings), for a provider
    # that embeds text; None for one that does not.
    embeddings: Embeddings | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(
                f"provider name {self.name!r}: lower-case letters, digits and '_', "
                "starting with a letter"
            )
        fields = {c.field for c in self.credentials}
        for needed in [self.key, *self.headers.values(), *self.deployments.values()]:
            if needed is not None and needed not in fields:
                raise ValueError(f"provider {self.name}: {needed!r} is not one of its credentials")

    @property
    def base_url_setting(self) -> str:
        return f"CHATWIRE_{self.name.upper()}_BASE_URL"

    def option_setting(self, option: str) -> str:
        return f"CHATWIRE_{self.name.upper()}_{option.upper()}"

    @property
    def uses_custom_models(self) -> bool:
        return self.target == "custom"

    def key_missing_message(self) -> str:
        return f"{self.label} API Key not found. Please set it in your profile settings."

    def key_invalid_message(self) -> str:
        if self.uses_custom_models:
            return (
                "The custom model's server refused its API key. "
                "Please fix the key in the custom model's settings."
            )
        if self.key is None:
            return f"{self.label} refused the request as unauthorized: check its authentication."
        return f"{self.label} API Key is incorrect. Please fix it in your profile settings."

    def auth_headers(self, key: str) -> dict[str, str]:
        if not key:
            return {}
        if self.auth == "bearer":
            return {"Authorization": f"Bearer {key}"}
        return {self.auth: key}


def openai_compatible(
    name: str,
    label: str,
    base_url: str,
    *,
    env: str | None = None,
    rules: Rules | None = None,
    credentials: tuple[Credential, ...] = (),
    headers: Mapping[str, str] | None = None,
    embeddings: Embeddings | None = None,
) -> Provider:
    """The usual provider: an OpenAI-compatible API behind a bearer key, stored as
    ``<name>_api_key`` and overridden by ``env`` (default ``<NAME>_API_KEY``)."""
    from chatwire.families.openai import OPENAI_FAMILY

    key = f"{name}_api_key"
    return Provider(
        name=name,
        label=label,
        family=OPENAI_FAMILY,
        base_url=base_url,
        credentials=(Credential(key, env or f"{name.upper()}_API_KEY"), *credentials),
        key=key,
        headers=headers or {},
        rules=rules or Rules(),
        embeddings=embeddings,
    )
