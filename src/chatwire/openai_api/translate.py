"""What every translated wire family (Anthropic, Gemini, Ollama) shares on /v1.

A ``Translation`` turns the client's OpenAI request into the provider's own call and reads
the provider's stream back as chunks. Each family lives in its own module; the route picks
one by the provider's wire adapter.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from chatwire.api.schemas import ChatRequest, ChatSettings, Message
from chatwire.errors import RequestInvalid
from chatwire.openai_api.params import OWN_FIELDS

if TYPE_CHECKING:
    from chatwire.catalogue import ModelEntry
    from chatwire.openai_api.chunks import ChunkReader
    from chatwire.providers.base import Provider, Target, UpstreamCall

# What every translated family takes; a family module adds what it translates besides.
BASE_FIELDS = OWN_FIELDS | {"temperature", "max_tokens", "max_completion_tokens", "n"}


class Translation(Protocol):
    def build(
        self,
        provider: Provider,
        target: Target,
        fields: dict[str, Any],
        limits: ModelEntry | None,
        drop: bool,
    ) -> UpstreamCall:
        """The provider's streamed call for the client's request (``fields``, as sent)."""
        ...

    def reader(self) -> ChunkReader:
        """A fresh reader for one reply."""
        ...


def check_fields(
    label: str, fields: Mapping[str, Any], accepted: Collection[str], drop: bool
) -> None:
    """A 400 naming every given field the family cannot take, unless the operator drops them."""
    given = {name for name, value in fields.items() if value is not None}
    unsupported = sorted(given - set(accepted))
    if fields.get("n") not in (None, 1):
        unsupported.append("n > 1")
    if unsupported and not drop:
        raise RequestInvalid(
            f"{label} does not take {', '.join(repr(n) for n in unsupported)} through "
            "chatwire's /v1; leave them out (or have the operator set CHATWIRE_DROP_PARAMS=true)."
        )


def chat_request(label: str, model: str, fields: Mapping[str, Any]) -> ChatRequest:
    """The request as chatwire's own structs, for the adapters that rebuild messages.
    OpenAI's ``developer`` role (what newer clients send for instructions) is a system
    message to every provider that has no such role."""
    sent = fields["messages"]
    if isinstance(sent, list):
        sent = [
            {**m, "role": "system"} if isinstance(m, dict) and m.get("role") == "developer" else m
            for m in sent
        ]
    try:
        messages = msgspec.convert(sent, list[Message])
    except msgspec.ValidationError as exc:
        raise RequestInvalid(f"Invalid messages for {label}: {exc}") from exc
    settings = ChatSettings(model=model, temperature=fields.get("temperature"))
    return ChatRequest(chatSettings=settings, messages=messages)


def with_budget(target: Target, fields: Mapping[str, Any]) -> Target:
    """The client's reply budget (max_completion_tokens, else max_tokens) wins."""
    budget = fields.get("max_completion_tokens") or fields.get("max_tokens")
    if isinstance(budget, int) and not isinstance(budget, bool) and budget > 0:
        return replace(target, max_tokens=budget)
    return target


def call_arguments(where: str, function: Mapping[str, Any]) -> dict[str, Any]:
    """A tool call's arguments, JSON text as OpenAI's clients send them back, as the object the
    translated families want; none (or an empty string) is no arguments."""
    arguments = function.get("arguments")
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    if isinstance(arguments, str):
        try:
            arguments = msgspec.json.decode(arguments)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise RequestInvalid(
                f"{where}.function.arguments is not valid JSON ({exc}); send the arguments back "
                "as the model gave them, a JSON object as text."
            ) from exc
    if not isinstance(arguments, dict):
        raise RequestInvalid(
            f"{where}.function.arguments must be a JSON object (as text), as the model gave it."
        )
    return arguments


def number(fields: Mapping[str, Any], name: str) -> float | None:
    """A numeric parameter as sent, or None; a 400 when it is not a number."""
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestInvalid(f"'{name}' must be a number, not {value!r:.50}.")
    return value


def stop_sequences(fields: Mapping[str, Any]) -> list[str] | None:
    """``stop`` as a list of strings, or None when there is none."""
    stop = fields.get("stop")
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return stop or None
    if stop is not None:
        raise RequestInvalid("'stop' must be a string or a list of strings.")
    return None
