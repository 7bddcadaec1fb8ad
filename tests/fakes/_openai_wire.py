"""What the fake OpenAI upstream says: chat chunks, the completion object, error bodies.

A stream is data-only server-sent events: the role chunk (``content: ""``, ``refusal:
null``), one chunk per piece, a chunk with an empty ``delta`` and the ``finish_reason``, then
``data: [DONE]``. With ``stream_options.include_usage`` every chunk carries ``"usage": null``
and one more chunk, with empty ``choices`` and the usage, comes before ``[DONE]``. Chunks are
compact JSON; error bodies are pretty-printed with four-space indents, as OpenAI sends them:
``{"error":{"message","type","param","code"}}``.

Azure's variant (``azure=True``) opens with a chunk that has empty ``choices``, blank ``id``
and ``model``, and ``prompt_filter_results``, and puts ``content_filter_results`` in every
choice.

A tool call streams as OpenAI streams it (platform.openai.com/docs/guides/function-calling,
"Streaming"; raw captures of gpt-4o streams in public test fixtures): the first chunk carries
the role and the call's ``index`` 0, ``id`` (``call_`` and 24 letters and digits), ``type``
and ``function.name`` with empty ``arguments`` (``{"role": "assistant", "content": null,
"tool_calls": [...], "refusal": null}``); each later chunk one fragment of the arguments,
``{"tool_calls": [{"index": 0, "function": {"arguments": "..."}}]}``; then an empty delta with
``finish_reason: "tool_calls"``. Not streamed: ``message.tool_calls`` with ``content: null``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tests.fakes._text import compact, random_id

NO_KEY: Final = (
    "You didn't provide an API key. You need to provide your API key in an Authorization"
    " header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field"
    " (with blank username) if you're accessing the API from your browser and are prompted for"
    " a username and password. You can obtain an API key from"
    " https://platform.openai.com/account/api-keys."
)
BAD_JSON: Final = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't"
    " using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was"
    " sent was not valid JSON. If you have trouble figuring out how to fix this, please"
    " contact us through our help center at help.openai.com.)"
)
MISMATCHED_ORGANIZATION: Final = "OpenAI-Organization header should match organization for API key"
OVERLOADED: Final = "The engine is currently overloaded, please try again later."
_JSON_TYPES: Final = (
    (bool, "a boolean"),
    (str, "a string"),
    (int, "an integer"),
    (float, "a decimal"),
    (list, "an array"),
    (dict, "an object"),
)


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> str:
    error = {"message": message, "type": kind, "param": param, "code": code}
    return json.dumps({"error": error}, indent=4, ensure_ascii=False) + "\n"


def masked(key: str) -> str:
    """A key as OpenAI quotes it back: the start and the last four characters."""
    if len(key) < 8:
        return "*" * len(key)
    return f"{key[:3]}{'*' * (len(key) - 7)}{key[-4:]}"


def incorrect_key(key: str) -> str:
    return (
        f"Incorrect API key provided: {masked(key)}. You can find your API key at"
        " https://platform.openai.com/account/api-keys."
    )


def model_not_found(model: str) -> str:
    return f"The model `{model}` does not exist or you do not have access to it."


def rate_limited(model: str, retry_after: int) -> str:
    return (
        f"Rate limit reached for {model} in organization org-fake on requests per min (RPM):"
        f" Limit 3, Used 3, Requested 1. Please try again in {retry_after}s. Visit"
        " https://platform.openai.com/account/rate-limits to learn more."
    )


def server_error(request_id: str) -> str:
    return (
        "The server had an error processing your request. Sorry about that! You can retry your"
        " request, or contact us through our help center at help.openai.com if you keep seeing"
        f" this error. (Please include the request ID {request_id} in your email.)"
    )


def json_type(value: object) -> str:
    if value is None:
        return "null"
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), "a value")


Problem = tuple[str, str | None, str | None]


def validation_problem(body: object, *, model_required: bool) -> Problem:
    """(message, param, code) for the first problem, or ("", None, None) when the body is fine.

    OpenAI-compatible servers accept many fields, so only what every one of them rejects is
    checked: the body's shape, ``model``, ``messages``, the type of ``stream``, the shape of
    ``tools`` and the pairing of tool calls with tool messages (``tool_problem``).
    """
    if not isinstance(body, dict):
        return (
            f"Invalid type for body: expected an object, but got {json_type(body)} instead.",
            None,
            "invalid_type",
        )
    for name in ("model", "messages") if model_required else ("messages",):
        if name not in body:
            return f"Missing required parameter: '{name}'.", name, "missing_required_parameter"
    expected = {
        "model": (str, "a string"),
        "messages": (list, "an array"),
        "stream": (bool, "a boolean"),
        "stream_options": (dict, "an object"),
    }
    for name, (kind, wanted) in expected.items():
        value = body.get(name)
        if name in body and value is not None and not isinstance(value, kind):
            message = (
                f"Invalid type for '{name}': expected {wanted}, but got {json_type(value)} instead."
            )
            return message, name, "invalid_type"
    if body["messages"] == []:
        message = (
            "Invalid 'messages': empty array. Expected an array with minimum length 1,"
            " but got an empty array instead."
        )
        return message, "messages", "empty_array"
    return tools_problem(body.get("tools")) or tool_problem(body["messages"]) or ("", None, None)


def tools_problem(tools: object) -> Problem | None:
    """``tools``: an array of ``{"type": "function", "function": {"name": ...}}``."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        message = (
            f"Invalid type for 'tools': expected an array, but got {json_type(tools)} instead."
        )
        return message, "tools", "invalid_type"
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        function = tool.get("function")
        if isinstance(function, dict) and "name" in function:
            continue
        if function is not None and not isinstance(function, dict):
            message = (
                f"Invalid type for 'tools[{index}].function': expected an object,"
                f" but got {json_type(function)} instead."
            )
            return message, f"tools[{index}].function", "invalid_type"
        name = f"tools[{index}].function" + ("" if function is None else ".name")
        return f"Missing required parameter: '{name}'.", name, "missing_required_parameter"
    return None


NO_TOOL_CALL_ID: Final = (
    "Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'."
)
TOOL_WITHOUT_CALL: Final = (  # sic: OpenAI's own spelling
    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message"
    " with 'tool_calls'."
)


def unanswered_calls(ids: list[str]) -> str:
    return (
        "An assistant message with 'tool_calls' must be followed by tool messages responding"
        " to each 'tool_call_id'. The following tool_call_ids did not have response messages:"
        f" {', '.join(ids)}"
    )


def tool_problem(messages: list[Any]) -> Problem | None:
    """Tool messages answer the calls of the assistant message just before them, each call.

    OpenAI's 400s, as quoted in public issue threads: a tool message without
    ``tool_call_id``; a tool message that answers no pending call; an assistant message
    whose calls are not all answered before the next other message (or the end).
    """
    pending: list[str] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        if message.get("role") == "tool":
            call_id = message.get("tool_call_id")
            if call_id is None:
                return NO_TOOL_CALL_ID, f"messages.[{index}].tool_call_id", None
            if call_id not in pending:
                return TOOL_WITHOUT_CALL, f"messages.[{index}].role", None
            pending.remove(call_id)
            continue
        if pending:
            return unanswered_calls(pending), "messages", None
        if message.get("role") == "assistant" and isinstance(message.get("tool_calls"), list):
            for number, call in enumerate(message["tool_calls"]):
                if not isinstance(call, dict) or "id" not in call:
                    name = f"messages[{index}].tool_calls[{number}].id"
                    return (
                        f"Missing required parameter: '{name}'.",
                        name,
                        "missing_required_parameter",
                    )
                pending.append(call["id"])
    if pending:
        return unanswered_calls(pending), "messages", None
    return None


def tool_call_id() -> str:
    """``call_`` and 24 letters and digits, as OpenAI's tool call ids are."""
    return f"call_{random_id(24)}"


def request_id() -> str:
    return f"req_{secrets.token_hex(16)}"


def usage(prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    """OpenAI's usage: the ``cached`` tokens are read from the cache on top of the ``prompt``,
    the ``reasoning`` ones spent on top of the reply's ``completion``; OpenAI counts both in
    its totals."""
    prompt, completion = prompt + cached, completion + reasoning
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def content_filter(*, checked: bool) -> dict[str, Any]:
    names = ("hate", "self_harm", "sexual", "violence")
    return {name: {"filtered": False, "severity": "safe"} for name in names} if checked else {}


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call of a reply: its id, the function's name, the arguments JSON."""

    id: str
    name: str
    arguments: str

    def as_message_part(self) -> dict[str, Any]:
        function = {"name": self.name, "arguments": self.arguments}
        return {"id": self.id, "type": "function", "function": function}


class OpenAIChunks:
    """The ``chat.completion.chunk`` events of one reply: text, or one ``tool_call``.

    With a tool call, the pieces are fragments of its arguments.
    """

    def __init__(
        self,
        model: str,
        *,
        counts: dict[str, Any],
        truncated: bool,
        include_usage: bool,
        azure: bool = False,
        tool_call: ToolCall | None = None,
    ) -> None:
        self._model = model
        self._id = f"chatcmpl-{random_id(29)}"
        self._created = int(time.time())
        self._fingerprint = f"fp_{secrets.token_hex(5)}"
        self._finish = "tool_calls" if tool_call else "length" if truncated else "stop"
        self._tool_call = tool_call
        self._usage = counts if include_usage else None
        self._include_usage = include_usage
        self._azure = azure

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "service_tier": None if self._azure else "default",
            "system_fingerprint": self._fingerprint,
            "choices": choices,
        }
        if self._include_usage:
            chunk["usage"] = None
        chunk.update(extra)
        return f"data: {compact(chunk)}\n\n".encode()

    def _choice(
        self, delta: Mapping[str, Any], finish: str | None, checked: bool
    ) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        if self._azure:
            choice["content_filter_results"] = content_filter(checked=checked)
        return choice

    def _opening_delta(self) -> dict[str, Any]:
        call = self._tool_call
        if call is None:
            return {"role": "assistant", "content": "", "refusal": None}
        header = {
            "index": 0,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        return {"role": "assistant", "content": None, "tool_calls": [header], "refusal": None}

    def opening(self) -> bytes:
        first = self._event([self._choice(self._opening_delta(), None, False)])
        if not self._azure:
            return first
        prompt_filter = [
            {"prompt_index": 0, "content_filter_results": content_filter(checked=True)}
        ]
        blank = {
            "id": "",
            "object": "",
            "created": 0,
            "model": "",
            "choices": [],
            "prompt_filter_results": prompt_filter,
        }
        return f"data: {compact(blank)}\n\n".encode() + first

    def piece(self, text: str, *, last: bool) -> bytes:
        if self._tool_call is None:
            return self._event([self._choice({"content": text}, None, True)])
        fragment = {"index": 0, "function": {"arguments": text}}
        return self._event([self._choice({"tool_calls": [fragment]}, None, True)])

    def closing(self) -> bytes:
        finish = self._event([self._choice({}, self._finish, False)])
        if self._usage is not None:
            finish += self._event([], usage=self._usage)
        return finish + b"data: [DONE]\n\n"

    def error(self) -> bytes:
        return b""


def completion_body(
    model: str,
    text: str,
    *,
    truncated: bool,
    counts: dict[str, Any],
    azure: bool = False,
    tool_call: ToolCall | None = None,
) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` object: text, or ``tool_call`` (``content`` null)."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    finish = "length" if truncated else "stop"
    if tool_call is not None:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [tool_call.as_message_part()],
        }
        finish = "tool_calls"
    choice: dict[str, Any] = {
        "index": 0,
        "message": {**message, "refusal": None, "annotations": []},
        "logprobs": None,
        "finish_reason": finish,
    }
    body: dict[str, Any] = {
        "id": f"chatcmpl-{random_id(29)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": counts,
        "service_tier": None if azure else "default",
        "system_fingerprint": f"fp_{secrets.token_hex(5)}",
    }
    if azure:
        choice["content_filter_results"] = content_filter(checked=True)
        body["prompt_filter_results"] = [
            {"prompt_index": 0, "content_filter_results": content_filter(checked=True)}
        ]
    return body


def rate_limit_headers(remaining: int = 2, reset: str = "20s") -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": str(remaining),
        "x-ratelimit-reset-requests": reset,
        "x-ratelimit-limit-tokens": "40000",
        "x-ratelimit-remaining-tokens": str(remaining * 10000),
        "x-ratelimit-reset-tokens": "1ms",
    }


def model_card(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
