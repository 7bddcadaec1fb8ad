"""The OpenAI-compatible family: ``POST {base}/chat/completions``, data-only server-sent events.

Mistral speaks it, and so do most providers. The call is the client's own request, by the
provider's ``Rules``: parameters renamed where the provider calls them otherwise, refused with
a 400 naming them where it cannot take them (or dropped, when the operator sets
``CHATWIRE_DROP_PARAMS``), passed on as given otherwise; messages changed only where the rules
say (roles, fields, tool call ids). chatbot-ui's typed messages go as they are. Signed
reasoning on an assistant message (``reasoning_signature``, with its ``reasoning_content``,
and ``reasoning_redacted``) is Anthropic's, given back for Anthropic's models: it is left
out, as these providers have no use for it and some refuse fields they do not know.

The reply's readers are ``openai_reply``'s: the text reader decodes just each chunk's delta
text, finish reason and error (the chatbot-ui route's fast path); the delta reader passes
the chunks on, numbering Mistral's whole tool calls as OpenAI's clients gather them, and
gives /v1's streamed output each plain text delta as the provider's own bytes; a call not
streamed is answered with one ``chat.completion``, read whole. Embeddings (``OpenAIEmbeddings``):
``POST {base}/embeddings``, OpenAI's own shape both ways.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from chatwire.errors import RequestInvalid
from chatwire.families.base import CatalogueModels
from chatwire.families.openai_reply import Answer, Chunks, TextEvents
from chatwire.gateway.call import OWN_FIELDS
from chatwire.gateway.embedding_call import token_usage
from chatwire.gateway.lines import (
    DeltaReader,
    TextReader,
)
from chatwire.gateway.upstream import UpstreamCall

if TYPE_CHECKING:
    from chatwire.catalogue import ModelEntry
    from chatwire.gateway.call import ChatCall
    from chatwire.gateway.embedding_call import EmbeddingCall
    from chatwire.gateway.upstream import Target
    from chatwire.providers.declaration import Provider, Rules

_encode = msgspec.json.Encoder().encode


class OpenAIFamily(CatalogueModels):
    name = "openai"

    def build(
        self,
        provider: Provider,
        target: Target,
        call: ChatCall,
        entry: ModelEntry | None,
        drop: bool,
    ) -> UpstreamCall:
        rules, label = provider.rules, provider.label
        messages = call.messages
        if not call.typed:
            messages = _unsigned(messages)
            if rules.changes_messages:
                messages = [_message(rules, label, i, m, drop) for i, m in enumerate(messages)]
        payload: dict[str, Any] = {
            "model": target.model,
            "messages": messages,
            "stream": call.stream,
        }
        translate(rules, label, call.params, drop, payload)
        if call.stream and rules.ask_for_usage:
            payload["stream_options"] = {"include_usage": True}
        headers = {
            **provider.auth_headers(target.key),
            **target.headers,
            "Content-Type": "application/json",
        }
        if call.stream:
            headers["Accept"] = "text/event-stream"
        return UpstreamCall(
            url=f"{target.base_url}/chat/completions{target.query}",
            headers=headers,
            body=_encode(payload),
        )

    def text_reader(self, provider: Provider) -> TextReader:
        return TextEvents(provider.rules.ask_for_usage)

    def reader(self, provider: Provider, call: ChatCall) -> DeltaReader:
        if not call.stream:
            return Answer()
        return Chunks(keep_usage=not call.include_usage, usage_follows=provider.rules.ask_for_usage)

    def key_rejected(self, status: int, body: bytes) -> bool:
        return False  # 401 says it, for every OpenAI-compatible provider


def translate(
    rules: Rules,
    label: str,
    params: Mapping[str, Any],
    drop: bool,
    out: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The parameters to send, from the client's, by the provider's rules (into ``out``)."""
    out = {} if out is None else out
    for name, value in params.items():
        if name in OWN_FIELDS or value is None:
            continue
        if name in rules.refuse or (name == "n" and rules.one_choice and value != 1):
            if drop:
                continue
            raise _refused(label, name if name != "n" else "n > 1")
        out[rules.rename.get(name, name)] = value
    return out


_SIGNED = ("reasoning_content", "reasoning_signature", "reasoning_redacted")


def _signs(message: Any) -> bool:
    return isinstance(message, dict) and (
        "reasoning_signature" in message or "reasoning_redacted" in message
    )


def _unsigned(messages: list[Any]) -> list[Any]:
    """The messages without signed (or redacted) reasoning (the list as it is when none has
    any)."""
    if not any(_signs(m) for m in messages):
        return messages
    return [{k: v for k, v in m.items() if k not in _SIGNED} if _signs(m) else m for m in messages]


def _message(rules: Rules, label: str, index: int, message: Any, drop: bool) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise RequestInvalid(f"messages[{index}] is not an object.")
    role = message.get("role")
    allowed = None
    if isinstance(role, str):
        role = rules.roles.get(role, role)
        if rules.message_fields is not None:
            allowed = rules.message_fields.get(role)
    out: dict[str, Any] = {}
    for name, value in message.items():
        if name == "role":
            value = role
        elif value is None and allowed is not None and name not in allowed:
            continue
        elif name in rules.refuse_in_messages or (allowed is not None and name not in allowed):
            if drop:
                continue
            raise _refused(label, f"messages[{index}].{name}")
        out[name] = value
    if rules.call_id is not None:
        _map_call_ids(rules.call_id, out)
    return out


def _map_call_ids(pattern: re.Pattern[str], message: dict[str, Any]) -> None:
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        message["tool_calls"] = [
            {**call, "id": _call_id(pattern, call["id"])}
            if isinstance(call, dict) and isinstance(call.get("id"), str)
            else call
            for call in calls
        ]
    if isinstance(message.get("tool_call_id"), str):
        message["tool_call_id"] = _call_id(pattern, message["tool_call_id"])


_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _call_id(pattern: re.Pattern[str], call_id: str) -> str:
    """The id itself when the provider takes it; else nine letters and digits drawn from
    its hash, so a call and the tool result answering it map to the same id."""
    if pattern.fullmatch(call_id):
        return call_id
    number = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    letters = []
    for _ in range(9):
        number, digit = divmod(number, len(_ALPHABET))
        letters.append(_ALPHABET[digit])
    return "".join(letters)


def _refused(label: str, name: str) -> RequestInvalid:
    return RequestInvalid(
        f"{label} does not accept the parameter '{name}'; leave it out (or have the operator "
        "set CHATWIRE_DROP_PARAMS=true to drop such parameters)."
    )


class OpenAIEmbeddings:
    """Embeddings: ``POST {base}/embeddings`` (Azure's under the deployment, with its
    api-version), OpenAI's request as the client sent it, by the provider's rules (what they
    refuse is a 400 naming it); the answer's ``data`` in ``index`` order, and its usage.
    ``tokens``: whether the provider takes token arrays as input; ``rename``: its own names
    for OpenAI's ``encoding_format`` and ``dimensions``."""

    __slots__ = ("rename", "tokens")

    def __init__(self, *, tokens: bool = True, rename: Mapping[str, str] | None = None) -> None:
        self.tokens = tokens
        self.rename = dict(rename or {})

    def build(
        self, provider: Provider, target: Target, call: EmbeddingCall, drop: bool
    ) -> UpstreamCall:
        label = provider.label
        if call.texts is None and not self.tokens:
            raise RequestInvalid(
                f"{label} embeds text only: send 'input' as a string or a list of strings, "
                "not token arrays."
            )
        payload: dict[str, Any] = {"model": target.model, "input": call.input}
        translate(provider.rules, label, call.params, drop, payload)
        for name, value in (
            ("encoding_format", call.encoding_format),
            ("dimensions", call.dimensions),
        ):
            if value is not None:
                payload[self.rename.get(name, name)] = value
        return UpstreamCall(
            url=f"{target.base_url}/embeddings{target.query}",
            headers={
                **provider.auth_headers(target.key),
                **target.headers,
                "Content-Type": "application/json",
            },
            body=_encode(payload),
        )

    def parse(self, answer: Any) -> tuple[list[Any], dict[str, int] | None]:
        items = answer["data"]
        if all(isinstance(item["index"], int) for item in items):
            items = sorted(items, key=lambda item: item["index"])
        usage = answer.get("usage") or {}
        prompt, total = usage.get("prompt_tokens"), usage.get("total_tokens")
        return [item["embedding"] for item in items], token_usage(prompt, total)


OPENAI_FAMILY = OpenAIFamily()
OPENAI_EMBEDDINGS = OpenAIEmbeddings()
