"""The OpenAI chat request, and how its parameters translate for each provider, as data.

A request is decoded loosely (every field OpenAI documents is known, each typed only as far
as chatwire needs) and then translated: renamed where the provider calls it otherwise,
refused with a 400 naming it where the provider cannot take it (or dropped, when the
operator sets ``CHATWIRE_DROP_PARAMS``), passed on as given otherwise.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from chatwire.api.schemas import NESTED_TOO_DEEPLY
from chatwire.errors import RequestInvalid

# Fields chatwire handles itself and never forwards as given.
OWN_FIELDS = frozenset({"model", "messages", "stream", "stream_options"})


@dataclass(frozen=True, slots=True)
class ParamRules:
    """How one provider takes OpenAI's parameters."""

    rename: Mapping[str, str] = field(default_factory=dict)
    refuse: frozenset[str] = frozenset()
    # Upstream reports usage only when asked (OpenAI's stream_options.include_usage).
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


# Mistral (mistral-wire.md): seed is random_seed, max_completion_tokens is max_tokens;
# these are seen rejected with a 422 in practice.
# Each message type forbids unknown fields (a name on a user message, OpenAI's refusal or
# reasoning_content on an assistant one), and tool call ids are 9 letters or digits: ids
# that OpenAI clients made (call_...) are mapped so that a call and its result still match.
MISTRAL = ParamRules(
    rename={"seed": "random_seed", "max_completion_tokens": "max_tokens"},
    refuse=frozenset(
        {"user", "logprobs", "top_logprobs", "logit_bias", "store", "service_tier", "modalities"}
    ),
    roles={"developer": "system"},
    message_fields={
        "system": frozenset({"role", "content"}),
        "user": frozenset({"role", "content"}),
        "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
        "tool": frozenset({"role", "content", "tool_call_id", "name"}),
    },
    call_id=re.compile(r"[A-Za-z0-9]{9}"),
)
OPENAI = ParamRules(ask_for_usage=True)
# console.groq.com/docs/openai: these fields are a 400 there, and n must be 1.
GROQ = ParamRules(
    ask_for_usage=True,
    refuse=frozenset({"logprobs", "top_logprobs", "logit_bias"}),
    one_choice=True,
    refuse_in_messages=frozenset({"name"}),
)
# Sonar answers from a web search: no tools, no log probabilities, one choice.
PERPLEXITY = ParamRules(
    refuse=frozenset(
        {"tools", "tool_choice", "parallel_tool_calls", "logprobs", "top_logprobs", "logit_bias"}
    ),
    one_choice=True,
)
# A user's own server may be anything OpenAI-shaped (vLLM, llama.cpp, Mistral...): it is
# sent what the client sent, and not asked for usage with a field some of them refuse.
CUSTOM = ParamRules()
RULES: dict[str, ParamRules] = {
    "mistral": MISTRAL,
    "groq": GROQ,
    "perplexity": PERPLEXITY,
    "custom": CUSTOM,
}


def rules_for(provider: str) -> ParamRules:
    """A provider's rules; OpenAI's own for one with none of its own."""
    return RULES.get(provider, OPENAI)


class ChatCompletionRequest(msgspec.Struct, forbid_unknown_fields=False):
    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    stream_options: dict[str, Any] | None = None


_decoder = msgspec.json.Decoder(ChatCompletionRequest)
_raw = msgspec.json.Decoder(dict[str, Any])


def decode(body: bytes) -> tuple[ChatCompletionRequest, dict[str, Any]]:
    """The typed request and every field as sent."""
    if not body:
        raise RequestInvalid("The request body is empty: send a chat completion request.")
    try:
        return _decoder.decode(body), _raw.decode(body)
    except msgspec.ValidationError as exc:
        raise RequestInvalid(f"Invalid request body: {exc}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise RequestInvalid(f"The request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise RequestInvalid(NESTED_TOO_DEEPLY) from exc


def translate(provider: str, label: str, fields: Mapping[str, Any], drop: bool) -> dict[str, Any]:
    """The parameters to send ``provider``, from the client's, by its rules."""
    rules = rules_for(provider)
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name in OWN_FIELDS or value is None:
            continue
        if name in rules.refuse or (name == "n" and rules.one_choice and value != 1):
            if drop:
                continue
            raise _refused(label, name if name != "n" else "n > 1")
        out[rules.rename.get(name, name)] = value
    return out


def messages(
    provider: str, label: str, sent: list[dict[str, Any]], drop: bool
) -> list[dict[str, Any]]:
    """The messages to send ``provider``: as sent, unless its rules change them."""
    rules = rules_for(provider)
    if not (rules.roles or rules.message_fields or rules.refuse_in_messages or rules.call_id):
        return sent
    return [_message(rules, label, i, m, drop) for i, m in enumerate(sent)]


def _message(rules: ParamRules, label: str, index: int, message: Any, drop: bool) -> dict[str, Any]:
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
        f"{label} does not accept the parameter '{name}'; leave it out "
        "(or have the operator set CHATWIRE_DROP_PARAMS=true to drop such parameters)."
    )
