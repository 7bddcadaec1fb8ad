"""The OpenAI chat request, and how its parameters translate for each provider, as data.

A request is decoded loosely (every field OpenAI documents is known, each typed only as far
as chatwire needs) and then translated: renamed where the provider calls it otherwise,
refused with a 400 naming it where the provider cannot take it (or dropped, when the
operator sets ``CHATWIRE_DROP_PARAMS``), passed on as given otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

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


# Mistral (mistral-wire.md): seed is random_seed, max_completion_tokens is max_tokens;
# these are seen rejected with a 422 in practice.
MISTRAL = ParamRules(
    rename={"seed": "random_seed", "max_completion_tokens": "max_tokens"},
    refuse=frozenset(
        {"user", "logprobs", "top_logprobs", "logit_bias", "store", "service_tier", "modalities"}
    ),
)
OPENAI = ParamRules(ask_for_usage=True)
# A user's own server may be anything OpenAI-shaped (vLLM, llama.cpp, Mistral...): it is
# sent what the client sent, and not asked for usage with a field some of them refuse.
CUSTOM = ParamRules()
RULES: dict[str, ParamRules] = {"mistral": MISTRAL, "custom": CUSTOM}


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


def translate(provider: str, label: str, fields: Mapping[str, Any], drop: bool) -> dict[str, Any]:
    """The parameters to send ``provider``, from the client's, by its rules."""
    rules = RULES.get(provider, OPENAI)
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name in OWN_FIELDS or value is None:
            continue
        if name in rules.refuse:
            if drop:
                continue
            raise RequestInvalid(
                f"{label} does not accept the parameter '{name}'; leave it out "
                "(or have the operator set CHATWIRE_DROP_PARAMS=true to drop such parameters)."
            )
        out[rules.rename.get(name, name)] = value
    return out
