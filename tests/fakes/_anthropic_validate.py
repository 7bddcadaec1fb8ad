"""Request validation for the fake Anthropic Messages API, in Anthropic's own words.

Anthropic answers a bad request with one ``invalid_request_error`` whose message names the
field path, pydantic style: ``"max_tokens: Field required"``, ``"temperature: range: 0..1"``,
``"messages.0.role: Input should be 'user' or 'assistant'"``. The role rules have messages of
their own, quoted from captures in public issue threads:

- a ``system`` role: ``messages: Unexpected role "system". The Messages API accepts a
  top-level `system` parameter, not "system" as an input message role.``
- the first message not from the user: ``messages: first message must use the "user" role``
- two turns from one side: ``messages: roles must alternate between "user" and "assistant",
  but found multiple "user" roles in a row``

Tool use has its own, quoted from captures in public issue threads:

- a tool's name: ``tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'``;
  its schema: ``tools.0.custom.input_schema: Field required``, ``....input_schema.type: Field
  required``; a call's input: ``messages.1.content.0.tool_use.input: Input should be a valid
  dictionary``;
- ``tool_choice`` without tools: ``tool_choice.any may only be specified while providing
  tools``;
- a call not answered at the start of the next message: ``messages.1: `tool_use` ids were found
  without `tool_result` blocks immediately after: toolu_01.... Each `tool_use` block must have a
  corresponding `tool_result` block in the next message.``;
- a result for no call of the message before: ``messages.2.content.0: unexpected `tool_use_id`
  found in `tool_result` blocks: toolu_01.... Each `tool_result` block must have a corresponding
  `tool_use` block in the previous message.``;
- tool blocks in a request without tools: ``Requests which include `tool_use` or `tool_result`
  blocks must define tools.``

Extended thinking, quoted from captures in public issue threads as well: with ``thinking``
enabled, the last assistant message that calls a tool (the tool-use cycle in progress) must
start with its thinking block, given back with its signature: ``messages.1.content.0.type:
Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is enabled, a
final `assistant` message must start with a thinking block ...``; a thinking block whose
signature is not the fake's for its text: ``messages.1.content.0: Invalid `signature` in
`thinking` block``; a ``redacted_thinking`` block whose data is not the fake's likewise,
``Invalid `data` in `redacted_thinking` block``.

Checked in this order, the first failure answers: the body is an object; model, max_tokens,
messages are present; no unknown top-level field; the scalars' types and ranges; ``system``;
``tools`` and ``tool_choice``; each message's shape and content blocks; the role order; then
the pairing of tool calls and results; then the thinking rule. Images are checked down to
their bytes: the base64 must decode and start like the declared media type. Only custom tools
are modelled.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from tests.fakes._anthropic_thinking import redacted_data_is_the_fake_s, signed

ACCEPTED_FIELDS: Final = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
    }
)
# Blocks other than text and image are accepted as they come: the fake does not use them.
BLOCK_TYPES: Final = (
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
)
IMAGE_SIGNATURES: Final[Mapping[str, tuple[bytes, ...]]] = MappingProxyType(
    {
        "image/jpeg": (b"\xff\xd8\xff",),
        "image/png": (b"\x89PNG\r\n\x1a\n",),
        "image/gif": (b"GIF87a", b"GIF89a"),
        "image/webp": (b"RIFF",),
    }
)
_MEDIA_TYPES: Final = "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
_TOOL_NAME: Final = re.compile(r"[a-zA-Z0-9_-]{1,128}")
_TOOL_ID: Final = re.compile(r"[a-zA-Z0-9_-]+")
_TOOL_FIELDS: Final = frozenset(
    {"type", "name", "description", "input_schema", "cache_control", "strict"}
)
_CHOICE_FIELDS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "auto": frozenset({"type", "disable_parallel_tool_use"}),
        "any": frozenset({"type", "disable_parallel_tool_use"}),
        "tool": frozenset({"type", "name", "disable_parallel_tool_use"}),
        "none": frozenset({"type"}),
    }
)


def validate_messages_body(body: object) -> str | None:
    """The message of the first problem in a Messages API body, or None when it is valid."""
    if not isinstance(body, dict):
        return "Input should be a valid dictionary or object to extract fields from"
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return f"{name}: Field required"
    for name in body:
        if name not in ACCEPTED_FIELDS:
            return f"{name}: Extra inputs are not permitted"
    return (
        _scalar_problem(body)
        or _system_problem(body.get("system"))
        or _tools_problem(body.get("tools"))
        or _choice_problem(body.get("tool_choice"), bool(body.get("tools")))
        or _messages_problem(body["messages"])
        or _pairing_problem(body["messages"], bool(body.get("tools")))
        or _thinking_turn_problem(body)
    )


def _scalar_problem(body: dict[str, Any]) -> str | None:
    if not isinstance(body["model"], str):
        return "model: Input should be a valid string"
    max_tokens = body["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        return "max_tokens: Input should be a valid integer"
    if max_tokens < 1:
        return "max_tokens: Input should be greater than or equal to 1"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream: Input should be a valid boolean"
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name}: Input should be a valid number"
        if not 0 <= value <= 1:
            return f"{name}: range: 0..1"
    return None


def _system_problem(system: object) -> str | None:
    if system is None or isinstance(system, str):
        return None
    if not isinstance(system, list):
        return "system: Input should be a valid list"
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            return f"system.{index}.type: Input should be 'text'"
        if not isinstance(block.get("text"), str):
            return f"system.{index}.text: Input should be a valid string"
    return None


def _messages_problem(messages: object) -> str | None:
    if not isinstance(messages, list):
        return "messages: Input should be a valid list"
    if not messages:
        return "messages: at least one message is required"
    for index, message in enumerate(messages):
        problem = _message_problem(index, message, last=index == len(messages) - 1)
        if problem is not None:
            return problem
    return _order_problem([message["role"] for message in messages])


def _message_problem(index: int, message: object, *, last: bool) -> str | None:
    loc = f"messages.{index}"
    if not isinstance(message, dict):
        return f"{loc}: Input should be a valid dictionary or object to extract fields from"
    for name in ("role", "content"):
        if name not in message:
            return f"{loc}.{name}: Field required"
    for name in message:
        if name not in ("role", "content"):
            return f"{loc}.{name}: Extra inputs are not permitted"
    role = message["role"]
    if role == "system":
        return (
            'messages: Unexpected role "system". The Messages API accepts a top-level'
            ' `system` parameter, not "system" as an input message role.'
        )
    if role not in ("user", "assistant"):
        return f"{loc}.role: Input should be 'user' or 'assistant'"
    content = message["content"]
    if not isinstance(content, str | list):
        return f"{loc}.content: Input should be a valid string or a list of content blocks"
    if not content and not (last and role == "assistant"):
        return (
            f"{loc}: all messages must have non-empty content except for the optional"
            " final assistant message"
        )
    if isinstance(content, list):
        for number, block in enumerate(content):
            problem = _block_problem(f"{loc}.content.{number}", block)
            if problem is not None:
                return problem
    return None


def _block_problem(loc: str, block: object) -> str | None:
    if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
        allowed = ", ".join(f"'{kind}'" for kind in BLOCK_TYPES)
        return f"{loc}.type: Input should be {allowed}"
    if block["type"] == "text":
        if not isinstance(block.get("text"), str):
            return f"{loc}.text.text: Input should be a valid string"
        if not block["text"]:
            return "messages: text content blocks must be non-empty"
    if block["type"] == "image":
        return _image_problem(f"{loc}.image.source", block.get("source"))
    if block["type"] == "tool_use":
        return _tool_use_problem(f"{loc}.tool_use", block)
    if block["type"] == "tool_result":
        return _tool_result_problem(f"{loc}.tool_result", block)
    if block["type"] == "thinking":
        for name in ("thinking", "signature"):
            if not isinstance(block.get(name), str):
                return f"{loc}.thinking.{name}: Field required"
        if block["signature"] != signed(block["thinking"]):
            return f"{loc}: Invalid `signature` in `thinking` block"
    if block["type"] == "redacted_thinking":
        if not isinstance(block.get("data"), str):
            return f"{loc}.redacted_thinking.data: Field required"
        if not redacted_data_is_the_fake_s(block["data"]):
            return f"{loc}: Invalid `data` in `redacted_thinking` block"
    return None


def _tool_use_problem(loc: str, block: dict[str, Any]) -> str | None:
    for name in ("id", "name", "input"):
        if name not in block:
            return f"{loc}.{name}: Field required"
    if not isinstance(block["id"], str) or not _TOOL_ID.fullmatch(block["id"]):
        return f"{loc}.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
    if not isinstance(block["name"], str):
        return f"{loc}.name: Input should be a valid string"
    if not isinstance(block["input"], dict):
        return f"{loc}.input: Input should be a valid dictionary"
    return None


def _tool_result_problem(loc: str, block: dict[str, Any]) -> str | None:
    if not isinstance(block.get("tool_use_id"), str):
        return f"{loc}.tool_use_id: Field required"
    content = block.get("content", "")
    if not isinstance(content, str | list):
        return f"{loc}.content: Input should be a valid string or a list of content blocks"
    for number, part in enumerate(content if isinstance(content, list) else ()):
        if not isinstance(part, dict) or part.get("type") not in ("text", "image"):
            return f"{loc}.content.{number}.type: Input should be 'text' or 'image'"
    if "is_error" in block and not isinstance(block["is_error"], bool):
        return f"{loc}.is_error: Input should be a valid boolean"
    return None


def _tools_problem(tools: object) -> str | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "tools: Input should be a valid list"
    for index, tool in enumerate(tools):
        loc = f"tools.{index}.custom"
        if not isinstance(tool, dict):
            return f"tools.{index}: Input should be a valid dictionary or object to extract fields"
        for name in ("name", "input_schema"):
            if name not in tool:
                return f"{loc}.{name}: Field required"
        for name in tool:
            if name not in _TOOL_FIELDS:
                return f"{loc}.{name}: Extra inputs are not permitted"
        if not isinstance(tool["name"], str) or not _TOOL_NAME.fullmatch(tool["name"]):
            return f"{loc}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
        schema = tool["input_schema"]
        if not isinstance(schema, dict):
            return f"{loc}.input_schema: Input should be a valid dictionary"
        if "type" not in schema:
            return f"{loc}.input_schema.type: Field required"
        if schema["type"] != "object":
            return f"{loc}.input_schema.type: Input should be 'object'"
    return None


def _choice_problem(choice: object, has_tools: bool) -> str | None:
    if choice is None:
        return None
    if not isinstance(choice, dict):
        return "tool_choice: Input should be a valid dictionary or object to extract fields"
    kind = choice.get("type")
    if not isinstance(kind, str) or kind not in _CHOICE_FIELDS:
        return (
            f"tool_choice: Input tag '{kind}' found using 'type' does not match any of the"
            " expected tags: 'auto', 'any', 'tool', 'none'"
        )
    for name in choice:
        if name not in _CHOICE_FIELDS[kind]:
            return f"tool_choice.{kind}.{name}: Extra inputs are not permitted"
    if kind == "tool" and not isinstance(choice.get("name"), str):
        return "tool_choice.tool.name: Field required"
    if not isinstance(choice.get("disable_parallel_tool_use", False), bool):
        return f"tool_choice.{kind}.disable_parallel_tool_use: Input should be a valid boolean"
    if not has_tools:
        return f"tool_choice.{kind} may only be specified while providing tools"
    return None


def _pairing_problem(messages: list[dict[str, Any]], has_tools: bool) -> str | None:
    """Each result answering a call of the message before; then each call answered at the
    start of the message after."""
    for index, message in enumerate(messages):
        content = message["content"] if isinstance(message["content"], list) else []
        if not has_tools and any(b["type"] in ("tool_use", "tool_result") for b in content):
            return "Requests which include `tool_use` or `tool_result` blocks must define tools."
        called = _ids(messages[index - 1], "tool_use", "id") if index else []
        for number, block in enumerate(content):
            if block["type"] == "tool_result" and block["tool_use_id"] not in called:
                return (
                    f"messages.{index}.content.{number}: unexpected `tool_use_id` found in"
                    f" `tool_result` blocks: {block['tool_use_id']}. Each `tool_result` block"
                    " must have a corresponding `tool_use` block in the previous message."
                )
    for index, message in enumerate(messages):
        after = messages[index + 1] if index + 1 < len(messages) else None
        answered = _ids(after, "tool_result", "tool_use_id", leading=True) if after else []
        missing = [call for call in _ids(message, "tool_use", "id") if call not in answered]
        if missing:
            return (
                f"messages.{index}: `tool_use` ids were found without `tool_result` blocks"
                f" immediately after: {', '.join(missing)}. Each `tool_use` block must have a"
                " corresponding `tool_result` block in the next message."
            )
    return None


def _thinking_turn_problem(body: dict[str, Any]) -> str | None:
    """With thinking on, the last assistant message calling a tool starts with its thinking."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive"):
        return None
    messages: list[dict[str, Any]] = body["messages"]
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message["role"] != "assistant":
            continue
        content = message["content"] if isinstance(message["content"], list) else []
        if not any(block["type"] == "tool_use" for block in content):
            return None
        first = content[0]["type"]
        if first in ("thinking", "redacted_thinking"):
            return None
        return (
            f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but"
            f" found `{first}`. When `thinking` is enabled, a final `assistant` message must"
            " start with a thinking block (preceeding the lastmost set of `tool_use` and"
            " `tool_result` blocks). We recommend you include thinking blocks from previous"
            " turns. To avoid this requirement, disable `thinking`. Please consult our"
            " documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
        )
    return None


def _ids(message: dict[str, Any], kind: str, field: str, *, leading: bool = False) -> list[str]:
    """The ids of a message's blocks of one kind (with ``leading``, only those it starts with)."""
    content = message["content"] if isinstance(message["content"], list) else []
    if leading:
        content = list(itertools.takewhile(lambda block: block["type"] == kind, content))
    return [block[field] for block in content if block["type"] == kind]


def _image_problem(loc: str, source: object) -> str | None:
    if not isinstance(source, dict) or source.get("type") not in ("base64", "url"):
        return f"{loc}.type: Input should be 'base64' or 'url'"
    if source["type"] == "url":
        if not isinstance(source.get("url"), str):
            return f"{loc}.url.url: Field required"
        return None
    media_type = source.get("media_type")
    if not isinstance(media_type, str) or media_type not in IMAGE_SIGNATURES:
        return f"{loc}.base64.media_type: Input should be {_MEDIA_TYPES}"
    data = source.get("data")
    if not isinstance(data, str):
        return f"{loc}.base64.data: Input should be a valid string"
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return f"{loc}.base64.data: Invalid base64 data"
    if not decoded.startswith(IMAGE_SIGNATURES[media_type]):
        kind = media_type.removeprefix("image/")
        return (
            f"{loc}.base64.data: The image was specified using the {media_type} media type,"
            f" but does not appear to be a valid {kind} image"
        )
    return None


def _order_problem(roles: list[str]) -> str | None:
    if roles[0] != "user":
        return 'messages: first message must use the "user" role'
    for earlier, later in itertools.pairwise(roles):
        if earlier == later:
            return (
                'messages: roles must alternate between "user" and "assistant",'
                f' but found multiple "{later}" roles in a row'
            )
    return None
