"""/v1 to Gemini's streamGenerateContent: the request translated, its chunks read back.

Messages become ``contents`` (``gemini_turns``). ``tools`` become one tool of
``functionDeclarations``, each function's JSON schema sent as ``parametersJsonSchema``:
Gemini's older ``parameters`` field is an OpenAPI subset that refuses common JSON-schema
keywords (``additionalProperties``, ``$ref``, a list of types). ``tool_choice`` becomes
``toolConfig.functionCallingConfig``: auto AUTO, none NONE, required ANY, a named function ANY
with ``allowedFunctionNames``. The parameters with an equivalent go into ``generationConfig``
(``PARAMETERS``; ``response_format`` as ``responseMimeType`` and ``responseJsonSchema``); the
rest are refused by name (``check_fields``).

Each ``functionCall`` part of the reply becomes one tool-call delta, whole (Gemini sends calls
whole), under an id of chatwire's (``gemini_turns.new_call_id``). Gemini ends a reply that
calls tools with ``STOP``; the client is told ``tool_calls``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec

from chatwire.errors import RequestInvalid
from chatwire.openai_api.chunks import ChunkReader, delta, mid_stream
from chatwire.openai_api.gemini_turns import new_call_id, turns
from chatwire.openai_api.translate import (
    BASE_FIELDS,
    check_fields,
    number,
    stop_sequences,
    with_budget,
)
from chatwire.providers.gemini import stream_call
from chatwire.providers.limits import clamp_temperature, max_tokens

if TYPE_CHECKING:
    from collections.abc import Mapping

    from chatwire.catalogue import ModelEntry
    from chatwire.providers.base import Provider, Target, UpstreamCall

# OpenAI's name (and the mistralai SDK's, random_seed) -> generationConfig's.
PARAMETERS: Final = {
    "top_p": "topP",
    "seed": "seed",
    "random_seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
FIELDS: Final = BASE_FIELDS | set(PARAMETERS) | {"tools", "tool_choice", "stop", "response_format"}
GEMINI_FINISH: Final = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
_CHOICES: Final = {"auto": "AUTO", "none": "NONE", "required": "ANY", "any": "ANY"}
_encode = msgspec.json.encode


class GeminiChunks(ChunkReader):
    def __init__(self) -> None:
        super().__init__()
        self._calls = 0
        self._started = False

    def convert(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        if item.get("error") is not None:
            raise mid_stream(item["error"])
        meta = item.get("usageMetadata")
        if meta:
            self.usage = _usage(meta)
        candidates = item.get("candidates") or []
        out: list[dict[str, Any]] = []
        if candidates:
            candidate = candidates[0]
            out = self._parts((candidate.get("content") or {}).get("parts") or ())
            reason = candidate.get("finishReason")
        else:
            # A refused prompt gets no candidate at all, only the reason.
            blocked = (item.get("promptFeedback") or {}).get("blockReason")
            reason = "SAFETY" if blocked else None
        if reason:
            self.finished = True
            called = self._calls > 0 and reason == "STOP"
            out.append(delta(finish="tool_calls" if called else GEMINI_FINISH.get(reason, "stop")))
        if out and not self._started:
            self._started = True
            out[0]["choices"][0]["delta"]["role"] = "assistant"
        return out

    def _parts(self, parts: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        text: list[str] = []
        for part in parts:
            if not isinstance(part, dict) or part.get("thought"):
                continue  # thought summaries are not the reply
            call = part.get("functionCall")
            if isinstance(call, dict):
                if text:
                    out.append(delta("".join(text)))
                    text = []
                out.append(self._call(call, part.get("thoughtSignature")))
            elif part.get("text"):
                text.append(part["text"])
        if text:
            out.append(delta("".join(text)))
        return out

    def _call(self, call: dict[str, Any], signature: Any) -> dict[str, Any]:
        piece = {
            "index": self._calls,
            "id": new_call_id(signature if isinstance(signature, str) else None),
            "type": "function",
            "function": {
                "name": call.get("name") or "",
                "arguments": _encode(call.get("args") or {}).decode(),
            },
        }
        self._calls += 1
        return delta(tool_calls=[piece])


def _usage(meta: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's usage: the model's thinking counts as completion tokens, as OpenAI counts
    reasoning tokens, and is told apart as ``reasoning_tokens``."""
    prompt = meta.get("promptTokenCount", 0)
    thoughts = meta.get("thoughtsTokenCount", 0)
    completion = meta.get("candidatesTokenCount", 0) + thoughts
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": meta.get("totalTokenCount", prompt + completion),
    }
    if thoughts:
        usage["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    if meta.get("cachedContentTokenCount"):
        usage["prompt_tokens_details"] = {"cached_tokens": meta["cachedContentTokenCount"]}
    return usage


class GeminiTranslation:
    fields = FIELDS

    def build(
        self,
        provider: Provider,
        target: Target,
        fields: dict[str, Any],
        limits: ModelEntry | None,
        drop: bool,
    ) -> UpstreamCall:
        label = provider.label
        # Gemini makes parallel calls when it sees fit: asking for that is no change.
        parallel = {"parallel_tool_calls"} if fields.get("parallel_tool_calls") is True else set()
        check_fields(label, fields, self.fields | parallel, drop)
        built = turns(label, target.model, fields["messages"])
        payload: dict[str, Any] = {"contents": built.contents}
        if built.system:
            payload["systemInstruction"] = {"parts": [{"text": "\n\n".join(built.system)}]}
        declarations = _declarations(label, fields.get("tools"))
        if declarations:
            payload["tools"] = [{"functionDeclarations": declarations}]
            choice = _calling_config(label, fields.get("tool_choice"), declarations)
            if choice is not None:
                payload["toolConfig"] = {"functionCallingConfig": choice}
        config = _generation_config(provider, with_budget(target, fields), fields, limits)
        if config:
            payload["generationConfig"] = config
        return stream_call(provider, target, _encode(payload))

    def reader(self) -> ChunkReader:
        return GeminiChunks()


def _declarations(label: str, tools: object) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise RequestInvalid("tools must be a list of function tools.")
    declarations = []
    for index, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        function = tool.get("function") if isinstance(tool, dict) else None
        if kind != "function" or not isinstance(function, dict):
            raise RequestInvalid(
                f"tools[{index}] is not a function tool ({{'type': 'function', 'function':"
                f" {{...}}}}); {label} takes only function tools through chatwire's /v1."
            )
        if not isinstance(function.get("name"), str):
            raise RequestInvalid(f"tools[{index}].function needs a name.")
        declaration = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters") is not None:
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    return declarations


def _calling_config(
    label: str, choice: object, declarations: list[dict[str, Any]]
) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _CHOICES:
        return {"mode": _CHOICES[choice]}
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise RequestInvalid(
            f"tool_choice {choice!r} is not one {label} takes: use 'auto', 'none', 'required'"
            " or {'type': 'function', 'function': {'name': ...}}."
        )
    if name not in {declaration["name"] for declaration in declarations}:
        raise RequestInvalid(
            f"tool_choice names the function {name!r}, which is not among the request's tools."
        )
    return {"mode": "ANY", "allowedFunctionNames": [name]}


def _generation_config(
    provider: Provider, target: Target, fields: Mapping[str, Any], limits: ModelEntry | None
) -> dict[str, Any]:
    config: dict[str, Any] = {}
    value = clamp_temperature(provider.quirks, number(fields, "temperature"), limits)
    if value is not None:
        config["temperature"] = value
    budget = max_tokens(provider.quirks, target, limits)
    if budget is not None:
        config["maxOutputTokens"] = budget
    for name, gemini_name in PARAMETERS.items():
        if fields.get(name) is not None:
            config[gemini_name] = number(fields, name)
    stop = stop_sequences(fields)
    if stop is not None:
        config["stopSequences"] = stop
    config.update(_response_format(fields.get("response_format")))
    return config


def _response_format(value: object) -> dict[str, Any]:
    kind = value.get("type") if isinstance(value, dict) else value
    if value is None or kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    spec = value.get("json_schema") if isinstance(value, dict) else None
    if kind == "json_schema" and isinstance(spec, dict):
        config: dict[str, Any] = {"responseMimeType": "application/json"}
        if spec.get("schema") is not None:
            config["responseJsonSchema"] = spec["schema"]
        return config
    raise RequestInvalid(
        "response_format must be {'type': 'text'}, {'type': 'json_object'} or"
        " {'type': 'json_schema', 'json_schema': {'name': ..., 'schema': {...}}}."
    )
