"""The Gemini family: ``models/{model}:streamGenerateContent?alt=sse``.

The request: system and developer messages become ``systemInstruction``; the others
``contents`` with Gemini's roles (``user`` / ``model``): text and images (data URLs as
``inline_data``, links as ``file_data``), an assistant's tool calls as ``functionCall`` parts
(``args`` parsed from the arguments JSON), tool results in a row as one ``user`` turn of
``functionResponse`` parts, as Gemini wants a call turn answered by one response turn with as
many parts. ``tools`` become one tool of ``functionDeclarations``, each function's JSON schema
sent as ``parametersJsonSchema``: Gemini's older ``parameters`` field is an OpenAPI subset
that refuses common JSON-schema keywords. ``tool_choice`` becomes
``toolConfig.functionCallingConfig`` (auto AUTO, none NONE, required ANY, a named function ANY
with ``allowedFunctionNames``). The parameters with an equivalent go into ``generationConfig``
(``PARAMETERS``; ``response_format`` as ``responseMimeType`` and ``responseJsonSchema``;
``reasoning_effort`` as ``thinkingConfig``: a budget before Gemini 3, a level from it, as
Google maps it in its OpenAI compatibility, its thought summaries read back as
``reasoning_content``); the rest are refused by name. A refused key is a 400 whose details
carry API_KEY_INVALID.

Gemini's calls carry no id, and a tool message no function name, which Gemini wants: the name
is found from the earlier assistant tool call with the tool message's ``tool_call_id``, so any
ids work. The ids chatwire gives are ``call_`` and 24 hex digits, followed by ``.`` and the
call's thought signature when Gemini signed it: a signature must come back with its call
(Gemini 3 refuses a turn without it), and every client sends a call's id back, while few keep
fields OpenAI does not define. Each ``functionCall`` part of the reply becomes one tool-call
delta, whole; Gemini ends a reply that calls tools with ``STOP``, the client is told
``tool_calls``. The reply's readers are in ``gemini_reply``, the embeddings in
``gemini_embeddings``; this module builds the request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import msgspec

from chatwire.errors import RequestInvalid
from chatwire.families.base import (
    BASE_FIELDS,
    CatalogueModels,
    Image,
    call_arguments,
    check_fields,
    clamp_temperature,
    content_parts,
    number,
    reply_budget,
    stop_sequences,
)
from chatwire.families.gemini_reply import (
    Chunks,
    TextChunks,
    key_refused,
    signature_of,
)
from chatwire.gateway.lines import DeltaReader, TextReader
from chatwire.gateway.upstream import UpstreamCall

if TYPE_CHECKING:
    from chatwire.catalogue import ModelEntry
    from chatwire.gateway.call import ChatCall
    from chatwire.gateway.upstream import Target
    from chatwire.providers.declaration import Provider

# OpenAI's name (and the mistralai SDK's, random_seed) -> generationConfig's.
PARAMETERS: Final = {
    "top_p": "topP",
    "seed": "seed",
    "random_seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
ACCEPTED: Final = (
    BASE_FIELDS
    | set(PARAMETERS)
    | {
        "tools",
        "tool_choice",
        "stop",
        "response_format",
        "reasoning_effort",
    }
)
_CHOICES: Final = {"auto": "AUTO", "none": "NONE", "required": "ANY", "any": "ANY"}
_GENERATION: Final = re.compile(r"gemini-(\d+)")
# Google's documented stand-in for a signature that was lost (a call made by another model, or
# an id from elsewhere): Gemini 3 then skips the signature check of the turn.
SKIP_SIGNATURE: Final = "skip_thought_signature_validator"
_encode = msgspec.json.Encoder().encode


class GeminiFamily(CatalogueModels):
    name = "gemini"

    def build(
        self,
        provider: Provider,
        target: Target,
        call: ChatCall,
        entry: ModelEntry | None,
        drop: bool,
    ) -> UpstreamCall:
        params, label = call.params, provider.label
        # Gemini makes parallel calls when it sees fit: asking for that is no change.
        parallel = {"parallel_tool_calls"} if params.get("parallel_tool_calls") is True else set()
        check_fields(label, params, ACCEPTED | parallel, drop)
        built = turns(label, target.model, call.message_dicts())
        payload: dict[str, Any] = {"contents": built.contents}
        if built.system:
            payload["systemInstruction"] = {"parts": [{"text": "\n\n".join(built.system)}]}
        declarations = _declarations(label, params.get("tools"))
        if declarations:
            payload["tools"] = [{"functionDeclarations": declarations}]
            choice = _calling_config(label, params.get("tool_choice"), declarations)
            if choice is not None:
                payload["toolConfig"] = {"functionCallingConfig": choice}
        config = _generation_config(provider, target.model, params, entry)
        if config:
            payload["generationConfig"] = config
        return UpstreamCall(
            url=f"{target.base_url}/models/{quote(target.model, safe='')}"
            ":streamGenerateContent?alt=sse",
            headers={
                **provider.auth_headers(target.key),
                "Content-Type": "application/json",
                "Accept": "text/event-stream",
            },
            body=_encode(payload),
        )

    def text_reader(self, provider: Provider) -> TextReader:
        return TextChunks()

    def reader(self, provider: Provider, call: ChatCall) -> DeltaReader:
        return Chunks()

    def key_rejected(self, status: int, body: bytes) -> bool:
        return key_refused(status, body)


# The request.


def signatures_required(model: str) -> bool:
    """Gemini 3 and later refuse a function call turn without its thought signature."""
    match = _GENERATION.match(model)
    return match is not None and int(match[1]) >= 3


@dataclass
class Turns:
    """The request's ``systemInstruction`` texts and ``contents``."""

    label: str
    sign: bool  # give unsigned call turns the stand-in signature
    system: list[str] = field(default_factory=list)
    contents: list[dict[str, Any]] = field(default_factory=list)
    _names: dict[str, str] = field(default_factory=dict)  # call id -> function name
    _answering: bool = False  # the last content is a turn of function responses

    def add(self, index: int, message: object) -> None:
        if not isinstance(message, Mapping):
            raise RequestInvalid(f"messages[{index}] must be an object with a role.")
        role = message.get("role")
        if role in ("system", "developer"):
            text = "\n\n".join(p["text"] for p in self._parts(index, message) if "text" in p)
            if text:
                self.system.append(text)
        elif role == "user":
            self._append("user", self._parts(index, message))
        elif role == "assistant":
            parts = self._parts(index, message) + self._calls(index, message.get("tool_calls"))
            self._append("model", parts)
        elif role == "tool":
            self._respond(index, message)
            return
        else:
            raise RequestInvalid(
                f"messages[{index}] has the role {role!r}; {self.label} takes system, developer,"
                " user, assistant and tool messages."
            )
        self._answering = False

    def _append(self, role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return  # Gemini refuses a turn without parts
        if self.sign and role == "model":
            calls = [part for part in parts if "functionCall" in part]
            if calls and "thoughtSignature" not in calls[0]:
                calls[0]["thoughtSignature"] = SKIP_SIGNATURE
        self.contents.append({"role": role, "parts": parts})

    def _parts(self, index: int, message: Mapping[str, Any]) -> list[dict[str, Any]]:
        return message_parts(content_parts(self.label, index, message))

    def _calls(self, index: int, calls: object) -> list[dict[str, Any]]:
        if calls is None:
            return []
        if not isinstance(calls, list):
            raise RequestInvalid(f"messages[{index}].tool_calls must be a list of tool calls.")
        parts = []
        for number_, call in enumerate(calls):
            where = f"messages[{index}].tool_calls[{number_}]"
            function = call.get("function") if isinstance(call, Mapping) else None
            if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
                raise RequestInvalid(f"{where} needs a function with a name.")
            name: str = function["name"]
            part: dict[str, Any] = {
                "functionCall": {"name": name, "args": call_arguments(where, function)}
            }
            call_id = call.get("id")
            if isinstance(call_id, str):
                self._names[call_id] = name
                signature = signature_of(call_id)
                if signature is not None:
                    part["thoughtSignature"] = signature
            parts.append(part)
        return parts

    def _respond(self, index: int, message: Mapping[str, Any]) -> None:
        call_id = message.get("tool_call_id")
        name = self._names.get(call_id) if isinstance(call_id, str) else None
        if name is None:
            raise RequestInvalid(
                f"messages[{index}] is a tool result for the call {call_id!r}, but no earlier"
                f" assistant message made a tool call with that id. {self.label} needs the"
                " function's name: send the assistant message with its tool_calls before the"
                " tool results, and each result's tool_call_id as the call's id."
            )
        text = "".join(p.get("text", "") for p in self._parts(index, message))
        part = {"functionResponse": {"name": name, "response": _response(text)}}
        if self._answering:
            self.contents[-1]["parts"].append(part)
        else:
            self.contents.append({"role": "user", "parts": [part]})
            self._answering = True


def turns(label: str, model: str, messages: object) -> Turns:
    """The request's messages as Gemini's system instruction and contents."""
    if not isinstance(messages, list):
        raise RequestInvalid("messages must be a list of messages.")
    built = Turns(label, sign=signatures_required(model))
    for index, message in enumerate(messages):
        built.add(index, message)
    return built


def message_parts(parts: list[str | Image]) -> list[dict[str, Any]]:
    """A message's text and images as Gemini parts, in order; empty text left out."""
    found: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, str):
            if part:
                found.append({"text": part})
        elif part.data is not None:
            found.append({"inline_data": {"mime_type": part.media_type, "data": part.data}})
        else:
            found.append({"file_data": {"file_uri": part.url}})
    return found


def _response(text: str) -> dict[str, Any]:
    """Gemini's ``response`` is an object: a JSON object result as it is, anything else as
    its ``output`` (the key Google's docs give a function's output)."""
    if text.lstrip().startswith("{"):
        try:
            parsed = msgspec.json.decode(text)
        except (msgspec.DecodeError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    return {"output": text}


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
                f" {{...}}}}); {label} takes only function tools through chatwire."
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
    provider: Provider, model: str, params: Mapping[str, Any], entry: ModelEntry | None
) -> dict[str, Any]:
    config: dict[str, Any] = {}
    value = clamp_temperature(provider.rules, number(params, "temperature"), entry)
    if value is not None:
        config["temperature"] = value
    budget = reply_budget(provider.rules, params, entry)
    if budget is not None:
        config["maxOutputTokens"] = budget
    for name, gemini_name in PARAMETERS.items():
        if params.get(name) is not None:
            config[gemini_name] = number(params, name)
    stop = stop_sequences(params)
    if stop is not None:
        config["stopSequences"] = stop
    config.update(_response_format(params.get("response_format")))
    thinking = _thinking(model, params.get("reasoning_effort"))
    if thinking:
        config["thinkingConfig"] = thinking
    return config


# reasoning_effort as Gemini's thinking, as Google maps it for its OpenAI-compatible API: a
# budget before Gemini 3, a level from it (low and high only: Gemini 3 Pro takes no other).
_BUDGETS: Final = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
_LEVELS: Final = {"none": "low", "minimal": "low", "low": "low", "medium": "high", "high": "high"}


def _thinking(model: str, effort: object) -> dict[str, Any] | None:
    """The thinking config for a reasoning effort, its thought summaries included (the
    reply's ``reasoning_content``)."""
    if effort is None:
        return None
    if not isinstance(effort, str) or effort not in _BUDGETS:
        raise RequestInvalid(
            f"reasoning_effort must be one of {', '.join(_BUDGETS)}, not {effort!r:.50}."
        )
    config: dict[str, Any] = (
        {"thinkingLevel": _LEVELS[effort]}
        if signatures_required(model)
        else {"thinkingBudget": _BUDGETS[effort]}
    )
    if effort != "none":
        config["includeThoughts"] = True
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


GEMINI_FAMILY = GeminiFamily()
