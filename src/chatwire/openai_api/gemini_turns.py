"""OpenAI messages as Gemini ``contents``, tool turns included, and the call ids chatwire gives.

System and developer messages become ``systemInstruction``. A user message keeps its text and
images (the chatbot-ui adapter's parts). An assistant message becomes a ``model`` turn: its
text, then one ``functionCall`` part per tool call (``args`` parsed from the arguments JSON).
Tool messages in a row become one ``user`` turn of ``functionResponse`` parts, as Gemini wants
a call turn answered by one response turn with as many parts.

Gemini's calls carry no id, and a tool message no function name; Gemini wants the name. The
name is found from the earlier assistant tool call with the tool message's ``tool_call_id``,
so any ids work, the client's own included. The ids chatwire gives are ``call_`` and 24 hex
digits, followed by ``.`` and the call's thought signature when Gemini signed it: a signature
must come back with its call (Gemini 3 refuses a turn without it), and every client sends a
call's id back, while few keep fields OpenAI does not define.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from chatwire.api.schemas import Message, Part
from chatwire.errors import RequestInvalid
from chatwire.openai_api.chunks import new_call_id as plain_call_id
from chatwire.openai_api.translate import call_arguments
from chatwire.providers.gemini import message_parts

_OURS: Final = re.compile(r"call_[0-9a-f]{24}")
_GENERATION: Final = re.compile(r"gemini-(\d+)")
# Google's documented stand-in for a signature that was lost (a call made by another model, or
# an id from elsewhere): Gemini 3 then skips the signature check of the turn.
SKIP_SIGNATURE: Final = "skip_thought_signature_validator"

_Content = str | list[Part] | None


def new_call_id(signature: str | None = None) -> str:
    """A fresh id for a call Gemini made, carrying its thought signature when it has one."""
    call_id = plain_call_id()
    return f"{call_id}.{signature}" if signature else call_id


def signature_of(call_id: str) -> str | None:
    """The thought signature inside an id chatwire gave, else None."""
    head, dot, signature = call_id.partition(".")
    return signature if dot and signature and _OURS.fullmatch(head) else None


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
                " user, assistant and tool messages through chatwire's /v1."
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
        try:
            content = msgspec.convert(message.get("content"), _Content)
        except msgspec.ValidationError as exc:
            raise RequestInvalid(
                f"messages[{index}].content: {exc}. {self.label} takes text and image_url parts"
                " through chatwire's /v1."
            ) from exc
        return message_parts(Message(role="user", content=content))

    def _calls(self, index: int, calls: object) -> list[dict[str, Any]]:
        if calls is None:
            return []
        if not isinstance(calls, list):
            raise RequestInvalid(f"messages[{index}].tool_calls must be a list of tool calls.")
        parts = []
        for number, call in enumerate(calls):
            where = f"messages[{index}].tool_calls[{number}]"
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
