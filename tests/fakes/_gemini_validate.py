"""Request validation for the fake Gemini API, in Google's own words.

Google parses the body into its ``GenerateContentRequest`` proto first. Every field has a
camelCase and a snake_case JSON name, and both are accepted. What the proto parser rejects
comes back as one 400 ``INVALID_ARGUMENT`` whose message lists each problem on its own line,
with a ``google.rpc.BadRequest`` detail holding one field violation per problem:

- an unknown field: ``Invalid JSON payload received. Unknown name "stream": Cannot find
  field.`` (nested: ``... Unknown name "content" at 'contents[0]': Cannot find field.``);
- a value of the wrong type: ``Invalid value at 'generation_config.temperature'
  (TYPE_FLOAT), "hot"``; base64 that does not decode: ``Invalid value at
  'contents[0].parts[1].inline_data.data' (TYPE_BYTES), Base64 decoding failed for "..."``
  (a ``thoughtSignature`` too);
- in a function declaration's ``parameters`` (Gemini's ``Schema``, an OpenAPI 3.0 subset), a
  JSON-schema keyword it lacks: ``Unknown name "additionalProperties" at
  'tools[0].function_declarations[0].parameters': Cannot find field.`` (a map entry's path
  ends ``properties[0].value``); ``parametersJsonSchema`` takes JSON schema as it is;
- a ``functionCallingConfig.mode`` that is not one of its enum's names.

Paths use the snake_case names. The request's meaning is checked after the model is found
(``semantic_problem``): ``contents`` must be there, roles must be ``user`` or ``model``, parts
must not be empty and each must carry data.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

Violation = dict[str, str]

_PROTO: Final = "type.googleapis.com/google.ai.generativelanguage.v1beta"
_CONTENT_TYPE: Final = f"{_PROTO}.Content"


def _names(*camel: str) -> frozenset[str]:
    return frozenset(camel) | frozenset(_snake(name) for name in camel)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


REQUEST_FIELDS: Final = _names(
    "contents",
    "model",
    "tools",
    "toolConfig",
    "safetySettings",
    "systemInstruction",
    "generationConfig",
    "cachedContent",
)
CONTENT_FIELDS: Final = _names("role", "parts")
TOOL_FIELDS: Final = _names(
    "functionDeclarations",
    "googleSearchRetrieval",
    "codeExecution",
    "googleSearch",
    "urlContext",
    "computerUse",
    "fileSearch",
    "googleMaps",
)
DECLARATION_FIELDS: Final = _names(
    "name",
    "description",
    "behavior",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
)
SCHEMA_FIELDS: Final = _names(
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
)
TOOL_CONFIG_FIELDS: Final = _names("functionCallingConfig", "retrievalConfig")
CALLING_FIELDS: Final = _names("mode", "allowedFunctionNames")
MODES: Final = frozenset({"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"})
CALL_FIELDS: Final = _names("id", "name", "args")
RESPONSE_FIELDS: Final = _names("id", "name", "response", "parts", "willContinue", "scheduling")
PART_FIELDS: Final = _names(
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
    "thought",
    "thoughtSignature",
    "videoMetadata",
)
DATA_FIELDS: Final = _names(
    "inlineData", "fileData", "functionCall", "functionResponse", "executableCode"
) | {"text", "codeExecutionResult", "code_execution_result"}
BLOB_FIELDS: Final = _names("mimeType", "data")
CONFIG_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "temperature": "TYPE_FLOAT",
        "top_p": "TYPE_FLOAT",
        "top_k": "TYPE_INT32",
        "candidate_count": "TYPE_INT32",
        "max_output_tokens": "TYPE_INT32",
        "seed": "TYPE_INT32",
        "presence_penalty": "TYPE_FLOAT",
        "frequency_penalty": "TYPE_FLOAT",
        "response_logprobs": "TYPE_BOOL",
        "logprobs": "TYPE_INT32",
        "response_mime_type": "TYPE_STRING",
    }
)
CONFIG_FIELDS: Final = frozenset(CONFIG_TYPES) | _names(
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "responseMimeType",
    "stopSequences",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "thinkingConfig",
    "speechConfig",
    "mediaResolution",
)


def field(body: Mapping[str, Any], camel: str) -> Any:
    """A field by either of its JSON names."""
    return body.get(camel, body.get(_snake(camel)))


def json_violation() -> Violation:
    return {"description": "Invalid JSON payload received. Unexpected token."}


def parse_problems(body: object) -> list[Violation]:
    """What Google's proto parser rejects in a ``GenerateContentRequest``, in order."""
    if not isinstance(body, dict):
        return [
            _bad_value(
                "",
                f"{_PROTO}.GenerateContentRequest",
                body,
            )
        ]
    problems = _unknown(body, REQUEST_FIELDS, "")
    contents = body.get("contents")
    if contents is not None:
        if not isinstance(contents, list):
            problems.append(_bad_value("contents", _CONTENT_TYPE, contents))
        else:
            for index, content in enumerate(contents):
                problems.extend(_content_problems(f"contents[{index}]", content))
    system = field(body, "systemInstruction")
    if system is not None:
        problems.extend(_content_problems("system_instruction", system))
    config = field(body, "generationConfig")
    if config is not None:
        problems.extend(_config_problems(config))
    tools = body.get("tools")
    if isinstance(tools, list):
        for index, tool in enumerate(tools):
            problems.extend(_tool_problems(f"tools[{index}]", tool))
    tool_config = field(body, "toolConfig")
    if tool_config is not None:
        problems.extend(_tool_config_problems(tool_config))
    return problems


def semantic_problem(body: Mapping[str, Any]) -> str | None:
    """The first problem with what the request means; Google's message, or None."""
    contents = body.get("contents")
    if not contents:
        return "* GenerateContentRequest.contents: contents is not specified\n"
    for index, content in enumerate(contents):
        if (content.get("role") or "user") not in ("user", "model"):
            return "Please use a valid role: user, model."
        parts = content.get("parts")
        loc = f"GenerateContentRequest.contents[{index}].parts"
        if not parts:
            return f"* {loc}: contents.parts must not be empty.\n"
        for number, part in enumerate(parts):
            if not DATA_FIELDS & part.keys():
                return (
                    f"* {loc}[{number}].data: required oneof field 'data' must have one"
                    " initialized field\n"
                )
    return None


def _unknown(value: Mapping[str, Any], known: frozenset[str], loc: str) -> list[Violation]:
    where = f" at '{loc}'" if loc else ""
    problems: list[Violation] = []
    for name in value:
        if name not in known:
            description = (
                f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.'
            )
            problems.append(
                {"field": loc, "description": description} if loc else {"description": description}
            )
    return problems


def _bad_value(loc: str, kind: str, value: object) -> Violation:
    shown = json.dumps(value, ensure_ascii=False) if not isinstance(value, dict) else "{...}"
    return {"field": loc, "description": f"Invalid value at '{loc}' ({kind}), {shown}"}


def _content_problems(loc: str, content: object) -> list[Violation]:
    if not isinstance(content, dict):
        return [_bad_value(loc, _CONTENT_TYPE, content)]
    problems = _unknown(content, CONTENT_FIELDS, loc)
    role = content.get("role")
    if role is not None and not isinstance(role, str):
        problems.append(_bad_value(f"{loc}.role", "TYPE_STRING", role))
    parts = content.get("parts")
    if parts is None:
        return problems
    if not isinstance(parts, list):
        problems.append(
            _bad_value(
                f"{loc}.parts",
                f"{_PROTO}.Part",
                parts,
            )
        )
        return problems
    for index, part in enumerate(parts):
        problems.extend(_part_problems(f"{loc}.parts[{index}]", part))
    return problems


def _part_problems(loc: str, part: object) -> list[Violation]:
    if not isinstance(part, dict):
        return [_bad_value(loc, f"{_PROTO}.Part", part)]
    problems = _unknown(part, PART_FIELDS, loc)
    if "text" in part and not isinstance(part["text"], str):
        problems.append(_bad_value(f"{loc}.text", "TYPE_STRING", part["text"]))
    for kind, known in (("functionCall", CALL_FIELDS), ("functionResponse", RESPONSE_FIELDS)):
        value = field(part, kind)
        if isinstance(value, dict):
            problems.extend(_unknown(value, known, f"{loc}.{_snake(kind)}"))
    signature = field(part, "thoughtSignature")
    if isinstance(signature, str) and not _decodes(signature):
        problems.append(_bad_bytes(f"{loc}.thought_signature", signature))
    blob = field(part, "inlineData")
    if isinstance(blob, dict):
        problems.extend(_unknown(blob, BLOB_FIELDS, f"{loc}.inline_data"))
        data = blob.get("data")
        if isinstance(data, str) and not _decodes(data):
            problems.append(_bad_bytes(f"{loc}.inline_data.data", data))
    return problems


def _bad_bytes(loc: str, value: str) -> Violation:
    return {
        "field": loc,
        "description": f"Invalid value at '{loc}' (TYPE_BYTES), Base64 decoding failed for"
        f' "{value}"',
    }


def _tool_problems(loc: str, tool: object) -> list[Violation]:
    if not isinstance(tool, dict):
        return [_bad_value(loc, f"{_PROTO}.Tool", tool)]
    problems = _unknown(tool, TOOL_FIELDS, loc)
    declarations = field(tool, "functionDeclarations")
    for index, declaration in enumerate(declarations if isinstance(declarations, list) else ()):
        where = f"{loc}.function_declarations[{index}]"
        if not isinstance(declaration, dict):
            problems.append(_bad_value(where, f"{_PROTO}.FunctionDeclaration", declaration))
            continue
        problems.extend(_unknown(declaration, DECLARATION_FIELDS, where))
        parameters = declaration.get("parameters")
        if parameters is not None:
            problems.extend(_schema_problems(f"{where}.parameters", parameters))
    return problems


def _schema_problems(loc: str, schema: object) -> list[Violation]:
    if not isinstance(schema, dict):
        return [_bad_value(loc, f"{_PROTO}.Schema", schema)]
    problems = _unknown(schema, SCHEMA_FIELDS, loc)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for index, value in enumerate(properties.values()):
            problems.extend(_schema_problems(f"{loc}.properties[{index}].value", value))
    if schema.get("items") is not None:
        problems.extend(_schema_problems(f"{loc}.items", schema["items"]))
    branches = field(schema, "anyOf")
    for index, branch in enumerate(branches if isinstance(branches, list) else ()):
        problems.extend(_schema_problems(f"{loc}.any_of[{index}]", branch))
    return problems


def _tool_config_problems(config: object) -> list[Violation]:
    loc = "tool_config"
    if not isinstance(config, dict):
        return [_bad_value(loc, f"{_PROTO}.ToolConfig", config)]
    problems = _unknown(config, TOOL_CONFIG_FIELDS, loc)
    calling = field(config, "functionCallingConfig")
    if calling is None:
        return problems
    loc = f"{loc}.function_calling_config"
    if not isinstance(calling, dict):
        return [*problems, _bad_value(loc, f"{_PROTO}.FunctionCallingConfig", calling)]
    problems.extend(_unknown(calling, CALLING_FIELDS, loc))
    mode = calling.get("mode")
    if mode is not None and mode not in MODES:
        kind = f"{_PROTO}.FunctionCallingConfig.Mode"
        problems.append(_bad_value(f"{loc}.mode", kind, mode))
    return problems


def _decodes(data: str) -> bool:
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        try:  # Google also takes the URL-safe alphabet
            base64.b64decode(data, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            return False
    return True


def _config_problems(config: object) -> list[Violation]:
    loc = "generation_config"
    if not isinstance(config, dict):
        return [
            _bad_value(
                loc,
                f"{_PROTO}.GenerationConfig",
                config,
            )
        ]
    problems = _unknown(config, CONFIG_FIELDS, loc)
    for name, value in config.items():
        kind = CONFIG_TYPES.get(_snake(name))
        if kind is not None and not _fits(kind, value):
            problems.append(_bad_value(f"{loc}.{_snake(name)}", kind, value))
    return problems


def _fits(kind: str, value: object) -> bool:
    if kind == "TYPE_BOOL":
        return isinstance(value, bool)
    if kind == "TYPE_STRING":
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return kind == "TYPE_FLOAT" or float(value).is_integer()
