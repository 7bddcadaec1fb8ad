"""The Anthropic family: the Messages API, ``POST /v1/messages``, its own server-sent events.

The request: system (and developer) messages before the conversation become ``system``; the
turns alternate user / assistant, turns of one side in a row merged, as the API wants; within a
user turn, tool results come first, as it also wants. An assistant message's ``tool_calls``
become ``tool_use`` blocks after its text (arguments parsed into the ``input`` object); a
``tool`` message becomes a ``tool_result`` block. Images become base64 (or URL) image blocks.
``max_tokens`` is required: the client's, else the catalogue's, else 4096. ``tools``,
``tool_choice``, ``parallel_tool_calls``, ``stop``, ``top_p``, ``top_k`` and ``user`` have
direct equivalents; ``reasoning_effort`` is extended thinking with the budget of
``THINKING_BUDGETS``, within ``max_tokens`` as OpenAI counts reasoning in the reply's budget
(and no temperature or top_k, and a top_p of 0.95 or more, which thinking refuses); a
``response_format`` of type ``json_schema`` is structured outputs' ``output_config.format``
(Anthropic has no JSON mode without a schema); any other parameter is refused by name (or
dropped).

With thinking on, an assistant message's signed reasoning (``reasoning_content`` and
``reasoning_signature``, as the reply gave them) is its turn's first block, a ``thinking``
block, as Anthropic wants it given back, and its redacted reasoning (``reasoning_redacted``,
the data of each ``redacted_thinking`` block) the ``redacted_thinking`` blocks after it.
Anthropic refuses a request whose last assistant turn calling a tool does not start with its
thinking; when that turn was given back without it, the request goes without thinking (which
Anthropic allows), said in a debug log.

The reply: text deltas as content; thinking as ``reasoning_content`` and a thinking block's
signature, once it ends, as ``reasoning_signature``; a ``redacted_thinking`` block's data as
``reasoning_redacted``; each ``tool_use`` block as one OpenAI tool
call, numbered from 0 in the order the blocks start, delivered whole once its arguments are
complete.

A body already in the Messages API's own shape (chatwire's ``/v1/messages``) is forwarded as
sent (``forward``): only its model is the provider's id, and the client's
``anthropic-version`` and ``anthropic-beta`` go with it; its reply's bytes are relayed
unchanged (``Relayed``), the usage read on the way.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec

from chatwire.families.anthropic_relay import Relayed, RelayedAnswer
from chatwire.families.anthropic_reply import EVENT_DECODER, Events, TextEvents
from chatwire.families.anthropic_request import (
    conversation,
    output_format,
    sampling,
    thinking_for,
    thinking_given_back,
    tooling,
)
from chatwire.families.base import (
    BASE_FIELDS,
    CatalogueModels,
    check_fields,
    reply_budget,
)
from chatwire.gateway.lines import DeltaReader, Relay, TextReader
from chatwire.gateway.upstream import UpstreamCall

if TYPE_CHECKING:
    from chatwire.catalogue import ModelEntry
    from chatwire.dialects.base import Native
    from chatwire.gateway.call import ChatCall
    from chatwire.gateway.upstream import Target
    from chatwire.providers.declaration import Provider

DEFAULT_MAX_TOKENS = 4096
_encode = msgspec.json.Encoder().encode
log = logging.getLogger("chatwire.chat")
ACCEPTED = BASE_FIELDS | {
    "reasoning_effort",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "stop",
    "top_p",
    "top_k",
    "user",
}


class AnthropicFamily(CatalogueModels):
    name = "anthropic"

    def build(
        self,
        provider: Provider,
        target: Target,
        call: ChatCall,
        entry: ModelEntry | None,
        drop: bool,
    ) -> UpstreamCall:
        params, label = call.params, provider.label
        structured = output_format(params.get("response_format"))
        accepted = ACCEPTED if structured is None else ACCEPTED | {"response_format"}
        check_fields(label, params, accepted, drop)
        max_tokens = reply_budget(provider.rules, params, entry) or DEFAULT_MAX_TOKENS
        thinking = thinking_for(params.get("reasoning_effort"), max_tokens)
        messages = call.message_dicts()
        system, turns = conversation(label, messages, thinking=thinking is not None)
        if thinking is not None and not thinking_given_back(turns):
            log.debug(
                "%s: extended thinking off for this request: its last tool-calling assistant "
                "turn came back without its signed thinking, which Anthropic requires",
                label,
            )
            thinking = None
            system, turns = conversation(label, messages)
        payload: dict[str, Any] = {
            "model": target.model,
            "messages": turns,
            "max_tokens": max_tokens,
            "stream": True,
        }
        if system:
            payload["system"] = system
        if thinking is not None:
            payload["thinking"] = thinking
        payload.update(sampling(provider, params, entry))
        if thinking is not None:
            # What extended thinking refuses.
            payload.pop("temperature", None)
            payload.pop("top_k", None)
            if payload.get("top_p", 1) < 0.95:
                del payload["top_p"]
        payload.update(tooling(params))
        if structured is not None:
            payload["output_config"] = {"format": structured}
        return UpstreamCall(
            url=f"{target.base_url}/messages",
            headers={
                **provider.auth_headers(target.key),
                "anthropic-version": provider.options.get("version", "2023-06-01"),
                "Content-Type": "application/json",
                "Accept": "text/event-stream",
            },
            body=_encode(payload),
        )

    def forward(self, provider: Provider, target: Target, native: Native) -> UpstreamCall:
        """A Messages API body as the client sent it, to the provider's own endpoint."""
        raw = native.raw
        if native.body.get("model") != target.model:
            raw = _encode({**native.body, "model": target.model})
        headers = {
            **provider.auth_headers(target.key),
            "anthropic-version": native.headers.get("anthropic-version")
            or provider.options.get("version", "2023-06-01"),
            "Content-Type": "application/json",
        }
        beta = native.headers.get("anthropic-beta")
        if beta is not None:
            headers["anthropic-beta"] = beta
        if native.stream:
            headers["Accept"] = "text/event-stream"
        query = f"?{native.query}" if native.query else ""
        return UpstreamCall(
            url=f"{target.base_url}{native.endpoint}{query}", headers=headers, body=raw
        )

    def relay_reader(self, provider: Provider, native: Native) -> Relay:
        return Relayed() if native.stream else RelayedAnswer()

    def text_reader(self, provider: Provider) -> TextReader:
        return TextEvents(EVENT_DECODER)

    def reader(self, provider: Provider, call: ChatCall) -> DeltaReader:
        return Events()

    def key_rejected(self, status: int, body: bytes) -> bool:
        return False  # Anthropic refuses a key with 401 authentication_error


ANTHROPIC_FAMILY = AnthropicFamily()
