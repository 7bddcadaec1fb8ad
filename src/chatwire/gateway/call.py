"""The one internal chat call, in OpenAI's chat-completions shape, and its reply deltas.

Every dialect decodes its request into a ``ChatCall``; every family builds its upstream
request from one. chatbot-ui's body is a subset of OpenAI's request, so nothing is lost:
``messages`` are OpenAI chat messages, ``params`` every other parameter as the client sent
it (``temperature``, ``max_tokens``, ``tools``...). The reply comes back as OpenAI
``chat.completion.chunk`` bodies (``delta``), whatever the provider's own format.

Reasoning: a reply's reasoning is ``delta.reasoning_content`` (pieces of text) and, where the
provider signs it (Anthropic's thinking), ``delta.reasoning_signature`` (the signature, once,
when that reasoning ends). Given back, it is an assistant message's own two fields, beside its
``content`` and ``tool_calls``::

    {"role": "assistant", "content": ..., "tool_calls": [...],
     "reasoning_content": "<the reasoning's text>", "reasoning_signature": "<its signature>"}

(one piece of signed reasoning per message, the one its reply began with). Reasoning the
provider redacted (Anthropic's ``redacted_thinking``) is ``delta.reasoning_redacted``, the
block's opaque data, once per block; given back, the message's ``reasoning_redacted`` is the
list of them, in order. The Anthropic family gives these back as the turn's thinking blocks;
the others leave signed and redacted reasoning out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import msgspec

# Fields of OpenAI's request the call carries itself, never among ``params``.
OWN_FIELDS = frozenset({"model", "messages", "stream", "stream_options"})


@dataclass(slots=True)
class ChatCall:
    # The model as the client named it, and as the provider knows it once resolved.
    model: str
    # OpenAI chat messages: dicts as sent, or chatbot-ui's typed messages (``typed``), whose
    # JSON is the same and which need no checking against a provider's message rules.
    messages: list[Any]
    params: dict[str, Any] = field(default_factory=dict)
    stream: bool = True
    # OpenAI's stream_options.include_usage: a final chunk with the usage.
    include_usage: bool = False
    typed: bool = False
    # chatbot-ui's chat settings are the user's preferences for a model, not exact
    # parameters: the temperature is clamped to the model's range and the model's max output
    # is its budget, as the provider's rules say (``settle``).
    from_chat_settings: bool = False
    _dicts: list[dict[str, Any]] | None = field(default=None, repr=False)

    def message_dicts(self) -> list[dict[str, Any]]:
        """The messages as plain JSON values, for the families that rebuild them."""
        if not self.typed:
            return self.messages
        if self._dicts is None:
            self._dicts = msgspec.to_builtins(self.messages)
        return self._dicts

    def drop_messages(self) -> None:
        """Let the messages go once the upstream request is built from them: a chat holds
        only that request's bytes while its reply streams (``Place.hold_only``)."""
        self.messages = []
        self._dicts = None

    def budget_given(self) -> bool:
        return bool(self.params.get("max_tokens") or self.params.get("max_completion_tokens"))


def delta(
    content: str | None = None,
    finish: str | None = None,
    role: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One chunk body with a single choice."""
    body: dict[str, Any] = {}
    if role is not None:
        body["role"] = role
    if content is not None:
        body["content"] = content
    if tool_calls is not None:
        body["tool_calls"] = tool_calls
    return {"choices": [{"index": 0, "delta": body, "finish_reason": finish}]}


def new_call_id() -> str:
    """An id, as OpenAI's look, for a tool call a provider sent without one."""
    return f"call_{secrets.token_hex(12)}"
